// Checkpoint I/O (core/checkpoint.h): byte-exact round trips, the on-disk format checked with the
// HDF5 C API and nlohmann::json directly (not through the reader under test), the digest chain,
// the manifest's self-digest (every edited field refused, by name where a field check sees it),
// corruption detection naming the file and tensor, the three failure classes (torn,
// TornCheckpointError; integrity, IntegrityError), interrupted writes, `latest` and pruning, the
// exact tensor-set check, and the choice of a resume point: torn checkpoints are passed over and
// set aside, an integrity failure stops the search with nothing renamed.
#include "core/checkpoint.h"

#include <hdf5.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <limits>
#include <stdexcept>
#include <typeinfo>
#include <utility>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"

namespace fs = std::filesystem;

namespace ssiat {
namespace {

// A fresh directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "ssiat_ckpt_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Owned tensors with awkward shapes, dotted names and special float bit patterns.
struct Fixture {
  std::vector<std::string> keys;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<float>> data;

  explicit Fixture(uint32_t salt = 0) {
    add("param/model.embed_tokens.weight", {3, 5});
    add("param/model.layers.0.self_attn.q_proj.weight", {7, 1, 3});
    add("param/model.norm.weight", {13});
    add("adam_m/model.norm.weight", {13});
    add("adam_v/model.layers.0.mlp.gate_proj.weight", {2, 3, 2, 1});
    add("param/lm_head.scale", {});     // rank 0: one element
    add("adam_v/model.empty.bias", {0, 4});  // no elements
    for (size_t t = 0; t < data.size(); t++)
      for (size_t i = 0; i < data[t].size(); i++)
        data[t][i] = static_cast<float>(std::sin(static_cast<double>(t * 131 + i + salt))) * 1e3f;
    // Bit patterns a lossy path would change: NaN payload, -0, subnormal, inf.
    data[0][0] = from_bits(0x7fc12345u);
    data[0][1] = -0.0f;
    data[0][2] = from_bits(0x00000001u);
    data[0][3] = -std::numeric_limits<float>::infinity();
  }
  void add(const std::string& key, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    keys.push_back(key);
    shapes.push_back(std::move(shape));
    data.emplace_back(static_cast<size_t>(n));
  }
  std::vector<CheckpointTensor> views() const {
    std::vector<CheckpointTensor> v;
    for (size_t t = 0; t < keys.size(); t++) v.push_back({keys[t], shapes[t], data[t].data()});
    return v;
  }
};

CheckpointMeta meta_for(int64_t step, std::string parent = "init-root") {
  CheckpointMeta m;
  m.step = step;
  m.samples_seen = step * 32;
  m.master_seed = 0xfedcba9876543210ull;  // above INT64_MAX: must survive JSON as uint64
  m.parent = std::move(parent);
  m.recipe = "seed = 3\n\n[train]\nmicro_batch = 8\ngrad_accum = 4\n\n[optim]\nlr = 0.001\n";  // 32 samples a step
  m.extra = {{"lr", 0.25}, {"note", "x"}, {"loss", 2.718281828459045}};
  return m;
}

// The self-digest as core/checkpoint.h specifies it, computed here from the spec: SHA-256 of the
// compact dump of the manifest object without "manifest_sha256".
std::string self_digest_of(nlohmann::json m) {
  m.erase("manifest_sha256");
  return sha256_hex(m.dump());
}

// Writes an edited manifest with its self-digest recomputed, as a careful forger would, so that
// the checks behind the self-digest are reached.
void write_resealed(const fs::path& mpath, nlohmann::json m) {
  m["manifest_sha256"] = self_digest_of(m);
  write_bytes(mpath, m.dump(2));
}

// Runs f, expects an exception of type E (IoError or a subclass), and returns its message.
template <typename E = IoError, typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected " << typeid(E).name() << ", got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected " << typeid(E).name() << ", nothing thrown";
  return "";
}


bool has_tmp_entries(const fs::path& root) {
  for (const auto& e : fs::directory_iterator(root))
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) return true;
  return false;
}

TEST(Checkpoint, RoundTripIsByteExact) {
  TempDir dir;
  const Fixture fx;
  const std::string digest = write_checkpoint(dir.path(), meta_for(7), fx.views());
  const auto latest = latest_checkpoint(dir.path());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(*latest, dir.path() / "checkpoints" / "step_00000007");

  const LoadedCheckpoint ck = read_checkpoint(*latest);
  EXPECT_EQ(ck.digest, digest);
  EXPECT_EQ(ck.meta.step, 7);
  EXPECT_EQ(ck.meta.samples_seen, 7 * 32);
  EXPECT_EQ(ck.meta.master_seed, 0xfedcba9876543210ull);
  EXPECT_EQ(ck.meta.parent, "init-root");
  EXPECT_EQ(ck.meta.recipe, meta_for(7).recipe);
  EXPECT_EQ(ck.meta.extra, meta_for(7).extra);
  ASSERT_EQ(ck.tensors.size(), fx.keys.size());
  for (size_t t = 0; t < fx.keys.size(); t++) {
    SCOPED_TRACE(fx.keys[t]);
    ASSERT_EQ(ck.tensors.count(fx.keys[t]), 1u);
    EXPECT_EQ(ck.shapes.at(fx.keys[t]), fx.shapes[t]);
    const auto& got = ck.tensors.at(fx.keys[t]);
    ASSERT_EQ(got.size(), fx.data[t].size());
    EXPECT_EQ(std::memcmp(got.data(), fx.data[t].data(), got.size() * sizeof(float)), 0);
  }
}

