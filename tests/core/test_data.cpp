// Data preparation and the loader (core/data.h, docs/data.md).
//
// Round trip: shards are read back here with the HDF5 C API (not through the loader) and every
// document must equal the hand-written input document followed by eos; manifest and attribute
// digests are recomputed with sha256_file. Refusals: empty and non-UTF-8 inputs name the file and
// the byte offset (offsets counted by hand) and leave nothing on disk; a non-empty output directory
// is refused. Loader: windows are checked against the stream read independently; each epoch is a
// permutation; the order for one key equals the one computed by an independent Python
// implementation of the docs/data.md algorithm (Philox4x32-10 checked there against the Random123
// known-answer vectors); resume and rank slicing give the same samples; a corrupted shard is
// refused by name. Mapped shards: windows crossing one or several shard boundaries equal the
// stream read here with HDF5, in both verify modes; shards written here as chunked, deflated,
// compact and big-endian datasets are read into memory and serve the same samples; verify=false
// skips the hashes but fill() still refuses a planted out-of-vocabulary token by file and index;
// a moved loader keeps its mappings.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/data.h"
#include "core/error.h"
#include "core/hash.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using ssiat::DataLoader;
using ssiat::PhiloxKey;
using ssiat::PrepareOptions;

namespace {

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() /
            ("ssiat_test_data_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "in");
    fs::create_directories(root_ / "outs");
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path write(const std::string& name, const std::string& content) {
    const fs::path p = root_ / "in" / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

  static std::vector<std::string> listing(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path root_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A shard read with the HDF5 C API.
struct Shard {
  std::vector<uint32_t> tokens;
  std::vector<uint64_t> offsets;
  bool tokens_u32le = false;
  std::string source_sha256, tokenizer_digest;
};

std::string read_string_attr(hid_t f, const char* name) {
  const hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  EXPECT_GE(a, 0) << name;
  const hid_t t = H5Aget_type(a);
  std::string out;
  if (H5Tis_variable_str(t) > 0) {
    char* s = nullptr;
    const hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    EXPECT_GE(H5Aread(a, mt, &s), 0);
    out = s ? s : "";
    H5free_memory(s);
    H5Tclose(mt);
  } else {
    ADD_FAILURE() << name << " is not a variable-length string";
  }
  H5Tclose(t);
  H5Aclose(a);
  return out;
}

template <typename T>
std::vector<T> read_1d(hid_t f, const char* name, hid_t mem_type, hid_t expect_file_type, bool* type_ok) {
  const hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  EXPECT_GE(d, 0) << name;
  const hid_t s = H5Dget_space(d);
  hsize_t dims[1] = {0};
  EXPECT_EQ(H5Sget_simple_extent_ndims(s), 1);
  H5Sget_simple_extent_dims(s, dims, nullptr);
  std::vector<T> v(dims[0]);
  EXPECT_GE(H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
  const hid_t t = H5Dget_type(d);
  if (type_ok) *type_ok = H5Tequal(t, expect_file_type) > 0;
  H5Tclose(t);
  H5Sclose(s);
  H5Dclose(d);
  return v;
}

Shard read_shard(const fs::path& p) {
  Shard sh;
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0) << p;
  sh.tokens = read_1d<uint32_t>(f, "tokens", H5T_NATIVE_UINT32, H5T_STD_U32LE, &sh.tokens_u32le);
  bool off_ok = false;
  sh.offsets = read_1d<uint64_t>(f, "doc_offsets", H5T_NATIVE_UINT64, H5T_STD_U64LE, &off_ok);
  EXPECT_TRUE(off_ok);
  sh.source_sha256 = read_string_attr(f, "source_sha256");
  sh.tokenizer_digest = read_string_attr(f, "tokenizer_digest");
  H5Fclose(f);
  return sh;
}

// A shard's "tokens" read with the HDF5 C API (any layout, byte order converted by HDF5).
std::vector<uint32_t> read_tokens(const fs::path& p) {
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0) << p;
  std::vector<uint32_t> tokens = read_1d<uint32_t>(f, "tokens", H5T_NATIVE_UINT32, H5T_STD_U32LE, nullptr);
  H5Fclose(f);
  return tokens;
}

// The stream of a prepared directory: every shard's tokens in manifest order.
std::vector<uint32_t> read_stream(const fs::path& dir) {
  const json m = json::parse(read_file(dir / "manifest.json"));
  std::vector<uint32_t> s;
  for (const auto& e : m["shards"]) {
    const std::vector<uint32_t> tokens = read_tokens(dir / e["file"].get<std::string>());
    s.insert(s.end(), tokens.begin(), tokens.end());
  }
  return s;
}

constexpr uint32_t kEos = 257;

}  // namespace

TEST(ByteTokenizerDigest, IsSha256OfCanonicalSpec) {
  const auto tok = ssiat::tokenizer::make_byte_tokenizer();
  EXPECT_EQ(tok->digest(),
            ssiat::sha256_hex(R"({"bos_id":256,"eos_id":257,"type":"byte","version":1,"vocab_size":258})"));
}

TEST_F(DataTest, PrepareRoundTrip) {
  // Text: documents are maximal runs of non-blank lines (whitespace-only lines are blank).
  const std::string a =
      "\n첫 번째 문서입니다.\n두 번째 줄.\n\n\n  \nsecond doc\n \t\nthird\ndoc here\n\n";
  const std::vector<std::string> a_docs = {"첫 번째 문서입니다.\n두 번째 줄.", "second doc", "third\ndoc here"};
  const std::string b = "한 줄짜리 문서";  // no trailing newline
  const std::vector<std::string> b_docs = {"한 줄짜리 문서"};
  const std::string c = "{\"text\": \"json \\uc528\\uc557\\nline\"}\n\n{\"id\": 3, \"text\": \"plain\"}\n{\"text\": \"\"}\n";
  const std::vector<std::string> c_docs = {"json 씨앗\nline", "plain"};
  const fs::path pa = write("a.txt", a), pb = write("b.txt", b), pc = write("c.jsonl", c);

  PrepareOptions opt;
  opt.inputs = {pa, pb, pc};
  opt.shard_tokens = 40;
  const auto tok = ssiat::tokenizer::make_byte_tokenizer();
  const fs::path out = root_ / "outs" / "prepared";
  const auto r = ssiat::prepare_data(opt, *tok, out);

  std::vector<std::string> all_docs;
  std::vector<std::string> doc_source;  // sha256 of each document's file
  for (const auto& [docs, path] : {std::pair{a_docs, pa}, std::pair{b_docs, pb}, std::pair{c_docs, pc}})
    for (const auto& d : docs) {
      all_docs.push_back(d);
      doc_source.push_back(ssiat::sha256_file(path));
    }
  int64_t expect_tokens = 0;
  for (const auto& d : all_docs) expect_tokens += static_cast<int64_t>(d.size()) + 1;
  EXPECT_EQ(r.documents, static_cast<int64_t>(all_docs.size()));
  EXPECT_EQ(r.tokens, expect_tokens);

  const json m = json::parse(read_file(out / "manifest.json"));
  EXPECT_EQ(m["format"], "ssiat-tokens/v1");
  EXPECT_EQ(m["tokenizer"]["name"], "byte");
  EXPECT_EQ(m["tokenizer"]["digest"], tok->digest());
  EXPECT_EQ(m["tokenizer"]["vocab_size"], 258);
  EXPECT_EQ(m["tokens"], expect_tokens);
  EXPECT_EQ(m["documents"], all_docs.size());
  ASSERT_EQ(m["sources"].size(), 3u);
  const fs::path paths[] = {pa, pb, pc};
  const std::string contents[] = {a, b, c};
  const size_t ndocs[] = {a_docs.size(), b_docs.size(), c_docs.size()};
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ(m["sources"][i]["path"], paths[i].string());
    EXPECT_EQ(m["sources"][i]["sha256"], ssiat::sha256_file(paths[i]));
    EXPECT_EQ(m["sources"][i]["bytes"], contents[i].size());
    EXPECT_EQ(m["sources"][i]["documents"], ndocs[i]);
  }

  // Decode every shard: documents in order, each followed by eos; no document split; limits kept.
  ASSERT_EQ(static_cast<int64_t>(m["shards"].size()), r.shards);
  ASSERT_GE(r.shards, 3);  // 40-token shards force several
  size_t doc = 0;
  for (size_t s = 0; s < m["shards"].size(); s++) {
    const auto& e = m["shards"][s];
    char name[32];
    std::snprintf(name, sizeof(name), "shard_%05zu.h5", s);
    EXPECT_EQ(e["file"], name);
    const fs::path file = out / name;
    EXPECT_EQ(e["sha256"], ssiat::sha256_file(file));
    const Shard sh = read_shard(file);
    EXPECT_TRUE(sh.tokens_u32le);
    EXPECT_EQ(sh.tokenizer_digest, tok->digest());
    EXPECT_EQ(e["tokens"], sh.tokens.size());
    ASSERT_EQ(e["documents"], sh.offsets.size() - 1);
    ASSERT_EQ(sh.offsets.front(), 0u);
    ASSERT_EQ(sh.offsets.back(), sh.tokens.size());
    if (sh.offsets.size() > 2) {
      EXPECT_LE(sh.tokens.size(), 40u);  // only a lone document may exceed
    }
    std::vector<std::string> sources;
    for (size_t k = 0; k + 1 < sh.offsets.size(); k++, doc++) {
      ASSERT_LT(doc, all_docs.size());
      const uint64_t lo = sh.offsets[k], hi = sh.offsets[k + 1];
      ASSERT_GT(hi, lo);
      EXPECT_EQ(sh.tokens[hi - 1], kEos);
      std::string bytes;
      for (uint64_t t = lo; t + 1 < hi; t++) {
        ASSERT_LT(sh.tokens[t], 256u);
        bytes.push_back(static_cast<char>(sh.tokens[t]));
      }
      EXPECT_EQ(bytes, all_docs[doc]);
      if (std::find(sources.begin(), sources.end(), doc_source[doc]) == sources.end())
        sources.push_back(doc_source[doc]);
    }
    std::string joined;
    for (const auto& x : sources) joined += (joined.empty() ? "" : ",") + x;
    EXPECT_EQ(sh.source_sha256, joined);
  }
  EXPECT_EQ(doc, all_docs.size());
  EXPECT_EQ(listing(root_ / "outs"), std::vector<std::string>{"prepared"});  // no temporary left

  // Byte-reproducible: a second run writes identical shards.
  const auto r2 = ssiat::prepare_data(opt, *tok, root_ / "outs" / "again");
  EXPECT_EQ(r2.shards, r.shards);
  const json m2 = json::parse(read_file(root_ / "outs" / "again" / "manifest.json"));
  EXPECT_EQ(m2["shards"], m["shards"]);
}

TEST_F(DataTest, ForcedFormatAndLongDocumentGetsOwnShard) {
  // --format text on a .jsonl file: the line is taken as text; a 100-byte document exceeds 16.
  const std::string big(100, 'x');
  const fs::path p = write("d.jsonl", "{\"text\": 1}\n\n" + big + "\n\nend");
  PrepareOptions opt;
  opt.inputs = {p};
  opt.auto_format = false;
  opt.format = ssiat::InputFormat::kText;
  opt.shard_tokens = 16;
  const auto tok = ssiat::tokenizer::make_byte_tokenizer();
  const auto r = ssiat::prepare_data(opt, *tok, root_ / "outs" / "p");
  EXPECT_EQ(r.documents, 3);
  EXPECT_EQ(r.shards, 3);
  const Shard big_shard = read_shard(root_ / "outs" / "p" / "shard_00001.h5");
  EXPECT_EQ(big_shard.tokens.size(), 101u);
}

TEST_F(DataTest, EmptyInputRefusedAndNothingWritten) {
  const fs::path good = write("good.txt", "fine\n");
  const fs::path empty = write("empty.txt", "");
  const fs::path blank = write("blank.txt", "\n \n\t\n");
  const auto tok = ssiat::tokenizer::make_byte_tokenizer();
  PrepareOptions opt;
  opt.inputs = {good, empty};
  const fs::path out = root_ / "outs" / "x";
  try {
    ssiat::prepare_data(opt, *tok, out);
    FAIL() << "empty input accepted";
  } catch (const ssiat::DataError& e) {
    EXPECT_EQ(std::string(e.what()), empty.string() + ": empty");
  }
  opt.inputs = {good, blank};
  try {
    ssiat::prepare_data(opt, *tok, out);
    FAIL() << "input without documents accepted";
  } catch (const ssiat::DataError& e) {
    EXPECT_NE(std::string(e.what()).find(blank.string() + ": empty"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(listing(root_ / "outs").empty());
}

TEST_F(DataTest, InvalidUtf8RefusedWithOffsetAndNothingWritten) {
  // "ok\n\n" (4 bytes) + "가" (3 bytes) + a surrogate ED A0 80 at byte 7.
  const fs::path good = write("good.txt", "fine\n");
  const fs::path bad = write("bad.txt", "ok\n\n\xea\xb0\x80\xed\xa0\x80tail");
  const fs::path cut = write("cut.txt", "abc\xec\x94");  // truncated 3-byte sequence at byte 3
  const auto tok = ssiat::tokenizer::make_byte_tokenizer();
  PrepareOptions opt;
  opt.inputs = {good, bad};
  try {
    ssiat::prepare_data(opt, *tok, root_ / "outs" / "x");
    FAIL() << "invalid UTF-8 accepted";
  } catch (const ssiat::DataError& e) {
    EXPECT_EQ(std::string(e.what()), bad.string() + ": invalid UTF-8 at byte 7");
  }
  opt.inputs = {cut};
  try {
    ssiat::prepare_data(opt, *tok, root_ / "outs" / "x");
    FAIL() << "truncated UTF-8 accepted";
  } catch (const ssiat::DataError& e) {
    EXPECT_EQ(std::string(e.what()), cut.string() + ": invalid UTF-8 at byte 3");
  }
  EXPECT_TRUE(listing(root_ / "outs").empty());
}

TEST_F(DataTest, BadJsonlNamesFileAndLine) {
  const fs::path p = write("c.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"\n");
  const fs::path q = write("d.jsonl", "{\"text\": \"a\"}\n[1, 2]\n");
  const auto tok = ssiat::tokenizer::make_byte_tokenizer();
  PrepareOptions opt;
  opt.inputs = {p};
  try {
    ssiat::prepare_data(opt, *tok, root_ / "outs" / "x");
    FAIL();
  } catch (const ssiat::DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(p.string() + ":3: invalid JSON", 0), 0u) << e.what();
  }
  opt.inputs = {q};
  try {
    ssiat::prepare_data(opt, *tok, root_ / "outs" / "x");
    FAIL();
  } catch (const ssiat::DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(q.string() + ":2: ", 0), 0u) << e.what();
  }
  EXPECT_TRUE(listing(root_ / "outs").empty());
}

TEST_F(DataTest, ExistingOutDirRefusedUnlessEmpty) {
  const fs::path in = write("a.txt", "text\n");
  const fs::path out = root_ / "outs" / "full";
  fs::create_directories(out);
  std::ofstream(out / "keep.txt") << "precious";
  const auto tok = ssiat::tokenizer::make_byte_tokenizer();
  PrepareOptions opt;
  opt.inputs = {in};
  EXPECT_THROW(ssiat::prepare_data(opt, *tok, out), ssiat::IoError);
  EXPECT_EQ(listing(out), std::vector<std::string>{"keep.txt"});
  EXPECT_EQ(read_file(out / "keep.txt"), "precious");
  EXPECT_EQ(listing(root_ / "outs"), std::vector<std::string>{"full"});

  const fs::path empty = root_ / "outs" / "empty";
  fs::create_directories(empty);
  EXPECT_NO_THROW(ssiat::prepare_data(opt, *tok, empty));
  EXPECT_TRUE(fs::exists(empty / "manifest.json"));
}

// ---------------------------------------------------------------------------------------------
// Loader

class LoaderTest : public DataTest {
 protected:
  // One 40-byte document -> 41 tokens; with T = 4 that is W = (41 - 1) / 4 = 10 windows.
  fs::path prepare_forty(int64_t shard_tokens = 1 << 20) {
    std::string text;
    for (int i = 0; i < 40; i++) text.push_back(static_cast<char>('A' + (i * 7) % 26));
    PrepareOptions opt;
    opt.inputs = {write("forty.txt", text)};
    opt.shard_tokens = shard_tokens;
    const fs::path out = root_ / "outs" / "forty";
    ssiat::prepare_data(opt, *make_tok(), out);
    return out;
  }
  // Several documents across several shards, for coverage and resume tests.
  fs::path prepare_multi(int64_t shard_tokens = 50) {
    std::string text;
    for (int d = 0; d < 12; d++) {
      for (int i = 0; i < 5 + 3 * d; i++) text.push_back(static_cast<char>('a' + (d + i) % 26));
      text += "\n\n";
    }
    PrepareOptions opt;
    opt.inputs = {write("multi.txt", text)};
    opt.shard_tokens = shard_tokens;
    const fs::path out = root_ / "outs" / "multi";
    ssiat::prepare_data(opt, *make_tok(), out);
    return out;
  }
  static std::unique_ptr<ssiat::tokenizer::Tokenizer> make_tok() { return ssiat::tokenizer::make_byte_tokenizer(); }
};

TEST_F(LoaderTest, WindowsCoverTheStream) {
  const fs::path dir = prepare_multi();
  const std::vector<uint32_t> S = read_stream(dir);
  const int64_t T = 7;
  DataLoader dl(dir, T, PhiloxKey{1, 2});
  ASSERT_EQ(dl.num_tokens(), static_cast<int64_t>(S.size()));
  const int64_t W = (static_cast<int64_t>(S.size()) - 1) / T;
  ASSERT_EQ(dl.num_windows(), W);
  EXPECT_EQ(dl.manifest_sha256(), ssiat::sha256_file(dir / "manifest.json"));
  std::vector<int32_t> in(W * T), tg(W * T);
  dl.fill(in.data(), tg.data(), 0, W);
  std::vector<int> seen(W, 0);
  for (int64_t b = 0; b < W; b++) {
    const int64_t w = dl.window_of(b);
    ASSERT_GE(w, 0);
    ASSERT_LT(w, W);
    seen[w]++;
    for (int64_t t = 0; t < T; t++) {
      EXPECT_EQ(in[b * T + t], static_cast<int32_t>(S[w * T + t]));
      EXPECT_EQ(tg[b * T + t], static_cast<int32_t>(S[w * T + t + 1]));
    }
  }
  for (int64_t w = 0; w < W; w++) EXPECT_EQ(seen[w], 1) << w;  // epoch 0 covers each window once
}

TEST_F(LoaderTest, EachEpochIsAPermutationAndEpochsDiffer) {
  const fs::path dir = prepare_multi();
  DataLoader dl(dir, 3, PhiloxKey{7, 9});
  const int64_t W = dl.num_windows();
  ASSERT_GT(W, 20);
  std::vector<std::vector<int64_t>> orders;
  for (int64_t e = 0; e < 4; e++) {
    std::vector<int64_t> order;
    for (int64_t i = 0; i < W; i++) order.push_back(dl.window_of(e * W + i));
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < W; i++) ASSERT_EQ(sorted[i], i) << "epoch " << e;
    orders.push_back(order);
  }
  for (size_t e = 1; e < orders.size(); e++) EXPECT_NE(orders[e], orders[0]);
  std::vector<int64_t> identity(W);
  for (int64_t i = 0; i < W; i++) identity[i] = i;
  EXPECT_NE(orders[0], identity);
}

TEST_F(LoaderTest, OrderMatchesIndependentReference) {
  // Expected orders from a separate Python implementation of docs/data.md (Philox4x32-10 checked
  // against Random123's known-answer vectors, Lemire's bounded integer, Durstenfeld's shuffle).
  const fs::path dir = prepare_forty();
  DataLoader dl(dir, 4, PhiloxKey{0x12345678u, 0x9abcdef0u});
  ASSERT_EQ(dl.num_windows(), 10);
  const std::vector<std::vector<int64_t>> expect = {
      {8, 6, 1, 2, 3, 5, 7, 0, 4, 9}, {8, 7, 9, 5, 0, 3, 4, 2, 6, 1}, {9, 6, 1, 8, 7, 3, 4, 2, 0, 5}};
  // Query epochs out of order: the cache must not leak into the result.
  for (int64_t e : {2, 0, 1}) {
    std::vector<int64_t> got;
    for (int64_t i = 0; i < 10; i++) got.push_back(dl.window_of(e * 10 + i));
    EXPECT_EQ(got, expect[e]) << "epoch " << e;
  }
  DataLoader other(dir, 4, PhiloxKey{1, 0});
  std::vector<int64_t> got;
  for (int64_t i = 0; i < 10; i++) got.push_back(other.window_of(i));
  EXPECT_EQ(got, (std::vector<int64_t>{4, 2, 5, 9, 7, 1, 0, 3, 8, 6}));
}

TEST_F(LoaderTest, DifferentKeysGiveDifferentOrders) {
  const fs::path dir = prepare_multi();
  DataLoader a(dir, 3, PhiloxKey{1, 2}), b(dir, 3, PhiloxKey{1, 3}), c(dir, 3, PhiloxKey{2, 2});
  DataLoader a2(dir, 3, PhiloxKey{1, 2});
  std::vector<int64_t> oa, ob, oc, oa2;
  for (int64_t g = 0; g < a.num_windows(); g++) {
    oa.push_back(a.window_of(g));
    ob.push_back(b.window_of(g));
    oc.push_back(c.window_of(g));
    oa2.push_back(a2.window_of(g));
  }
  EXPECT_NE(oa, ob);
  EXPECT_NE(oa, oc);
  EXPECT_EQ(oa, oa2);  // same key, fresh loader: same order
}

TEST_F(LoaderTest, ResumeGivesTheContinuation) {
  const fs::path dir = prepare_multi();
  const int64_t T = 5;
  DataLoader straight(dir, T, PhiloxKey{3, 4});
  const int64_t W = straight.num_windows();
  const int64_t total = 2 * W + 7;  // crosses two epoch boundaries
  std::vector<int32_t> in(total * T), tg(total * T);
  straight.fill(in.data(), tg.data(), 0, total);
  for (int64_t g : {int64_t{1}, W - 1, W, W + 3, 2 * W + 1}) {
    DataLoader resumed(dir, T, PhiloxKey{3, 4});  // a fresh process resuming at position g
    std::vector<int32_t> rin((total - g) * T), rtg((total - g) * T);
    resumed.fill(rin.data(), rtg.data(), g, total - g);
    EXPECT_TRUE(std::equal(rin.begin(), rin.end(), in.begin() + g * T)) << "g=" << g;
    EXPECT_TRUE(std::equal(rtg.begin(), rtg.end(), tg.begin() + g * T)) << "g=" << g;
  }
}

TEST_F(LoaderTest, RankSlicesEqualSingleRankOrder) {
  const fs::path dir = prepare_multi();
  const int64_t T = 4, B = 2, steps = 9;
  DataLoader single(dir, T, PhiloxKey{5, 6});
  for (int64_t R : {1, 2, 3, 4}) {
    // Each rank has its own loader, as in separate processes; rank r takes [pos + r*B, pos+(r+1)*B).
    std::vector<std::unique_ptr<DataLoader>> ranks;
    for (int64_t r = 0; r < R; r++) ranks.push_back(std::make_unique<DataLoader>(dir, T, PhiloxKey{5, 6}));
    for (int64_t s = 0; s < steps; s++) {
      const int64_t pos = s * R * B;
      std::vector<int32_t> in(R * B * T), tg(R * B * T);
      single.fill(in.data(), tg.data(), pos, R * B);
      for (int64_t r = R - 1; r >= 0; r--) {  // ranks visited in reverse: no shared state
        std::vector<int32_t> rin(B * T), rtg(B * T);
        ranks[r]->fill(rin.data(), rtg.data(), pos + r * B, B);
        EXPECT_TRUE(std::equal(rin.begin(), rin.end(), in.begin() + r * B * T)) << R << " " << s << " " << r;
        EXPECT_TRUE(std::equal(rtg.begin(), rtg.end(), tg.begin() + r * B * T)) << R << " " << s << " " << r;
      }
    }
  }
}

TEST_F(LoaderTest, CorruptedShardRefusedByName) {
  const fs::path dir = prepare_multi();
  const fs::path shard = dir / "shard_00001.h5";
  std::string bytes = read_file(shard);
  ASSERT_GT(bytes.size(), 100u);
  bytes[bytes.size() - 10] ^= 0x01;  // one bit in the token data
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes;
  try {
    DataLoader dl(dir, 4, PhiloxKey{1, 1});
    FAIL() << "corrupted shard accepted";
  } catch (const ssiat::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(shard.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("SHA-256"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(DataLoader(dir, 4, PhiloxKey{1, 1}, {.verify = false}));  // hashes not checked
  fs::remove(shard);
  EXPECT_THROW(DataLoader(dir, 4, PhiloxKey{1, 1}), ssiat::IoError);
  EXPECT_THROW(DataLoader(dir, 4, PhiloxKey{1, 1}, {.verify = false}), ssiat::IoError);
}

TEST_F(LoaderTest, TooFewTokensForOneWindow) {
  const fs::path dir = prepare_forty();  // 41 tokens
  EXPECT_NO_THROW(DataLoader(dir, 40, PhiloxKey{}));
  EXPECT_THROW(DataLoader(dir, 41, PhiloxKey{}), ssiat::DataError);
  EXPECT_THROW(DataLoader(dir, 0, PhiloxKey{}), ssiat::ConfigError);
}

// ---------------------------------------------------------------------------------------------
// Mapped shards, the in-memory fallback and verify = false

namespace {

// First stream index of each shard, then L, from the manifest.
std::vector<int64_t> shard_starts(const fs::path& dir) {
  const json m = json::parse(read_file(dir / "manifest.json"));
  std::vector<int64_t> starts{0};
  for (const auto& e : m["shards"]) starts.push_back(starts.back() + e["tokens"].get<int64_t>());
  return starts;
}

void set_manifest_sha(const fs::path& dir, size_t shard, const std::string& sha) {
  json m = json::parse(read_file(dir / "manifest.json"));
  m["shards"][shard]["sha256"] = sha;
  std::ofstream(dir / "manifest.json", std::ios::binary | std::ios::trunc) << m.dump(2) << "\n";
}

// The byte offset of "tokens" in an HDF5 file (HADDR_UNDEF if it has none).
haddr_t tokens_offset(const fs::path& p) {
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, "tokens", H5P_DEFAULT);
  const haddr_t off = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  return off;
}

enum class Layout { kChunked, kDeflate, kCompact, kBigEndian };

// Rewrites shard `p` with the same tokens stored in `layout`; returns the layout HDF5 reports.
H5D_layout_t rewrite_shard(const fs::path& p, Layout layout) {
  const std::vector<uint32_t> tokens = read_tokens(p);
  const hid_t f = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hsize_t dims[1] = {tokens.size()};
  const hid_t space = H5Screate_simple(1, dims, nullptr);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  const hsize_t chunk[1] = {7};
  if (layout == Layout::kChunked || layout == Layout::kDeflate) H5Pset_chunk(dcpl, 1, chunk);
  if (layout == Layout::kDeflate) H5Pset_deflate(dcpl, 6);
  if (layout == Layout::kCompact) H5Pset_layout(dcpl, H5D_COMPACT);
  const hid_t file_type = layout == Layout::kBigEndian ? H5T_STD_U32BE : H5T_STD_U32LE;
  const hid_t d = H5Dcreate2(f, "tokens", file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  EXPECT_GE(H5Dwrite(d, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data()), 0);
  const hid_t got_dcpl = H5Dget_create_plist(d);
  const H5D_layout_t got = H5Pget_layout(got_dcpl);
  H5Pclose(got_dcpl);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Fclose(f);
  return got;
}

// The loader's samples [0, n) as (inputs, targets).
std::pair<std::vector<int32_t>, std::vector<int32_t>> samples(const DataLoader& dl, int64_t T, int64_t n) {
  std::vector<int32_t> in(n * T), tg(n * T);
  dl.fill(in.data(), tg.data(), 0, n);
  return {in, tg};
}

}  // namespace

TEST_F(LoaderTest, MappedWindowsAcrossShardBoundariesEqualTheStream) {
  // shard_tokens 8: every document (6 to 39 tokens) gets a shard of its own, 12 shards.
  const fs::path dir = prepare_multi(8);
  const std::vector<uint32_t> S = read_stream(dir);
  const std::vector<int64_t> starts = shard_starts(dir);
  ASSERT_EQ(starts.size(), 13u);
  ASSERT_EQ(starts.back(), static_cast<int64_t>(S.size()));
  for (const int64_t T : {1, 5, 16, 50}) {
    for (const bool verify : {true, false}) {
      DataLoader dl(dir, T, PhiloxKey{11, 12}, {.verify = verify});
      EXPECT_TRUE(dl.memory_mapped());
      ASSERT_EQ(dl.num_tokens(), static_cast<int64_t>(S.size()));
      const int64_t W = (static_cast<int64_t>(S.size()) - 1) / T;
      ASSERT_EQ(dl.num_windows(), W);
      const auto [in, tg] = samples(dl, T, W);  // epoch 0: every window once
      std::vector<int> seen(W, 0);
      int64_t crossing = 0, spanning_three = 0;
      for (int64_t g = 0; g < W; g++) {
        const int64_t w = dl.window_of(g);
        ASSERT_GE(w, 0);
        ASSERT_LT(w, W);
        seen[w]++;
        for (int64_t t = 0; t < T; t++) {
          ASSERT_EQ(in[g * T + t], static_cast<int32_t>(S[w * T + t])) << T << " " << verify << " w=" << w;
          ASSERT_EQ(tg[g * T + t], static_cast<int32_t>(S[w * T + t + 1])) << T << " " << verify << " w=" << w;
        }
        // Shards holding the window's first and last stream token (w*T and w*T + T).
        const auto shard_of = [&](int64_t pos) { return std::upper_bound(starts.begin(), starts.end(), pos) - starts.begin(); };
        const auto span = shard_of(w * T + T) - shard_of(w * T);
        crossing += span >= 1;
        spanning_three += span >= 2;
      }
      for (int64_t w = 0; w < W; w++) ASSERT_EQ(seen[w], 1) << w;
      if (T >= 5) {
        EXPECT_GT(crossing, 0) << T;
      }
      if (T == 50) {
        EXPECT_GT(spanning_three, 0);
      }
    }
  }
}

TEST_F(LoaderTest, VerifyFalseSkipsShardHashes) {
  const fs::path dir = prepare_multi();
  const DataLoader reference(dir, 6, PhiloxKey{2, 3});
  const std::string zeros(64, '0');
  set_manifest_sha(dir, 1, zeros);
  const fs::path shard = dir / "shard_00001.h5";
  try {
    DataLoader dl(dir, 6, PhiloxKey{2, 3});
    FAIL() << "manifest with a wrong shard digest accepted";
  } catch (const ssiat::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(shard.string() + ": SHA-256 mismatch"), std::string::npos) << e.what();
  }
  const DataLoader dl(dir, 6, PhiloxKey{2, 3}, {.verify = false});
  EXPECT_TRUE(dl.memory_mapped());
  EXPECT_EQ(dl.manifest_sha256(), ssiat::sha256_file(dir / "manifest.json"));  // the edited manifest
  EXPECT_NE(dl.manifest_sha256(), reference.manifest_sha256());
  const int64_t W = dl.num_windows();
  EXPECT_EQ(samples(dl, 6, 2 * W), samples(reference, 6, 2 * W));
}

TEST_F(LoaderTest, OutOfVocabularyTokenRefusedAtLoadOrWhenServed) {
  const fs::path dir = prepare_multi();
  const std::vector<int64_t> starts = shard_starts(dir);
  const fs::path shard = dir / "shard_00001.h5";
  const haddr_t off = tokens_offset(shard);
  ASSERT_NE(off, HADDR_UNDEF);
  const int64_t k = 3;  // index within shard 1
  std::string bytes = read_file(shard);
  const uint32_t bad = 258;  // == vocab_size of the byte tokenizer
  for (int i = 0; i < 4; i++) bytes[off + 4 * k + i] = static_cast<char>((bad >> (8 * i)) & 0xff);  // little-endian
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes;
  ASSERT_EQ(read_tokens(shard)[k], bad);  // HDF5 agrees where the token is
  set_manifest_sha(dir, 1, ssiat::sha256_file(shard));  // the hash passes; the range check must not
  const std::string where = shard.string() + ": token 258 at index 3 is outside the vocabulary (258)";

  const int64_t T = 5;
  try {
    DataLoader dl(dir, T, PhiloxKey{4, 4});
    FAIL() << "out-of-vocabulary token accepted at load";
  } catch (const ssiat::DataError& e) {
    EXPECT_EQ(std::string(e.what()), where);
  }

  const DataLoader dl(dir, T, PhiloxKey{4, 4}, {.verify = false});
  const int64_t p = starts[1] + k;  // stream index of the planted token
  int64_t served_bad = 0, served_good = 0;
  for (int64_t g = 0; g < dl.num_windows(); g++) {
    const int64_t w = dl.window_of(g);
    std::vector<int32_t> in(T), tg(T);
    if (w * T <= p && p <= w * T + T) {  // as an input or as the last target
      try {
        dl.fill(in.data(), tg.data(), g, 1);
        ADD_FAILURE() << "window " << w << " served the out-of-vocabulary token";
      } catch (const ssiat::DataError& e) {
        EXPECT_EQ(std::string(e.what()), where);
      }
      served_bad++;
    } else {
      EXPECT_NO_THROW(dl.fill(in.data(), tg.data(), g, 1)) << "window " << w;
      served_good++;
    }
  }
  EXPECT_GE(served_bad, 1);
  EXPECT_GT(served_good, 10);
}

TEST_F(LoaderTest, NonContiguousShardsAreReadIntoMemory) {
  const fs::path dir = prepare_multi();
  const fs::path ref_dir = root_ / "outs" / "reference";
  fs::copy(dir, ref_dir, fs::copy_options::recursive);
  const int64_t T = 7;
  const DataLoader reference(ref_dir, T, PhiloxKey{8, 1});
  EXPECT_TRUE(reference.memory_mapped());
  ASSERT_GE(shard_starts(dir).size(), 5u);  // at least four shards to rewrite

  EXPECT_EQ(rewrite_shard(dir / "shard_00000.h5", Layout::kChunked), H5D_CHUNKED);
  const Layout second = H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 ? Layout::kDeflate : Layout::kChunked;
  EXPECT_EQ(rewrite_shard(dir / "shard_00001.h5", second), H5D_CHUNKED);
  EXPECT_EQ(rewrite_shard(dir / "shard_00002.h5", Layout::kCompact), H5D_COMPACT);
  // Contiguous and unfiltered, but big-endian: mapping it would serve byte-swapped ids.
  EXPECT_EQ(rewrite_shard(dir / "shard_00003.h5", Layout::kBigEndian), H5D_CONTIGUOUS);
  EXPECT_NE(tokens_offset(dir / "shard_00003.h5"), HADDR_UNDEF);
  for (size_t s = 0; s < 4; s++) {
    char name[32];
    std::snprintf(name, sizeof(name), "shard_%05zu.h5", s);
    set_manifest_sha(dir, s, ssiat::sha256_file(dir / name));
  }
  EXPECT_EQ(read_stream(dir), read_stream(ref_dir));

  for (const bool verify : {true, false}) {
    const DataLoader dl(dir, T, PhiloxKey{8, 1}, {.verify = verify});
    EXPECT_FALSE(dl.memory_mapped());
    ASSERT_EQ(dl.num_windows(), reference.num_windows());
    const int64_t n = 2 * dl.num_windows() + 3;
    EXPECT_EQ(samples(dl, T, n), samples(reference, T, n)) << "verify=" << verify;
  }
}

TEST_F(LoaderTest, MovedLoaderKeepsServing) {
  const fs::path dir = prepare_multi(8);
  const int64_t T = 9;
  const DataLoader reference(dir, T, PhiloxKey{6, 6});
  const int64_t n = reference.num_windows() + 5;
  const auto expect = samples(reference, T, n);

  DataLoader a(dir, T, PhiloxKey{6, 6});
  std::optional<DataLoader> holder;
  holder.emplace(std::move(a));
  DataLoader b = std::move(*holder);
  holder.reset();  // the moved-from loader must not unmap what b serves
  EXPECT_TRUE(b.memory_mapped());
  EXPECT_EQ(samples(b, T, n), expect);

  DataLoader c(prepare_forty(), T, PhiloxKey{1, 1});
  c = std::move(b);  // c's own mappings are released, b's are taken over
  EXPECT_EQ(c.num_tokens(), reference.num_tokens());
  EXPECT_EQ(samples(c, T, n), expect);
}
