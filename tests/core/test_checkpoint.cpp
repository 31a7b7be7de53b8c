// Checkpoint I/O (core/checkpoint.h): byte-exact round trips, the on-disk format checked with the
// HDF5 C API and nlohmann::json directly (not through the reader under test), the digest chain,
// corruption detection naming the file and tensor, interrupted writes, `latest` and pruning.
#include "core/checkpoint.h"

#include <hdf5.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>
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
  m.extra = {{"lr", 0.25}, {"note", "x"}};
  return m;
}

// Runs f, expects IoError, and returns its message.
template <typename F>
std::string io_error_of(F&& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected IoError, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected IoError, nothing thrown";
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
  EXPECT_EQ(m.at("format"), "ssiat-checkpoint/v1");
  EXPECT_EQ(m.at("step"), 3);
  EXPECT_EQ(m.at("samples_seen"), 96);
  EXPECT_EQ(m.at("master_seed").get<uint64_t>(), 0xfedcba9876543210ull);
  EXPECT_EQ(m.at("parent"), "init-root");
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
  bytes[pos] = static_cast<char>(bytes[pos] ^ 0x01);
  write_bytes(ck / "state.h5", bytes);
  const std::string msg = io_error_of([&] { read_checkpoint(ck); });
  EXPECT_NE(msg.find("state.h5"), std::string::npos) << msg;
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
  write_bytes(ck / "manifest.json", m.dump(2));
  const std::string msg = io_error_of([&] { read_checkpoint(ck); });
  EXPECT_NE(msg.find("adam_m/model.norm.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("manifest.json"), std::string::npos) << msg;
}

TEST(Checkpoint, ManifestShapeMismatchNamesTensor) {
  TempDir dir;
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(1), fx.views());
  const fs::path ck = *latest_checkpoint(dir.path());
  auto m = nlohmann::json::parse(read_bytes(ck / "manifest.json"));
  m["tensors"]["param/model.embed_tokens.weight"]["shape"] = {5, 3};  // same numel, other shape
  write_bytes(ck / "manifest.json", m.dump(2));
  const std::string msg = io_error_of([&] { read_checkpoint(ck); });
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
  write_bytes(ck / "manifest.json", m.dump(2));
  const std::string msg = io_error_of([&] { read_checkpoint(ck); });
  EXPECT_NE(msg.find("param/model.layers.0.self_attn.q_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("state.h5"), std::string::npos) << msg;
}

TEST(Checkpoint, BadManifestIsIoError) {
  TempDir dir;
  const Fixture fx;
  write_checkpoint(dir.path(), meta_for(1), fx.views());
  const fs::path ck = *latest_checkpoint(dir.path());
  write_bytes(ck / "manifest.json", "{\"format\": ");
  std::string msg = io_error_of([&] { read_checkpoint(ck); });
  EXPECT_NE(msg.find("manifest.json"), std::string::npos) << msg;
  fs::remove(ck / "manifest.json");
  msg = io_error_of([&] { read_checkpoint(ck); });
  EXPECT_NE(msg.find("manifest.json"), std::string::npos) << msg;
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

}  // namespace
}  // namespace ssiat