TEST(Checkpoint, OnDiskFormatMatchesSpec) {
  TempDir dir;
  const Fixture fx;
  const std::string digest = write_checkpoint(dir.path(), meta_for(3), fx.views());
  const fs::path root = dir.path() / "checkpoints";
  const fs::path ck = root / "step_00000003";
  EXPECT_EQ(read_bytes(root / "latest"), "step_00000003\n");
  EXPECT_FALSE(has_tmp_entries(root));

  // Digest = SHA-256 of manifest.json; the manifest is pretty-printed and lists every tensor.
  const std::string mbytes = read_bytes(ck / "manifest.json");
  EXPECT_EQ(digest, sha256_file(ck / "manifest.json"));
  EXPECT_NE(mbytes.find("\n  \"format\""), std::string::npos);
  const auto m = nlohmann::json::parse(mbytes);
  EXPECT_EQ(m.at("format"), "ssiat-checkpoint/v2");
  EXPECT_EQ(m.at("step"), 3);
  EXPECT_EQ(m.at("samples_seen"), 96);
  EXPECT_EQ(m.at("master_seed").get<uint64_t>(), 0xfedcba9876543210ull);
  EXPECT_EQ(m.at("parent"), "init-root");
  EXPECT_EQ(m.at("recipe"), meta_for(3).recipe);
  EXPECT_EQ(m.at("extra"), meta_for(3).extra);
  EXPECT_EQ(m.at("manifest_sha256"), self_digest_of(m));
  EXPECT_EQ(m.at("state_sha256"), sha256_file(ck / "state.h5"));
  ASSERT_EQ(m.at("tensors").size(), fx.keys.size());

  // Every dataset at "/<group>/<name>" is float32 LE with sha256 and shape attributes.
  const hid_t file = H5Fopen((ck / "state.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  for (size_t t = 0; t < fx.keys.size(); t++) {
    SCOPED_TRACE(fx.keys[t]);
    const std::string want_sha = sha256_hex(fx.data[t].data(), fx.data[t].size() * sizeof(float));
    EXPECT_EQ(m["tensors"][fx.keys[t]]["sha256"], want_sha);
    EXPECT_EQ(m["tensors"][fx.keys[t]]["shape"].get<std::vector<int64_t>>(), fx.shapes[t]);
    const hid_t ds = H5Dopen2(file, ("/" + fx.keys[t]).c_str(), H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    const hid_t ty = H5Dget_type(ds);
    EXPECT_GT(H5Tequal(ty, H5T_IEEE_F32LE), 0);
    H5Tclose(ty);
    const hid_t sp = H5Dget_space(ds);
    const int nd = H5Sget_simple_extent_ndims(sp);
    std::vector<hsize_t> dims(static_cast<size_t>(std::max(nd, 0)));
    H5Sget_simple_extent_dims(sp, dims.data(), nullptr);
    H5Sclose(sp);
    EXPECT_EQ(std::vector<int64_t>(dims.begin(), dims.end()), fx.shapes[t]);
    if (!fx.data[t].empty()) {
      std::vector<float> raw(fx.data[t].size());
      ASSERT_GE(H5Dread(ds, H5T_IEEE_F32LE, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), 0);
      EXPECT_EQ(std::memcmp(raw.data(), fx.data[t].data(), raw.size() * 4), 0);
    }
    const hid_t sa = H5Aopen(ds, "sha256", H5P_DEFAULT);
    ASSERT_GE(sa, 0);
    const hid_t sty = H5Aget_type(sa);
    std::string s(H5Tget_size(sty), '\0');
    EXPECT_GE(H5Aread(sa, sty, s.data()), 0);
    s.erase(s.find_last_not_of('\0') + 1);
    EXPECT_EQ(s, want_sha);
    H5Tclose(sty);
    H5Aclose(sa);
    EXPECT_GT(H5Aexists(ds, "shape"), 0);
    if (!fx.shapes[t].empty()) {
      const hid_t pa = H5Aopen(ds, "shape", H5P_DEFAULT);
      std::vector<int64_t> shape(fx.shapes[t].size());
      EXPECT_GE(H5Aread(pa, H5T_NATIVE_INT64, shape.data()), 0);
      EXPECT_EQ(shape, fx.shapes[t]);
      H5Aclose(pa);
    }
    // No timestamps: the same tensors must give the same file bytes (checked below too).
    H5O_info_t info;
    ASSERT_GE(H5Oget_info_by_name2(file, ("/" + fx.keys[t]).c_str(), &info, H5O_INFO_TIME, H5P_DEFAULT), 0);
    EXPECT_EQ(info.ctime, 0);
    H5Dclose(ds);
  }
  H5Fclose(file);
}

// Known answer from outside this code: Python's
//   hashlib.sha256(struct.pack('<6f', 1, 2, 3, 4, 5, 6)).hexdigest()
TEST(Checkpoint, TensorHashIsSha256OfLittleEndianBytes) {
  TempDir dir;
  const float x[6] = {1, 2, 3, 4, 5, 6};
  write_checkpoint(dir.path(), meta_for(1), {{"param/model.x.weight", {2, 3}, x}});
  const auto m = nlohmann::json::parse(read_bytes(*latest_checkpoint(dir.path()) / "manifest.json"));
  EXPECT_EQ(m["tensors"]["param/model.x.weight"]["sha256"],
            "24ae2dfe8df57c1b80e54cef3d90ac3b417fd98973345a5f616bbc9a75dcc202");
}

TEST(Checkpoint, SameContentGivesSameDigest) {
  TempDir a, b;
  const Fixture fx;
  const std::string da = write_checkpoint(a.path(), meta_for(4), fx.views());
  const std::string db = write_checkpoint(b.path(), meta_for(4), fx.views());
  EXPECT_EQ(da, db);
  const Fixture other(1);
  EXPECT_NE(write_checkpoint(b.path(), meta_for(5), other.views()), da);
}

TEST(Checkpoint, ParentChainIsRecorded) {
  TempDir dir;
  const Fixture f1, f2(5);
  const std::string d1 = write_checkpoint(dir.path(), meta_for(1, "root-digest"), f1.views());
  const std::string d2 = write_checkpoint(dir.path(), meta_for(2, d1), f2.views());
  EXPECT_NE(d1, d2);
  const fs::path root = dir.path() / "checkpoints";
  EXPECT_EQ(*latest_checkpoint(dir.path()), root / "step_00000002");
  const LoadedCheckpoint c2 = read_checkpoint(root / "step_00000002");
  const LoadedCheckpoint c1 = read_checkpoint(root / "step_00000001");
  EXPECT_EQ(c2.meta.parent, sha256_file(root / "step_00000001" / "manifest.json"));
  EXPECT_EQ(c2.meta.parent, c1.digest);
  EXPECT_EQ(c1.meta.parent, "root-digest");
}

TEST(Checkpoint, FlippedByteInStateIsDetected) {
  TempDir dir;
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(1), fx.views());
  const fs::path ck = *latest_checkpoint(dir.path());
  std::string bytes = read_bytes(ck / "state.h5");
  // Flip a bit inside the raw data of param/model.norm.weight (element 5), found by its bytes.
  const char* needle = reinterpret_cast<const char*>(&fx.data[2][5]);
  const size_t pos = bytes.find(std::string(needle, 4));
  ASSERT_NE(pos, std::string::npos);
  ASSERT_EQ(bytes.find(std::string(needle, 4), pos + 1), std::string::npos) << "needle not unique";
  bytes[pos] = static_cast<char>(bytes[pos] ^ 0x01);
  write_bytes(ck / "state.h5", bytes);  // same size: not torn, an integrity failure
  const std::string msg = error_of<IntegrityError>([&] { read_checkpoint(ck); });
  EXPECT_EQ(msg.rfind((ck / "state.h5").string() + ": tensor param/model.norm.weight has SHA-256 ", 0), 0u) << msg;
  EXPECT_NE(msg.find(" but the manifest says " + sha256_hex(fx.data[2].data(), fx.data[2].size() * 4)),
            std::string::npos)
      << msg;
}

TEST(Checkpoint, ManifestTensorHashMismatchNamesTensor) {
  TempDir dir;
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(1), fx.views());
  const fs::path ck = *latest_checkpoint(dir.path());
  auto m = nlohmann::json::parse(read_bytes(ck / "manifest.json"));
  std::string sha = m["tensors"]["adam_m/model.norm.weight"]["sha256"];
  sha[10] = sha[10] == '0' ? '1' : '0';
  m["tensors"]["adam_m/model.norm.weight"]["sha256"] = sha;
  write_resealed(ck / "manifest.json", m);
  const std::string msg = error_of<IntegrityError>([&] { read_checkpoint(ck); });
  EXPECT_NE(msg.find("state.h5: tensor adam_m/model.norm.weight has SHA-256 "), std::string::npos) << msg;
  EXPECT_NE(msg.find("but the manifest says " + sha), std::string::npos) << msg;
}

