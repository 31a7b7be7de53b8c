// End-to-end tests of `ssiat tokenizer train|encode|decode|stats` and of a BPE tokenizer used
// by `ssiat data prepare` and `ssiat train`: files written, ids equal to Debian's spm_encode on
// our tokenizer.model, decode inverts encode, provenance (tokenizer digest and corpus SHA-256)
// in the seed logs, one-line errors for bad input, and the directory as one set: replaced only under
// --force and as a whole, its digest covering every file, a set mixed from two saves refused.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "tests/common/cli.h"

namespace fs = std::filesystem;
using ssiat::testing::Cmd;
using ssiat::testing::run_cli;
using ssiat::testing::slurp;
using ssiat::testing::write_file;

namespace {

std::vector<nlohmann::json> jsonl(const fs::path& p) {
  std::vector<nlohmann::json> v;
  std::stringstream ss(slurp(p));
  for (std::string l; std::getline(ss, l);)
    if (!l.empty()) v.push_back(nlohmann::json::parse(l));
  return v;
}

class TokenizerCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ssiat_tokcli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy_file(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt", dir_ / "train.txt");
    fs::copy_file(SSIAT_SOURCE_DIR "/tests/data/ko_heldout.txt", dir_ / "held.txt");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void train(const std::string& extra = "") {
    const Cmd r = run_cli(dir_, "tokenizer train --input train.txt --vocab-size 1500 --out tok --seed 5 -q " + extra);
    ASSERT_EQ(r.status, 0) << r.err;
  }
  void train_into(const std::string& out, const std::string& extra) {
    const Cmd r = run_cli(dir_, "tokenizer train --input train.txt --out " + out + " -q " + extra);
    ASSERT_EQ(r.status, 0) << r.err;
  }
  fs::path dir_;
};

TEST_F(TokenizerCli, TrainWritesFilesAndProvenance) {
  train();
  for (const char* f : {"tokenizer.ssiat.json", "tokenizer.model", "tokenizer.json", "seeds.jsonl"})
    EXPECT_TRUE(fs::exists(dir_ / "tok" / f)) << f;
  const auto own = nlohmann::json::parse(slurp(dir_ / "tok" / "tokenizer.ssiat.json"));
  EXPECT_EQ(own.at("pieces").size(), 1500u);
  const auto src = own.at("provenance").at("sources").at(0);
  EXPECT_EQ(src.at("sha256"), ssiat::sha256_file(dir_ / "train.txt"));
  const auto seeds = jsonl(dir_ / "tok" / "seeds.jsonl");
  ASSERT_GE(seeds.size(), 3u);
  EXPECT_EQ(seeds[0].at("seed"), 5);
  bool stream = false, tok = false;
  for (const auto& r : seeds) {
    stream |= r.at("type") == "stream" && r.at("name") == "tokenizer/sample";
    if (r.at("type") == "tokenizer") {
      tok = true;
      EXPECT_EQ(r.at("digest"), own.at("digest"));
      EXPECT_EQ(r.at("sources").at(0).at("sha256"), src.at("sha256"));
    }
  }
  EXPECT_TRUE(stream && tok);
  // Same input and seed, another thread count: the same tokenizer.
  const Cmd r2 = run_cli(dir_, "tokenizer train --input train.txt --vocab-size 1500 --out tok1 --seed 5 -q --threads 1");
  ASSERT_EQ(r2.status, 0) << r2.err;
  EXPECT_EQ(nlohmann::json::parse(slurp(dir_ / "tok1" / "tokenizer.ssiat.json")).at("digest"), own.at("digest"));
  EXPECT_EQ(slurp(dir_ / "tok1" / "tokenizer.model"), slurp(dir_ / "tok" / "tokenizer.model"));
}

TEST_F(TokenizerCli, EncodeMatchesSpmEncodeAndDecodeInverts) {
  train();
  const Cmd enc = run_cli(dir_, "tokenizer encode --tokenizer tok --threads 2 < held.txt");
  ASSERT_EQ(enc.status, 0) << enc.err;
  // Debian's spm_encode on the tokenizer.model we wrote: the same ids, line for line.
  const std::string spm = "cd '" + dir_.string() + "' && spm_encode --model tok/tokenizer.model --output_format=id < held.txt > spm.txt";
  ASSERT_EQ(std::system(spm.c_str()), 0);
  EXPECT_EQ(enc.out, slurp(dir_ / "spm.txt"));
  // Hugging Face tokenizers on our tokenizer.json: the same ids too (skipped without the package).
  if (std::system("python3 -c 'import tokenizers' >/dev/null 2>&1") == 0) {
    write_file(dir_ / "hf.py",
               "import sys, tokenizers\n"
               "tok = tokenizers.Tokenizer.from_file('tok/tokenizer.json')\n"
               "lines = open('held.txt', encoding='utf-8').read().split('\\n')[:-1]\n"
               "out = [' '.join(map(str, e.ids)) for e in tok.encode_batch(lines, add_special_tokens=False)]\n"
               "open('hf.txt', 'w').write('\\n'.join(out) + '\\n')\n");
    ASSERT_EQ(std::system(("cd '" + dir_.string() + "' && python3 hf.py").c_str()), 0);
    EXPECT_EQ(enc.out, slurp(dir_ / "hf.txt"));
  }
  write_file(dir_ / "ids.txt", enc.out);
  const Cmd dec = run_cli(dir_, "tokenizer decode --tokenizer tok < ids.txt");
  ASSERT_EQ(dec.status, 0) << dec.err;
  EXPECT_EQ(dec.out, slurp(dir_ / "held.txt"));  // NFC text without leading/double spaces
  const Cmd st = run_cli(dir_, "tokenizer stats --tokenizer tok --input held.txt --json");
  ASSERT_EQ(st.status, 0) << st.err;
  const auto j = nlohmann::json::parse(st.out);
  EXPECT_EQ(j.at("round_trip_exact_lines"), j.at("lines"));
  EXPECT_GT(j.at("hangul_per_token").get<double>(), 1.0);
}

TEST_F(TokenizerCli, BadInputIsOneLineNamingFileAndOffset) {
  write_file(dir_ / "bad.txt", "좋은 줄\n나쁜 \xFF 줄\n");
  Cmd r = run_cli(dir_, "tokenizer train --input bad.txt --vocab-size 300 --out t2 -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("bad.txt: invalid UTF-8 at byte offset 18"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "t2"));
  r = run_cli(dir_, "tokenizer train --input bad.txt --vocab-size 300 --out t2 -q --replace-invalid-utf8 --character-coverage 1");
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_cli(dir_, "tokenizer encode --tokenizer nowhere < bad.txt");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("nowhere/tokenizer.ssiat.json"), std::string::npos) << r.err;
  train();
  write_file(dir_ / "ids.txt", "5 6 99999\n");
  r = run_cli(dir_, "tokenizer decode --tokenizer tok < ids.txt");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("line 1"), std::string::npos) << r.err;
  r = run_cli(dir_, "tokenizer train --input train.txt --vocab-size 100 --out t3 -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("vocab_size"), std::string::npos) << r.err;
}

TEST_F(TokenizerCli, ReplacingATokenizerNeedsForceAndSwapsTheWholeSet) {
  train();
  const std::string old_own = slurp(dir_ / "tok" / "tokenizer.ssiat.json"), old_model = slurp(dir_ / "tok" / "tokenizer.model");
  // Without --force: refused at once (before training), in one line, the old set untouched.
  Cmd r = run_cli(dir_, "tokenizer train --input train.txt --vocab-size 1400 --out tok --seed 6 -q");
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.err, "ssiat: tok: already holds a tokenizer; pass --force to replace it\n");
  EXPECT_EQ(slurp(dir_ / "tok" / "tokenizer.ssiat.json"), old_own);
  // A directory holding anything else is never replaced, even under --force.
  fs::create_directories(dir_ / "mixed");
  write_file(dir_ / "mixed" / "notes.txt", "mine");
  write_file(dir_ / "mixed" / "tokenizer.model", "x");
  r = run_cli(dir_, "tokenizer train --input train.txt --vocab-size 1400 --out mixed --seed 6 -q --force");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("mixed: holds 'notes.txt', which is not a tokenizer file"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(dir_ / "mixed" / "notes.txt"), "mine");
  // With --force: every file of the set is the new one, and nothing hidden is left beside it.
  r = run_cli(dir_, "tokenizer train --input train.txt --vocab-size 1400 --out tok --seed 6 -q --force");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto own = nlohmann::json::parse(slurp(dir_ / "tok" / "tokenizer.ssiat.json"));
  EXPECT_EQ(own.at("pieces").size(), 1400u);
  EXPECT_NE(slurp(dir_ / "tok" / "tokenizer.model"), old_model);
  EXPECT_EQ(own.at("files").at("tokenizer.model"), ssiat::sha256_file(dir_ / "tok" / "tokenizer.model"));
  for (const auto& rec : jsonl(dir_ / "tok" / "seeds.jsonl"))
    if (rec.at("type") == "tokenizer") {
      EXPECT_EQ(rec.at("digest"), own.at("digest"));
    }
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_FALSE(e.path().filename().string().starts_with(".tok.")) << e.path();
  EXPECT_EQ(run_cli(dir_, "tokenizer encode --tokenizer tok < held.txt").status, 0);
}