TEST(Checkpoint, ManifestShapeMismatchNamesTensor) {
  TempDir dir;
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(1), fx.views());
  const fs::path ck = *latest_checkpoint(dir.path());
  auto m = nlohmann::json::parse(read_bytes(ck / "manifest.json"));
  m["tensors"]["param/model.embed_tokens.weight"]["shape"] = {5, 3};  // same numel, other shape
  write_resealed(ck / "manifest.json", m);
  const std::string msg = error_of<IntegrityError>([&] { read_checkpoint(ck); });
  EXPECT_NE(msg.find("param/model.embed_tokens.weight"), std::string::npos) << msg;
}

TEST(Checkpoint, RewrittenDatasetIsDetectedEvenWithMatchingFileHash) {
  TempDir dir;
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(1), fx.views());
  const fs::path ck = *latest_checkpoint(dir.path());
  {  // Overwrite one tensor's values in place with HDF5, leaving its sha256 attribute stale.
    const hid_t file = H5Fopen((ck / "state.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const hid_t ds = H5Dopen2(file, "/param/model.layers.0.self_attn.q_proj.weight", H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    std::vector<float> v = fx.data[1];
    v[4] += 1.0f;
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
    H5Dclose(ds);
    H5Fclose(file);
  }
  auto m = nlohmann::json::parse(read_bytes(ck / "manifest.json"));
  m["state_sha256"] = sha256_file(ck / "state.h5");  // an attacker fixing up the file hash
  write_resealed(ck / "manifest.json", m);
  const std::string msg = error_of<IntegrityError>([&] { read_checkpoint(ck); });
  EXPECT_NE(msg.find("param/model.layers.0.self_attn.q_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("state.h5"), std::string::npos) << msg;
}

TEST(Checkpoint, TruncatedOrMissingManifestIsTorn) {
  TempDir dir;
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(1), fx.views());
  const fs::path ck = *latest_checkpoint(dir.path());
  write_bytes(ck / "manifest.json", "{\"format\": ");
  std::string msg = error_of<TornCheckpointError>([&] { read_checkpoint(ck); });
  EXPECT_EQ(msg, (ck / "manifest.json").string() + ": invalid JSON at byte 12") << msg;
  fs::remove(ck / "manifest.json");
  msg = error_of<TornCheckpointError>([&] { read_checkpoint(ck); });
  EXPECT_EQ(msg, (ck / "manifest.json").string() + ": missing (the checkpoint was not completely written)") << msg;
}

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("simulated crash") {}
};

TEST(Checkpoint, InterruptedWriteLeavesPreviousLatest) {
  TempDir dir;
  const Fixture f1, f2(9);
  const std::string d1 = write_checkpoint(dir.path(), meta_for(1), f1.views());
  const fs::path root = dir.path() / "checkpoints";

  std::vector<std::string> seen;
  const auto hook = [&](const std::string& key) {
    seen.push_back(key);
    if (seen.size() == 2) throw Interrupted();
  };
  EXPECT_THROW(write_checkpoint(dir.path(), meta_for(2, d1), f2.views(), hook), Interrupted);
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(*latest_checkpoint(dir.path()), root / "step_00000001");
  EXPECT_FALSE(fs::exists(root / "step_00000002"));
  EXPECT_FALSE(has_tmp_entries(root));
  EXPECT_EQ(read_checkpoint(root / "step_00000001").digest, d1);

  // The hook sees every tensor, once each, in order; a later write succeeds.
  seen.clear();
  const std::string d2 =
      write_checkpoint(dir.path(), meta_for(2, d1), f2.views(), [&](const std::string& k) { seen.push_back(k); });
  EXPECT_EQ(seen, f2.keys);
  EXPECT_EQ(*latest_checkpoint(dir.path()), root / "step_00000002");
  EXPECT_EQ(read_checkpoint(root / "step_00000002").digest, d2);
}

TEST(Checkpoint, LeftoverTmpIsIgnoredThenRemoved) {
  TempDir dir;
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(1), fx.views());
  const fs::path root = dir.path() / "checkpoints";
  fs::create_directory(root / ".tmp-step_00000002");  // a killed writer's leftovers
  write_bytes(root / ".tmp-step_00000002" / "state.h5", "partial");
  EXPECT_EQ(*latest_checkpoint(dir.path()), root / "step_00000001");
  EXPECT_THROW(read_checkpoint(root / ".tmp-step_00000002"), IoError);
  write_checkpoint(dir.path(), meta_for(2), fx.views());
  EXPECT_FALSE(has_tmp_entries(root));
  EXPECT_EQ(*latest_checkpoint(dir.path()), root / "step_00000002");
}

TEST(Checkpoint, OrphanFromCrashBeforeLatestIsReplaced) {
  TempDir dir;
  const Fixture f1, f2(2), f3(3);
  write_checkpoint(dir.path(), meta_for(1), f1.views());
  write_checkpoint(dir.path(), meta_for(2), f2.views());
  const fs::path root = dir.path() / "checkpoints";
  write_file_atomic(root / "latest", "step_00000001\n");  // crash after publish, before `latest`
  const std::string d = write_checkpoint(dir.path(), meta_for(2), f3.views());
  const LoadedCheckpoint ck = read_checkpoint(*latest_checkpoint(dir.path()));
  EXPECT_EQ(ck.digest, d);
  EXPECT_EQ(std::memcmp(ck.tensors.at(f3.keys[2]).data(), f3.data[2].data(), f3.data[2].size() * 4), 0);
  // The checkpoint `latest` names is never overwritten.
  EXPECT_THROW(write_checkpoint(dir.path(), meta_for(2), f1.views()), IoError);
  EXPECT_EQ(read_checkpoint(*latest_checkpoint(dir.path())).digest, d);
}

TEST(Checkpoint, LatestAbsentOrDangling) {
  TempDir dir;
  EXPECT_FALSE(latest_checkpoint(dir.path()).has_value());
  fs::create_directories(dir.path() / "checkpoints");
  EXPECT_FALSE(latest_checkpoint(dir.path()).has_value());
  write_file_atomic(dir.path() / "checkpoints" / "latest", "step_00000042\n");
  EXPECT_FALSE(latest_checkpoint(dir.path()).has_value());
}

TEST(Checkpoint, InvalidInputWritesNothing) {
  TempDir dir;
  const float x[2] = {1, 2};
  EXPECT_THROW(write_checkpoint(dir.path(), meta_for(1), {{"nogroup", {2}, x}}), IoError);
  EXPECT_THROW(write_checkpoint(dir.path(), meta_for(1), {{"param/a", {2}, x}, {"param/a", {2}, x}}), IoError);
  EXPECT_THROW(write_checkpoint(dir.path(), meta_for(1), {{"param/a", {2}, nullptr}}), IoError);
  // "param/a" cannot be both a dataset and a group.
  EXPECT_THROW(write_checkpoint(dir.path(), meta_for(1),
                                {{"param/a", {2}, x}, {"param/a.b", {2}, x}, {"param/a/c", {2}, x}}),
               IoError);
  EXPECT_THROW(write_checkpoint(dir.path(), meta_for(1), {{"param/a", {-1}, x}}), IoError);
  EXPECT_THROW(write_checkpoint(dir.path(), meta_for(-1), {{"param/a", {2}, x}}), IoError);
  EXPECT_FALSE(fs::exists(dir.path() / "checkpoints"));
  // A run directory that is a file: the filesystem error surfaces as IoError.
  write_bytes(dir.path() / "file", "x");
  EXPECT_THROW(write_checkpoint(dir.path() / "file", meta_for(1), {{"param/a", {2}, x}}), IoError);
}