TEST_F(TokenizerCli, DigestCoversEveryFileAndAMixedSetIsRefused) {
  train();
  train_into("tok2", "--seed 9 --vocab-size 1400");
  // The digest, recomputed here: SHA-256 of tokenizer.ssiat.json's canonical JSON without "digest",
  // whose "files" holds the SHA-256 of the two other files.
  auto own = nlohmann::json::parse(slurp(dir_ / "tok" / "tokenizer.ssiat.json"));
  EXPECT_EQ(own.at("files").at("tokenizer.model"), ssiat::sha256_file(dir_ / "tok" / "tokenizer.model"));
  EXPECT_EQ(own.at("files").at("tokenizer.json"), ssiat::sha256_file(dir_ / "tok" / "tokenizer.json"));
  const std::string digest = own.at("digest");
  own.erase("digest");
  EXPECT_EQ(ssiat::sha256_hex(own.dump()), digest);
  // A tokenizer.model or tokenizer.json from another save (or edited) is refused, naming the file.
  for (const char* f : {"tokenizer.model", "tokenizer.json"}) {
    fs::remove_all(dir_ / "mix");
    fs::copy(dir_ / "tok", dir_ / "mix");
    fs::copy_file(dir_ / "tok2" / f, dir_ / "mix" / f, fs::copy_options::overwrite_existing);
    const Cmd r = run_cli(dir_, "tokenizer encode --tokenizer mix < held.txt");
    EXPECT_NE(r.status, 0) << f;
    std::string want = "mix/";  // built with += : GCC 12 gives a false -Wrestrict on "lit" + string&&
    want += f;
    want += ": SHA-256";
    EXPECT_NE(r.err.find(want), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("different saves"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // Provenance is covered too: an edited source path changes nothing in the encoding but is refused.
  fs::remove_all(dir_ / "mix");
  fs::copy(dir_ / "tok", dir_ / "mix");
  std::string text = slurp(dir_ / "mix" / "tokenizer.ssiat.json");
  const size_t at = text.find("\"train.txt\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 11, "\"other.txt\"");
  write_file(dir_ / "mix" / "tokenizer.ssiat.json", text);
  const Cmd r = run_cli(dir_, "tokenizer encode --tokenizer mix < held.txt");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("does not match the contents"), std::string::npos) << r.err;
  // Hidden leftovers of a killed save beside a tokenizer are never read.
  fs::create_directories(dir_ / ".tok.tmp-999999");
  write_file(dir_ / ".tok.tmp-999999" / "tokenizer.ssiat.json", "{");
  EXPECT_EQ(run_cli(dir_, "tokenizer encode --tokenizer tok < held.txt").status, 0);
}

TEST_F(TokenizerCli, PrepareAndTrainWithBpeRecordsTokenizerProvenance) {
  train();
  // Documents are paragraphs separated by blank lines.
  std::string docs = slurp(dir_ / "train.txt");
  for (size_t p = docs.find('\n'); p != std::string::npos; p = docs.find('\n', p + 2)) docs.insert(p, "\n");
  write_file(dir_ / "docs.txt", docs);
  Cmd r = run_cli(dir_, "data prepare --input docs.txt --out prep --tokenizer tok");
  ASSERT_EQ(r.status, 0) << r.err;
  // One thread or three: the same shards.
  r = run_cli(dir_, "data prepare --input docs.txt --out prep1 --tokenizer tok --threads 1");
  ASSERT_EQ(r.status, 0) << r.err;
  r = run_cli(dir_, "data prepare --input docs.txt --out prep3 --tokenizer tok --threads 3");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(slurp(dir_ / "prep1" / "manifest.json"), slurp(dir_ / "prep3" / "manifest.json"));
  const auto own = nlohmann::json::parse(slurp(dir_ / "tok" / "tokenizer.ssiat.json"));
  const auto manifest = nlohmann::json::parse(slurp(dir_ / "prep" / "manifest.json"));
  EXPECT_EQ(manifest.at("tokenizer").at("digest"), own.at("digest"));
  EXPECT_EQ(manifest.at("tokenizer").at("name"), "bpe");
  write_file(dir_ / "r.toml", R"(seed = 3
[model]
vocab_size = 1536
n_layer = 1
d_model = 32
n_head = 4
d_ff = 64
max_seq_len = 32
[tokenizer]
kind = "bpe"
path = "tok"
[data]
train = "prep"
[train]
steps = 3
micro_batch = 2
seq_len = 32
[optim]
lr = 0.001
)");
  r = run_cli(dir_, "train r.toml --run-dir run -q");
  ASSERT_EQ(r.status, 0) << r.err;
  bool found = false;
  for (const auto& rec : jsonl(dir_ / "run" / "seeds.jsonl"))
    if (rec.at("type") == "tokenizer") {
      found = true;
      EXPECT_EQ(rec.at("digest"), own.at("digest"));
      EXPECT_EQ(rec.at("sources").at(0).at("sha256"), ssiat::sha256_file(dir_ / "train.txt"));
    }
  EXPECT_TRUE(found);
  // Data prepared with another tokenizer is refused, naming both digests.
  r = run_cli(dir_, "data prepare --input docs.txt --out prep_byte");
  ASSERT_EQ(r.status, 0) << r.err;
  r = run_cli(dir_, "train r.toml --run-dir run2 -q --set data.train=prep_byte");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("prepared with tokenizer"), std::string::npos) << r.err;
  // A model smaller than the vocabulary is refused.
  r = run_cli(dir_, "train r.toml --run-dir run3 -q --set model.vocab_size=1000");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("model.vocab_size"), std::string::npos) << r.err;
}

}  // namespace