std::vector<std::string> step_dirs(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Checkpoint, PruneKeepsNewestByStep) {
  TempDir dir;
  const Fixture fx;
  // Written out of step order: pruning must go by step number, not by time or name order.
  for (int64_t s : {5, 1, 10, 3, 2}) write_checkpoint(dir.path(), meta_for(s), fx.views());
  const fs::path root = dir.path() / "checkpoints";
  fs::create_directory(root / ".tmp-step_00000011");
  prune_checkpoints(dir.path(), 3);
  // latest names step 2 (the last written): kept although not among the newest 3.
  EXPECT_EQ(step_dirs(root), (std::vector<std::string>{"step_00000002", "step_00000003", "step_00000005",
                                                       "step_00000010"}));
  prune_checkpoints(dir.path(), 1);
  EXPECT_EQ(step_dirs(root), (std::vector<std::string>{"step_00000002", "step_00000010"}));
  prune_checkpoints(dir.path(), 0);
  EXPECT_EQ(step_dirs(root), (std::vector<std::string>{"step_00000002"}));
  EXPECT_EQ(*latest_checkpoint(dir.path()), root / "step_00000002");
  EXPECT_THROW(prune_checkpoints(dir.path(), -1), ConfigError);
}

// ---- the self-digest ------------------------------------------------------------------------

TEST(Checkpoint, EveryEditedManifestFieldIsRefusedNamingTheFileAndKey) {
  TempDir dir;
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(40), fx.views());
  const fs::path ck = *latest_checkpoint(dir.path());
  const fs::path mpath = ck / "manifest.json";
  const std::string original = read_bytes(mpath);
  const auto m0 = nlohmann::json::parse(original);
  const std::string other_recipe = "seed = 3\n\n[train]\nmicro_batch = 8\ngrad_accum = 4\n\n[optim]\nlr = 0.002\n";
  // One edit per field the header lists, each leaving valid JSON of the right types, with what the
  // one-line IntegrityError must say: the field by name where a field check sees it (also when a
  // forger recomputed the self-digest), else manifest_sha256.
  struct Edit {
    std::string field;
    std::function<void(nlohmann::json&)> edit;
    std::string says;
  };
  const std::vector<Edit> edits = {
      {"step", [](auto& m) { m["step"] = 41; }, "step 41 disagrees with the directory name step_00000040"},
      {"samples_seen", [](auto& m) { m["samples_seen"] = 1281; },
       "samples_seen 1281 disagrees with step × train.micro_batch × train.grad_accum × parallel.dp = 40 × 8 × 4 × 1 = 1280"},
      {"recipe", [&](auto& m) { m["recipe"] = other_recipe; }, "recipe_sha256 " + sha256_hex(meta_for(40).recipe) +
                                                                  " is not the SHA-256 of the recorded recipe text"},
      {"recipe_sha256", [](auto& m) { m["recipe_sha256"] = std::string(64, 'a'); }, "recipe_sha256 aaaa"},
      {"master_seed", [](auto& m) { m["master_seed"] = 0xfedcba9876543211ull; }, "manifest_sha256 does not match"},
      {"parent", [](auto& m) { m["parent"] = "other-root"; }, "manifest_sha256 does not match"},
      {"extra", [](auto& m) { m["extra"]["loss"] = 1.5; }, "manifest_sha256 does not match"},
      {"state_sha256", [](auto& m) { m["state_sha256"] = std::string(64, 'a'); }, "manifest_sha256 does not match"},
      {"tensors", [](auto& m) { m["tensors"].erase("param/lm_head.scale"); }, "manifest_sha256 does not match"},
      {"manifest_sha256", [](auto& m) { m["manifest_sha256"] = std::string(64, '0'); }, "manifest_sha256 does not match"},
      {"no manifest_sha256", [](auto& m) { m.erase("manifest_sha256"); }, "missing key 'manifest_sha256'"},
      {"no recipe_sha256", [](auto& m) { m.erase("recipe_sha256"); }, "missing key 'recipe_sha256'"},
  };
  for (const auto& e : edits) {
    SCOPED_TRACE(e.field);
    auto m = m0;
    e.edit(m);
    write_bytes(mpath, m.dump(2));
    const std::string msg = error_of<IntegrityError>([&] { read_checkpoint(ck); });
    EXPECT_EQ(msg.rfind(mpath.string() + ": " + e.says, 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  // A forger who recomputes the self-digest still meets the field checks.
  for (const auto& e : std::vector<Edit>(edits.begin(), edits.begin() + 3)) {
    SCOPED_TRACE("resealed " + e.field);
    auto m = m0;
    e.edit(m);
    write_resealed(mpath, m);
    EXPECT_EQ(error_of<IntegrityError>([&] { read_checkpoint(ck); }).rfind(mpath.string() + ": " + e.says, 0), 0u);
  }
  // Whitespace is not an edit: the same object re-indented reads back.
  write_bytes(mpath, m0.dump(7));
  EXPECT_EQ(read_checkpoint(ck).meta.step, 40);
}

TEST(CheckpointManifest, RoundTripAndTypedRefusals) {
  const std::map<std::string, ManifestTensor> tensors = {{"param/a.weight", {{2, 3}, std::string(64, 'b')}},
                                                         {"adam_m/a.weight", {{}, std::string(64, 'c')}}};
  const std::string bytes = manifest_json(meta_for(5), tensors, std::string(64, 'd'));
  const CheckpointManifest man = parse_manifest(bytes, "m.json");
  EXPECT_EQ(man.meta.step, 5);
  EXPECT_EQ(man.meta.samples_seen, 160);
  EXPECT_EQ(man.meta.master_seed, 0xfedcba9876543210ull);
  EXPECT_EQ(man.meta.recipe, meta_for(5).recipe);
  EXPECT_EQ(man.meta.extra, meta_for(5).extra);
  EXPECT_EQ(man.state_sha256, std::string(64, 'd'));
  ASSERT_EQ(man.tensors.size(), 2u);
  EXPECT_EQ(man.tensors.at("param/a.weight").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(man.digest, sha256_hex(bytes));

  auto refused = [](const std::string& b) {
    try {
      parse_manifest(b, "m.json");
    } catch (const IoError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("m.json: ", 0), 0u) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      return msg;
    }
    ADD_FAILURE() << "accepted: " << b.substr(0, 200);
    return std::string();
  };
  EXPECT_NE(refused("").find("invalid JSON"), std::string::npos);
  // Torn (what a crash leaves): not JSON, not an object, not v2. Anything else: integrity.
  for (const std::string& b : {std::string(""), bytes.substr(0, bytes.size() / 2), std::string("[1]"),
                              std::string("{\"format\":\"ssiat-checkpoint/v1\"}")})
    EXPECT_THROW(parse_manifest(b, "m.json"), TornCheckpointError) << b;
  {
    auto edited = nlohmann::json::parse(bytes);
    edited["parent"] = "x";
    EXPECT_THROW(parse_manifest(edited.dump(), "m.json"), IntegrityError);
    edited["recipe"] = "seed = 4\n";
    edited["manifest_sha256"] = self_digest_of(edited);
    EXPECT_NE(error_of<IntegrityError>([&] { parse_manifest(edited.dump(), "m.json"); }).find("recipe_sha256"),
              std::string::npos);
  }
  EXPECT_NE(refused("[1,2]").find("not a JSON object"), std::string::npos);
  EXPECT_NE(refused(std::string(100, '[') + std::string(100, ']')).find("nested deeper"), std::string::npos);
  // A v1 manifest (no self-digest, no recipe) is refused by its format.
  auto v1 = nlohmann::json::parse(bytes);
  v1["format"] = "ssiat-checkpoint/v1";
  EXPECT_NE(refused(v1.dump()).find("format"), std::string::npos);
  // Wrong types and bad values behind a valid self-digest are named by key.
  auto sealed = [](nlohmann::json m) {
    m["manifest_sha256"] = self_digest_of(m);
    return m.dump();
  };
  const auto m = nlohmann::json::parse(bytes);
  auto with = [&](const char* key, nlohmann::json v) {
    auto c = m;
    c[key] = std::move(v);
    return sealed(c);
  };
  EXPECT_NE(refused(with("step", -1)).find("'step'"), std::string::npos);
  EXPECT_NE(refused(with("step", 1.5)).find("'step'"), std::string::npos);
  EXPECT_NE(refused(with("samples_seen", "7")).find("'samples_seen'"), std::string::npos);
  EXPECT_NE(refused(with("master_seed", -3)).find("'master_seed'"), std::string::npos);
  EXPECT_NE(refused(with("recipe", 5)).find("'recipe'"), std::string::npos);
  EXPECT_NE(refused(with("extra", nlohmann::json::array())).find("'extra'"), std::string::npos);
  EXPECT_NE(refused(with("state_sha256", "xyz")).find("state_sha256"), std::string::npos);
  auto bad_tensor = [&](nlohmann::json entry) {
    auto c = m;
    c["tensors"]["param/b"] = std::move(entry);
    return sealed(c);
  };
  EXPECT_NE(refused(bad_tensor({{"shape", {-1}}, {"sha256", std::string(64, 'a')}})).find("param/b"),
            std::string::npos);
  EXPECT_NE(refused(bad_tensor({{"shape", {1ll << 40, 1ll << 40}}, {"sha256", std::string(64, 'a')}})).find("too large"),
            std::string::npos);
  EXPECT_NE(refused(bad_tensor({{"shape", {1}}})).find("param/b"), std::string::npos);
  auto c = m;
  c["tensors"]["param/\nx"] = {{"shape", {1}}, {"sha256", std::string(64, 'a')}};
  EXPECT_NE(refused(sealed(c)).find("control character"), std::string::npos);
}

// ---- the tensor set must match the model exactly ----------------------------------------------

TEST(Checkpoint, TensorSetMustMatchTheModelExactly) {
  TempDir dir;
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(1), fx.views());
  const fs::path ckdir = *latest_checkpoint(dir.path());
  const LoadedCheckpoint ck = read_checkpoint(ckdir);
  std::map<std::string, std::vector<int64_t>> expected;
  for (size_t t = 0; t < fx.keys.size(); t++) expected[fx.keys[t]] = fx.shapes[t];
  EXPECT_NO_THROW(check_checkpoint_tensors(ck, expected, ckdir));

  auto error_of = [&](const std::map<std::string, std::vector<int64_t>>& want) {
    try {
      check_checkpoint_tensors(ck, want, ckdir);
    } catch (const ConfigError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(ckdir.string()), std::string::npos) << msg;
      return msg;
    }
    ADD_FAILURE() << "accepted";
    return std::string();
  };
  auto missing = expected;
  missing["param/model.extra.weight"] = {2};  // the model has a tensor the checkpoint lacks
  EXPECT_NE(error_of(missing).find("no tensor 'param/model.extra.weight'"), std::string::npos);
  auto extra = expected;
  extra.erase("param/lm_head.scale");  // e.g. an lm_head under tied embeddings
  EXPECT_NE(error_of(extra).find("has tensor 'param/lm_head.scale'"), std::string::npos);
  auto shape = expected;
  shape["param/model.embed_tokens.weight"] = {5, 3};
  const std::string msg = error_of(shape);
  EXPECT_NE(msg.find("'param/model.embed_tokens.weight' has shape [3,5] in the checkpoint but [5,3]"),
            std::string::npos)
      << msg;
}

// ---- resume point: no dead ends ----------------------------------------------------------------

// Three checkpoints, steps 2, 4 and 6; `latest` names step 6.
void write_three(const fs::path& run) {
  std::string parent = "root";
  for (int64_t s : {2, 4, 6}) parent = write_checkpoint(run, meta_for(s, parent), Fixture(static_cast<uint32_t>(s)).views());
}

TEST(CheckpointResume, LatestGoodIsUsedAsIs) {
  TempDir dir;
  write_three(dir.path());
  const ResumePoint rp = find_resume_point(dir.path());
  ASSERT_TRUE(rp.checkpoint.has_value());
  EXPECT_TRUE(rp.latest_ok);
  EXPECT_EQ(rp.checkpoint->meta.step, 6);
  EXPECT_TRUE(rp.rejected.empty());
}

TEST(CheckpointResume, MissingLatestFallsBackToNewestComplete) {
  TempDir dir;
  write_three(dir.path());
  const fs::path root = dir.path() / "checkpoints";
  fs::remove(root / "latest");
  const ResumePoint rp = find_resume_point(dir.path());
  ASSERT_TRUE(rp.checkpoint.has_value());
  EXPECT_FALSE(rp.latest_ok);
  EXPECT_EQ(rp.latest_problem, "is missing");
  EXPECT_EQ(rp.dir, root / "step_00000006");
  EXPECT_EQ(rp.checkpoint->meta.step, 6);
  set_aside_rejected(dir.path(), rp);
  EXPECT_EQ(read_bytes(root / "latest"), "step_00000006\n");
}

TEST(CheckpointResume, TornLatestFallsBackAndIsSetAside) {
  TempDir dir;
  write_three(dir.path());
  const fs::path root = dir.path() / "checkpoints";
  fs::remove(root / "step_00000006" / "state.h5");  // torn
  const fs::path s4 = root / "step_00000004" / "state.h5";
  fs::resize_file(s4, fs::file_size(s4) / 2);  // torn: truncated
  const ResumePoint rp = find_resume_point(dir.path());
  ASSERT_TRUE(rp.checkpoint.has_value());
  EXPECT_FALSE(rp.latest_ok);
  EXPECT_TRUE(rp.latest_rejected);
  EXPECT_EQ(rp.checkpoint->meta.step, 2);
  ASSERT_EQ(rp.rejected.size(), 2u);
  EXPECT_EQ(rp.rejected[0].dir, root / "step_00000006");
  EXPECT_EQ(rp.rejected[0].reason, (root / "step_00000006" / "state.h5").string() +
                                       ": missing (the checkpoint was not completely written)");
  EXPECT_EQ(rp.rejected[1].dir, root / "step_00000004");
  EXPECT_EQ(rp.rejected[1].reason.rfind(s4.string() + ": HDF5 file open failed (the file is truncated", 0), 0u)
      << rp.rejected[1].reason;
  EXPECT_EQ(rp.latest_problem.rfind("names step_00000006, which is torn (", 0), 0u) << rp.latest_problem;

  set_aside_rejected(dir.path(), rp);
  EXPECT_EQ(step_dirs(root), (std::vector<std::string>{"rejected-step_00000004", "rejected-step_00000006",
                                                       "step_00000002"}));
  EXPECT_EQ(*latest_checkpoint(dir.path()), root / "step_00000002");
  // The same steps can be written again, and pruning leaves the set-aside directories alone.
  const Fixture fx(44);
  write_checkpoint(dir.path(), meta_for(4), fx.views());
  write_checkpoint(dir.path(), meta_for(6), fx.views());
  EXPECT_EQ(read_checkpoint(*latest_checkpoint(dir.path())).meta.step, 6);
  prune_checkpoints(dir.path(), 1);
  EXPECT_EQ(step_dirs(root), (std::vector<std::string>{"rejected-step_00000004", "rejected-step_00000006",
                                                       "step_00000006"}));
}

// Every form of "torn" the header lists, applied to the newest checkpoint: resume falls back to
// the previous one and names the file.
TEST(CheckpointResume, EveryTornFormFallsBackNamingTheFile) {
  const std::vector<std::pair<std::string, std::function<void(const fs::path&)>>> damage = {
      {"manifest.json", [](const fs::path& d) { fs::remove(d / "manifest.json"); }},
      {"manifest.json", [](const fs::path& d) { write_bytes(d / "manifest.json", ""); }},
      {"manifest.json", [](const fs::path& d) { fs::resize_file(d / "manifest.json", 100); }},
      {"manifest.json", [](const fs::path& d) { write_bytes(d / "manifest.json", std::string(300, '\0')); }},
      {"manifest.json", [](const fs::path& d) { write_bytes(d / "manifest.json", "{\"format\": \"ssiat-checkpoint/v1\"}"); }},
      {"state.h5", [](const fs::path& d) { fs::remove(d / "state.h5"); }},
      {"state.h5", [](const fs::path& d) { write_bytes(d / "state.h5", ""); }},
      {"state.h5", [](const fs::path& d) { fs::resize_file(d / "state.h5", fs::file_size(d / "state.h5") - 1); }},
      {"state.h5", [](const fs::path& d) { fs::resize_file(d / "state.h5", fs::file_size(d / "state.h5") / 2); }},
      {"state.h5", [](const fs::path& d) { write_bytes(d / "state.h5", std::string(8192, '\0')); }},
  };
  for (size_t i = 0; i < damage.size(); i++) {
    SCOPED_TRACE(std::to_string(i) + " " + damage[i].first);
    TempDir dir;
    write_three(dir.path());
    const fs::path s6 = dir.path() / "checkpoints" / "step_00000006";
    damage[i].second(s6);
    EXPECT_EQ(error_of<TornCheckpointError>([&] { read_checkpoint(s6); }).rfind((s6 / damage[i].first).string() + ": ", 0),
              0u);
    const ResumePoint rp = find_resume_point(dir.path());
    ASSERT_TRUE(rp.checkpoint.has_value());
    EXPECT_EQ(rp.checkpoint->meta.step, 4);
    ASSERT_EQ(rp.rejected.size(), 1u);
    EXPECT_NE(rp.rejected[0].reason.find((s6 / damage[i].first).string()), std::string::npos) << rp.rejected[0].reason;
  }
  // `latest` malformed or dangling: the newest complete checkpoint, nothing rejected.
  for (const std::string latest : {"garbage\n", "", "step_00000009\n"}) {
    TempDir dir;
    write_three(dir.path());
    write_bytes(dir.path() / "checkpoints" / "latest", latest);
    const ResumePoint rp = find_resume_point(dir.path());
    ASSERT_TRUE(rp.checkpoint.has_value());
    EXPECT_EQ(rp.checkpoint->meta.step, 6);
    EXPECT_TRUE(rp.rejected.empty());
    EXPECT_FALSE(rp.latest_problem.empty());
  }
}

// An integrity failure is never skipped: wherever the search meets one (the checkpoint `latest`
// names, or an older one reached after a torn or missing `latest`), it stops with one line naming
// the file and the key or tensor, and nothing is renamed.
TEST(CheckpointResume, IntegrityFailureStopsTheSearch) {
  auto edit_manifest = [](const fs::path& ck, const char* key, const nlohmann::json& v) {
    auto m = nlohmann::json::parse(read_bytes(ck / "manifest.json"));
    m[key] = v;
    write_bytes(ck / "manifest.json", m.dump(2));
  };
  struct Case {
    std::string name;
    std::function<void(const fs::path& root)> damage;
    std::string file, says;
  };
  const std::vector<Case> cases = {
      {"latest edited", [&](const fs::path& r) { edit_manifest(r / "step_00000006", "samples_seen", 193); },
       "step_00000006/manifest.json", ": samples_seen 193 disagrees with"},
      {"latest edited, master_seed", [&](const fs::path& r) { edit_manifest(r / "step_00000006", "master_seed", 5); },
       "step_00000006/manifest.json", ": manifest_sha256 does not match the manifest's fields"},
      {"no latest, newest edited",
       [&](const fs::path& r) {
         fs::remove(r / "latest");
         edit_manifest(r / "step_00000006", "step", 7);
       },
       "step_00000006/manifest.json", ": step 7 disagrees with the directory name step_00000006"},
      {"latest torn, older edited",
       [&](const fs::path& r) {
         fs::remove(r / "step_00000006" / "manifest.json");
         edit_manifest(r / "step_00000004", "parent", "x");
       },
       "step_00000004/manifest.json", ": manifest_sha256 does not match"},
      {"latest tensor flipped",
       [&](const fs::path& r) {
         const Fixture f6(6);  // write_three's data for step 6
         std::string b = read_bytes(r / "step_00000006" / "state.h5");
         const size_t pos = b.find(std::string(reinterpret_cast<const char*>(&f6.data[2][5]), 4));
         ASSERT_NE(pos, std::string::npos);
         b[pos] ^= 0x40;
         write_bytes(r / "step_00000006" / "state.h5", b);
       },
       "step_00000006/state.h5", ": tensor param/model.norm.weight has SHA-256 "},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    write_three(dir.path());
    const fs::path root = dir.path() / "checkpoints";
    c.damage(root);
    const auto dirs_before = step_dirs(root);
    const bool had_latest = fs::exists(root / "latest");
    const std::string latest_before = had_latest ? read_bytes(root / "latest") : "";
    const std::string msg = error_of<IntegrityError>([&] { find_resume_point(dir.path()); });
    EXPECT_EQ(msg.rfind((root / c.file).string() + c.says, 0), 0u) << msg;
    EXPECT_NE(msg.find("; refusing to resume from it — move the directory aside to resume from the previous checkpoint"),
              std::string::npos)
        << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(step_dirs(root), dirs_before);
    EXPECT_EQ(fs::exists(root / "latest"), had_latest);
    if (had_latest) {
      EXPECT_EQ(read_bytes(root / "latest"), latest_before);
    }
  }
}

TEST(CheckpointResume, NoCompleteCheckpointAndNothingAtAll) {
  TempDir dir;
  EXPECT_FALSE(find_resume_point(dir.path()).checkpoint.has_value());  // no checkpoints/ at all
  EXPECT_EQ(find_resume_point(dir.path()).latest_problem, "is missing");
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(3), fx.views());
  const fs::path root = dir.path() / "checkpoints";
  write_bytes(root / "step_00000003" / "manifest.json", "{\"format\": ");
  write_bytes(root / "latest", "garbage\n");
  const ResumePoint rp = find_resume_point(dir.path());
  EXPECT_FALSE(rp.checkpoint.has_value());
  EXPECT_EQ(rp.latest_problem.rfind("is malformed (", 0), 0u) << rp.latest_problem;
  ASSERT_EQ(rp.rejected.size(), 1u);
  set_aside_rejected(dir.path(), rp);
  EXPECT_FALSE(fs::exists(root / "latest"));
  EXPECT_EQ(step_dirs(root), (std::vector<std::string>{"rejected-step_00000003"}));
  // A second bad copy of the same step is set aside beside the first, not over it.
  write_checkpoint(dir.path(), meta_for(3), fx.views());
  fs::remove(root / "step_00000003" / "manifest.json");
  set_aside_rejected(dir.path(), find_resume_point(dir.path()));
  EXPECT_EQ(step_dirs(root), (std::vector<std::string>{"rejected-step_00000003", "rejected-step_00000003.1"}));
}

}  // namespace
}  // namespace ssiat
