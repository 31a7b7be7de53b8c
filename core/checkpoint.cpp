// Checkpoint I/O (format: core/checkpoint.h; DESIGN invariants 6-7).
//
// Contract of this file, beyond the header:
//   - state.h5 is written with the HDF5 1.10 C API: one contiguous, uncompressed float32-LE
//     dataset per tensor at "/<group>/<name>" (names may contain dots; a '/' in a name makes
//     nested groups), with object timestamps off so the same tensors give the same bytes, hence
//     the same state_sha256 and checkpoint digest, on every write. A rank-0 tensor has a scalar
//     dataspace and a null "shape" attribute.
//   - Write order: stale .tmp-* removed, tensors into .tmp-step_<N>/state.h5 (hook after each),
//     manifest.json last, publish_dir_atomic, then `latest`. If anything throws before publish,
//     the temporary directory is removed (best effort) and the exception propagates; `latest`
//     and every published checkpoint are untouched.
//   - A published step dir that `latest` does not name (left by a crash between publish and the
//     `latest` update) is replaced when the same step is written again; overwriting the one
//     `latest` names is refused with IoError.
//   - One writer per run directory: a write removes every .tmp-* entry it finds.
//   - HDF5 handles are not thread-safe in the serial build: do not call these functions
//     concurrently with other HDF5 use in the process.
#include "core/checkpoint.h"

#include <hdf5.h>

#include <toml++/toml.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "core/checkpoint_detail.h"
#include "core/error.h"
#include "core/fault.h"
#include "core/fs.h"
#include "core/h5.h"
#include "core/hash.h"
#include "core/state_digest.h"

namespace fs = std::filesystem;

namespace ssiat {
namespace {

using ckpt_detail::numel_of;
using ckpt_detail::shape_str;
using ckpt_detail::validate_key;

static_assert(std::endian::native == std::endian::little,
              "checkpoint I/O hashes native float bytes as little-endian; port before use on BE");

constexpr const char* kStateFile = "state.h5";
constexpr const char* kManifestFile = "manifest.json";
constexpr const char* kLatestFile = "latest";
constexpr const char* kTmpPrefix = ".tmp-";
constexpr size_t kShaHexLen = 64;

// ---- names -------------------------------------------------------------------------------

std::string step_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

// Parses "step_<digits>"; nullopt for anything else (including .tmp-* names).
std::optional<int64_t> parse_step_dir_name(const std::string& name) {
  constexpr std::string_view kPrefix = "step_";
  if (name.size() <= kPrefix.size() || name.compare(0, kPrefix.size(), kPrefix) != 0) return std::nullopt;
  int64_t v = 0;
  for (size_t i = kPrefix.size(); i < name.size(); i++) {
    const char c = name[i];
    if (c < '0' || c > '9') return std::nullopt;
    if (v > (INT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

bool is_tmp_name(const std::string& name) { return name.rfind(kTmpPrefix, 0) == 0; }

// ---- HDF5 helpers -------------------------------------------------------------------------

// "FILE: no space left on device (HDF5 flush)" when the driver saw an OS error, else
// "FILE: HDF5 <what> [for tensor 'KEY']".
[[noreturn]] void h5_fail(const fs::path& file, const std::string& key, const std::string& what) {
  const std::string detail = "HDF5 " + what + (key.empty() ? "" : " for tensor '" + key + "'");
  if (const int err = h5_stack_errno(); err > 0) throw IoError(file.string() + ": " + errno_message(err) + " (" + detail + ")");
  throw IoError(file.string() + ": " + detail);
}

H5Handle h5_check(hid_t id, herr_t (*closer)(hid_t), const fs::path& file, const std::string& key,
                  const std::string& what) {
  if (id < 0) h5_fail(file, key, what);
  return H5Handle(id, closer);
}

// Opens group `path` under `file`, creating it (and its parents) if absent.
H5Handle h5_open_or_create_group(hid_t file, const std::string& path, const fs::path& fname,
                                 const std::string& key) {
  const htri_t exists = H5Lexists(file, path.c_str(), H5P_DEFAULT);
  if (exists > 0) return h5_check(H5Gopen2(file, path.c_str(), H5P_DEFAULT), H5Gclose, fname, key, "group open");
  H5Handle lcpl = h5_check(H5Pcreate(H5P_LINK_CREATE), H5Pclose, fname, key, "plist create");
  H5Handle gcpl = h5_check(H5Pcreate(H5P_GROUP_CREATE), H5Pclose, fname, key, "plist create");
  if (H5Pset_create_intermediate_group(lcpl.get(), 1) < 0 || H5Pset_obj_track_times(gcpl.get(), 0) < 0)
    h5_fail(fname, key, "group property setup");
  return h5_check(H5Gcreate2(file, path.c_str(), lcpl.get(), gcpl.get(), H5P_DEFAULT), H5Gclose, fname, key,
                  "group create '" + path + "'");
}

void h5_write_attrs(hid_t dset, const std::vector<int64_t>& shape, const std::string& sha, const fs::path& fname,
                    const std::string& key) {
  // "sha256": fixed-length 64-byte ASCII string.
  H5Handle stype = h5_check(H5Tcopy(H5T_C_S1), H5Tclose, fname, key, "string type");
  if (H5Tset_size(stype.get(), kShaHexLen) < 0 || H5Tset_strpad(stype.get(), H5T_STR_NULLPAD) < 0 ||
      H5Tset_cset(stype.get(), H5T_CSET_ASCII) < 0)
    h5_fail(fname, key, "string type setup");
  H5Handle sspace = h5_check(H5Screate(H5S_SCALAR), H5Sclose, fname, key, "dataspace create");
  H5Handle sattr = h5_check(H5Acreate2(dset, "sha256", stype.get(), sspace.get(), H5P_DEFAULT, H5P_DEFAULT),
                            H5Aclose, fname, key, "attribute 'sha256' create");
  if (H5Awrite(sattr.get(), stype.get(), sha.data()) < 0) h5_fail(fname, key, "attribute 'sha256' write");

  // "shape": int64 array of the logical dims (null dataspace for a rank-0 tensor).
  const hsize_t rank = shape.size();
  H5Handle pspace = h5_check(rank == 0 ? H5Screate(H5S_NULL) : H5Screate_simple(1, &rank, nullptr), H5Sclose,
                             fname, key, "dataspace create");
  H5Handle pattr = h5_check(H5Acreate2(dset, "shape", H5T_STD_I64LE, pspace.get(), H5P_DEFAULT, H5P_DEFAULT),
                            H5Aclose, fname, key, "attribute 'shape' create");
  if (rank > 0 && H5Awrite(pattr.get(), H5T_NATIVE_INT64, shape.data()) < 0)
    h5_fail(fname, key, "attribute 'shape' write");
}

// ---- read: sorting failures into torn, read and integrity (core/checkpoint.h "Reading") -------

// state.h5 as read_checkpoint sees it. `bytes_match`: the file is byte for byte the one the
// manifest's state_sha256 hashed, so nothing in it can be torn.
struct StateFile {
  fs::path path;
  bool bytes_match = false;

  // A structural problem with no OS error behind it (a dataset missing or short, HDF5 refusing
  // the file): torn, unless the bytes are the ones hashed at write time.
  [[noreturn]] void damaged(const std::string& what) const {
    if (bytes_match)
      throw IntegrityError(path.string() + ": " + what + ", although the file matches the manifest's state_sha256");
    throw TornCheckpointError(path.string() + ": " + what + " (the file is truncated or was not completely written)");
  }
  // An HDF5 call failed: a read error if HDF5's file driver recorded an OS errno for it (EIO),
  // otherwise damaged().
  [[noreturn]] void h5_failed(const std::string& key, const std::string& what) const {
    const std::string detail = "HDF5 " + what + (key.empty() ? "" : " for tensor '" + key + "'");
    if (const int err = h5_stack_errno(); err > 0 && err != ENOENT)
      throw ReadError(path.string() + ": read error (" + detail + "): " + std::strerror(err));
    damaged(detail + " failed");
  }
  H5Handle check(hid_t id, herr_t (*closer)(hid_t), const std::string& key, const std::string& what) const {
    if (id < 0) h5_failed(key, what);
    return H5Handle(id, closer);
  }
  [[noreturn]] void integrity(const std::string& what) const { throw IntegrityError(path.string() + ": " + what); }
};

std::string h5_read_sha_attr(hid_t dset, const StateFile& sf, const std::string& key) {
  H5Handle attr = sf.check(H5Aopen(dset, "sha256", H5P_DEFAULT), H5Aclose, key, "attribute 'sha256' open");
  H5Handle ftype = sf.check(H5Aget_type(attr.get()), H5Tclose, key, "attribute 'sha256' type");
  if (H5Tget_class(ftype.get()) != H5T_STRING || H5Tis_variable_str(ftype.get()) != 0)
    sf.integrity("attribute 'sha256' of tensor '" + key + "' is not a fixed-length string");
  const size_t size = H5Tget_size(ftype.get());
  if (size == 0 || size > 1024) sf.integrity("attribute 'sha256' of tensor '" + key + "' has a bad size");
  H5Handle mtype = sf.check(H5Tcopy(H5T_C_S1), H5Tclose, key, "string type");
  if (H5Tset_size(mtype.get(), size) < 0 || H5Tset_strpad(mtype.get(), H5T_STR_NULLPAD) < 0)
    sf.h5_failed(key, "string type setup");
  std::string s(size, '\0');
  if (H5Aread(attr.get(), mtype.get(), s.data()) < 0) sf.h5_failed(key, "attribute 'sha256' read");
  s.erase(std::find(s.begin(), s.end(), '\0'), s.end());
  return ckpt_detail::printable(s);
}

std::vector<int64_t> h5_read_shape_attr(hid_t dset, const StateFile& sf, const std::string& key) {
  H5Handle attr = sf.check(H5Aopen(dset, "shape", H5P_DEFAULT), H5Aclose, key, "attribute 'shape' open");
  H5Handle space = sf.check(H5Aget_space(attr.get()), H5Sclose, key, "attribute 'shape' dataspace");
  const H5S_class_t cls = H5Sget_simple_extent_type(space.get());
  if (cls == H5S_NULL) return {};
  if (cls != H5S_SIMPLE || H5Sget_simple_extent_ndims(space.get()) != 1)
    sf.integrity("attribute 'shape' of tensor '" + key + "' is not a 1-D array");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  if (n > 64) sf.integrity("attribute 'shape' of tensor '" + key + "' has rank > 64");
  std::vector<int64_t> shape(n);
  if (n > 0 && H5Aread(attr.get(), H5T_NATIVE_INT64, shape.data()) < 0) sf.h5_failed(key, "attribute 'shape' read");
  return shape;
}

// ---- write ------------------------------------------------------------------------------------

// Writes every tensor (fetching those without data, one at a time) and returns their SHA-256s;
// `leaves` gets each tensor's state-leaf hash (core/state_digest.h) by key.
std::vector<std::string> write_state_h5(const fs::path& fname, const std::vector<CheckpointTensor>& tensors,
                                        const CheckpointWriteHook& hook, std::map<std::string, Digest>& leaves) {
  std::vector<std::string> shas;
  std::vector<float> fetched;
  H5QuietErrors quiet;
  H5Handle fcpl = h5_check(H5Pcreate(H5P_FILE_CREATE), H5Pclose, fname, "", "plist create");
  if (H5Pset_obj_track_times(fcpl.get(), 0) < 0) h5_fail(fname, "", "file property setup");
  H5Handle file = h5_check(H5Fcreate(fname.c_str(), H5F_ACC_EXCL, fcpl.get(), H5P_DEFAULT), H5Fclose, fname, "",
                           "file create");
  H5Handle dcpl = h5_check(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, fname, "", "plist create");
  if (H5Pset_obj_track_times(dcpl.get(), 0) < 0 || H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS) < 0)
    h5_fail(fname, "", "dataset property setup");

  for (size_t t = 0; t < tensors.size(); t++) {
    const CheckpointTensor& ten = tensors[t];
    const std::string& key = ten.key;
    const size_t slash = key.rfind('/');
    std::string group_path = "/";
    group_path.append(key, 0, slash);
    H5Handle group = h5_open_or_create_group(file.get(), group_path, fname, key);
    const std::string leaf = key.substr(slash + 1);
    std::vector<hsize_t> dims(ten.shape.begin(), ten.shape.end());
    H5Handle space = h5_check(dims.empty() ? H5Screate(H5S_SCALAR)
                                           : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                              H5Sclose, fname, key, "dataspace create");
    H5Handle dset = h5_check(H5Dcreate2(group.get(), leaf.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT,
                                        dcpl.get(), H5P_DEFAULT),
                             H5Dclose, fname, key, "dataset create");
    const int64_t n = numel_of(ten.shape, key);
    const float* data = ten.data;
    if (!data && n > 0) {
      fetched.assign(static_cast<size_t>(n), 0.0f);
      ten.fetch(fetched.data());
      data = fetched.data();
    }
    const size_t nbytes = static_cast<size_t>(n) * sizeof(float);
    shas.push_back(sha256_hex(data, nbytes));
    LeafHasher state_leaf;
    state_leaf.update(state_leaf_header(key, "float32", ten.shape, nbytes));
    state_leaf.update(data, nbytes);
    leaves[key] = state_leaf.finish();
    if (n > 0 && H5Dwrite(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
      h5_fail(fname, key, "dataset write");
    h5_write_attrs(dset.get(), ten.shape, shas.back(), fname, key);
    if (hook) hook(key);
    fault_point("checkpoint.tensor_written");
  }
  if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) h5_fail(fname, "", "flush");
  dcpl.reset();
  if (!file.reset()) h5_fail(fname, "", "file close");
  return shas;
}

// Writes `content` to a new file (the containing directory is fsynced by publish_dir_atomic).
void write_new_file(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError(path.string() + ": cannot create");
  errno = 0;
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) throw IoError(path.string() + ": write failed" + (errno ? ": " + errno_message(errno) : std::string()));
}

// Removes every .tmp-* entry of the checkpoints directory (left by killed writers or prunes).
void remove_stale_tmp(const fs::path& ckpt_root) {
  std::error_code ec;
  if (!fs::is_directory(ckpt_root, ec)) return;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(ckpt_root, ec))
    if (is_tmp_name(e.path().filename().string())) stale.push_back(e.path());
  for (const auto& p : stale) fs::remove_all(p, ec);  // best effort
}

// The name in <ckpt_root>/latest, nullopt if the file is absent; IoError if malformed.
std::optional<std::string> read_latest_name(const fs::path& ckpt_root) {
  const fs::path latest = ckpt_root / kLatestFile;
  std::error_code ec;
  if (!fs::exists(latest, ec)) return std::nullopt;
  std::string content = read_whole_file(latest);  // checked reads (core/fs.h)
  while (!content.empty() && (content.back() == '\n' || content.back() == '\r' || content.back() == ' '))
    content.pop_back();
  if (!parse_step_dir_name(content))
    throw IoError(latest.string() + ": does not name a checkpoint directory (expected \"step_<N>\")");
  return content;
}

// ---- read ---------------------------------------------------------------------------------

// Runs f, turning std::filesystem errors into IoError (other exceptions pass unchanged).
template <typename F>
auto fs_errors_as_io(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const fs::filesystem_error& e) {
    throw IoError(describe_fs_error(e));
  }
}

std::string write_checkpoint_impl(const fs::path& run_dir, const CheckpointMeta& meta,
                                  const std::vector<CheckpointTensor>& tensors, const CheckpointWriteHook& hook,
                                  StateRoots* roots) {
  if (meta.step < 0) throw IoError("write_checkpoint: step " + std::to_string(meta.step) + " is negative");
  if (meta.samples_seen < 0)
    throw IoError("write_checkpoint: samples_seen " + std::to_string(meta.samples_seen) + " is negative");
  if (!meta.extra.is_object() && !meta.extra.is_null())  // null (e.g. `extra = {}`) is written as {}
    throw IoError("write_checkpoint: meta.extra must be a JSON object");

  // Validate every key and shape before touching the disk (the tensors are hashed as written).
  std::map<std::string, ManifestTensor> tj;
  for (const auto& t : tensors) {
    validate_key(t.key);
    const int64_t n = numel_of(t.shape, t.key);
    if (n > 0 && t.data == nullptr && !t.fetch) throw IoError("checkpoint tensor '" + t.key + "': data is null");
    if (tj.contains(t.key)) throw IoError("checkpoint tensor '" + t.key + "': duplicate key");
    tj[t.key] = {t.shape, ""};
  }
  // A key that is a prefix group of another ("param/a" and "param/a/b") cannot be stored.
  for (const auto& t : tensors)
    for (size_t pos = t.key.find('/'); pos != std::string::npos; pos = t.key.find('/', pos + 1))
      if (tj.contains(t.key.substr(0, pos)))
        throw IoError("checkpoint tensor '" + t.key.substr(0, pos) + "': is also a group of '" + t.key + "'");

  const fs::path root = run_dir / "checkpoints";
  fs::create_directories(root);
  remove_stale_tmp(root);

  const std::string name = step_dir_name(meta.step);
  const fs::path final_dir = root / name;
  const fs::path tmp_dir = root / (std::string(kTmpPrefix) + name);
  if (fs::exists(final_dir)) {
    if (read_latest_name(root) == name)
      throw IoError(final_dir.string() + ": is the checkpoint `latest` names; refusing to overwrite");
    // Published but never made `latest` (crash before the pointer update): set it aside.
    const fs::path aside = root / (std::string(kTmpPrefix) + "orphan-" + name);
    fs::rename(final_dir, aside);
    std::error_code ec;
    fs::remove_all(aside, ec);
  }

  fs::create_directory(tmp_dir);
  std::string manifest_bytes;
  try {
    const fs::path state = tmp_dir / kStateFile;
    std::map<std::string, Digest> leaves;
    const std::vector<std::string> shas = write_state_h5(state, tensors, hook, leaves);
    if (roots) *roots = state_roots(leaves);
    for (size_t t = 0; t < tensors.size(); t++) tj[tensors[t].key].sha256 = shas[t];
    manifest_bytes = manifest_json(meta, tj, sha256_file(state));
    write_new_file(tmp_dir / kManifestFile, manifest_bytes);
    publish_dir_atomic(tmp_dir, final_dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);  // best effort; the next write or prune retries
    throw;
  }
  fault_point("checkpoint.published");
  write_file_atomic(root / kLatestFile, name + "\n");
  fault_point("checkpoint.latest_updated");
  return sha256_hex(manifest_bytes);
}

std::optional<fs::path> latest_checkpoint_impl(const fs::path& run_dir) {
  const fs::path root = run_dir / "checkpoints";
  const std::optional<std::string> name = read_latest_name(root);
  if (!name) return std::nullopt;
  std::error_code ec;
  if (!fs::is_directory(root / *name, ec)) return std::nullopt;
  return root / *name;
}

// samples_seen against step × train.micro_batch × train.grad_accum × parallel.dp of the recipe the manifest
// records (the trainer's invariant); skipped when that recipe does not give both as integers (a
// writer other than the trainer). The recipe text is already known to match recipe_sha256.
void check_samples_seen(const CheckpointMeta& meta, const fs::path& mpath) {
  if (meta.recipe.empty()) return;
  toml::table t;
  try {
    t = toml::parse(meta.recipe);
  } catch (const toml::parse_error&) {
    return;  // strict resume refuses an unreadable recorded recipe by name (core/trainer.h)
  }
  const std::optional<int64_t> mb = t["train"]["micro_batch"].value_exact<int64_t>();
  const std::optional<int64_t> ga = t["train"]["grad_accum"].value_exact<int64_t>();
  // parallel.dp: absent in recipes of builds before data parallelism (one rank).
  const int64_t dp = t["parallel"]["dp"].value_exact<int64_t>().value_or(1);
  if (!mb || !ga || *mb < 1 || *ga < 1 || dp < 1) return;
  int64_t per_step = 0, want = 0;
  const bool overflow = __builtin_mul_overflow(*mb, *ga, &per_step) || __builtin_mul_overflow(per_step, dp, &per_step) ||
                        __builtin_mul_overflow(meta.step, per_step, &want);
  if (overflow || want != meta.samples_seen)
    throw IntegrityError(mpath.string() + ": samples_seen " + std::to_string(meta.samples_seen) +
                         " disagrees with step × train.micro_batch × train.grad_accum × parallel.dp = " +
                         std::to_string(meta.step) + " × " + std::to_string(*mb) + " × " + std::to_string(*ga) + " × " +
                         std::to_string(dp) +
                         (overflow ? std::string(" (overflows)") : " = " + std::to_string(want)) + " of the recorded recipe");
}

// Torn if `p` does not exist (ENOENT); any other failure is left to the read that follows.
void require_written(const fs::path& p) {
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (st.type() == fs::file_type::not_found)
    throw TornCheckpointError(p.string() + ": missing (the checkpoint was not completely written)");
}

// Verifies the checkpoint at ckpt_dir as read_checkpoint does and hands each tensor whose key
// `want` accepts (every tensor when `want` is empty) to `sink`, in key order, one at a time.
CheckpointManifest stream_checkpoint_impl(const fs::path& ckpt_dir, const std::function<bool(const std::string&)>& want,
                                          const CheckpointSink& sink) {
  const std::string dir_name = ckpt_dir.filename().string();
  if (is_tmp_name(dir_name))
    throw IoError(ckpt_dir.string() + ": is an unpublished temporary checkpoint directory");
  const fs::path mpath = ckpt_dir / kManifestFile;
  const fs::path spath = ckpt_dir / kStateFile;
  require_written(mpath);
  require_written(spath);

  // The manifest: torn, then fields by name, then the self-digest.
  ckpt_detail::UnsealedManifest u = ckpt_detail::parse_manifest_fields(read_whole_file(mpath), mpath);
  const CheckpointManifest& man = u.man;
  if (const auto dir_step = parse_step_dir_name(dir_name); dir_step && *dir_step != man.meta.step)
    throw IntegrityError(mpath.string() + ": step " + std::to_string(man.meta.step) +
                         " disagrees with the directory name " + dir_name);
  check_samples_seen(man.meta, mpath);
  ckpt_detail::check_self_digest(u, mpath);

  // state.h5: hashed whole first (a read error surfaces here, naming the byte); a file that is not
  // the one hashed at write time is then searched for the reason, tensor by tensor.
  const std::string actual_state_sha = sha256_file(spath);
  const StateFile sf{spath, actual_state_sha == man.state_sha256};
  const uint64_t file_bytes = fs::file_size(spath);
  H5QuietErrors quiet;
  H5Handle file = sf.check(H5Fopen(spath.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "", "file open");
  for (const auto& [key, entry] : man.tensors) {
    if (want && !want(key)) continue;
    const std::vector<int64_t>& shape = entry.shape;
    const std::string& want_sha = entry.sha256;
    const int64_t n = numel_of(shape, key);

    const std::string dpath = "/" + key;
    if (H5Lexists(file.get(), dpath.substr(0, dpath.rfind('/')).c_str(), H5P_DEFAULT) <= 0 ||
        H5Lexists(file.get(), dpath.c_str(), H5P_DEFAULT) <= 0)
      sf.damaged("tensor '" + key + "' listed in the manifest is missing");
    H5Handle dset = sf.check(H5Dopen2(file.get(), dpath.c_str(), H5P_DEFAULT), H5Dclose, key, "dataset open");
    H5Handle dtype = sf.check(H5Dget_type(dset.get()), H5Tclose, key, "dataset type");
    if (H5Tequal(dtype.get(), H5T_IEEE_F32LE) <= 0) sf.integrity("tensor '" + key + "' is not float32 little-endian");
    H5Handle space = sf.check(H5Dget_space(dset.get()), H5Sclose, key, "dataset dataspace");
    std::vector<int64_t> dshape;
    const H5S_class_t cls = H5Sget_simple_extent_type(space.get());
    if (cls == H5S_SIMPLE) {
      const int nd = H5Sget_simple_extent_ndims(space.get());
      if (nd < 0 || nd > 64) sf.h5_failed(key, "dataspace rank");
      std::vector<hsize_t> dims(nd);
      H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
      dshape.assign(dims.begin(), dims.end());
    } else if (cls != H5S_SCALAR) {
      sf.integrity("tensor '" + key + "' has an unsupported dataspace");
    }
    if (dshape != shape)
      sf.integrity("tensor '" + key + "' has shape " + shape_str(dshape) + " but the manifest says " + shape_str(shape));
    if (h5_read_shape_attr(dset.get(), sf, key) != shape)
      sf.integrity("tensor '" + key + "' attribute 'shape' does not match the manifest");

    std::vector<float> data(static_cast<size_t>(n));
    if (n > 0) {
      // Shorter than the manifest says: storage smaller than the shape needs, or past the end.
      const uint64_t need = static_cast<uint64_t>(n) * sizeof(float);
      const uint64_t stored = H5Dget_storage_size(dset.get());
      const haddr_t at = H5Dget_offset(dset.get());
      if (stored < need)
        sf.damaged("tensor '" + key + "' holds " + std::to_string(stored) + " bytes but its shape needs " +
                   std::to_string(need));
      if (at != HADDR_UNDEF && (at > file_bytes || file_bytes - at < stored))
        sf.damaged("tensor '" + key + "' ends at byte " + std::to_string(at + stored) + ", past the end of the file (" +
                   std::to_string(file_bytes) + " bytes)");
      if (H5Dread(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0)
        sf.h5_failed(key, "dataset read");
    }
    const std::string got_sha = sha256_hex(data.data(), data.size() * sizeof(float));
    if (got_sha != want_sha)
      sf.integrity("tensor " + key + " has SHA-256 " + got_sha + " but the manifest says " + want_sha);
    const std::string attr_sha = h5_read_sha_attr(dset.get(), sf, key);
    if (got_sha != attr_sha)
      sf.integrity("tensor " + key + " has SHA-256 " + got_sha + " but its attribute 'sha256' says " + attr_sha);
    sink(key, shape, std::move(data));
  }
  if (!sf.bytes_match)  // every tensor verified: the file changed elsewhere (metadata, attributes)
    sf.integrity("SHA-256 " + actual_state_sha + " does not match the manifest's state_sha256 " + man.state_sha256 +
                 " although every tensor" + (want ? " read" : "") + " matches");
  return man;
}

LoadedCheckpoint read_checkpoint_impl(const fs::path& ckpt_dir) {
  LoadedCheckpoint out;
  const CheckpointManifest man =
      stream_checkpoint_impl(ckpt_dir, {}, [&](const std::string& key, const std::vector<int64_t>& shape, std::vector<float>&& data) {
        out.shapes[key] = shape;
        out.tensors[key] = std::move(data);
      });
  out.digest = man.digest;
  out.meta = man.meta;
  return out;
}

// The step_<N> directories of a checkpoints directory as (N, name), newest first.
std::vector<std::pair<int64_t, std::string>> step_dirs_newest_first(const fs::path& root) {
  std::vector<std::pair<int64_t, std::string>> steps;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return steps;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory()) continue;
    if (const auto s = parse_step_dir_name(name)) steps.emplace_back(*s, name);
  }
  std::sort(steps.begin(), steps.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return steps;
}

void prune_checkpoints_impl(const fs::path& run_dir, int64_t keep) {
  if (keep < 0) throw ConfigError("prune_checkpoints: keep = " + std::to_string(keep) + " must be >= 0");
  const fs::path root = run_dir / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return;
  remove_stale_tmp(root);
  const std::optional<std::string> latest = read_latest_name(root);

  const std::vector<std::pair<int64_t, std::string>> steps = step_dirs_newest_first(root);
  for (size_t i = 0; i < steps.size(); i++) {
    const std::string& name = steps[i].second;
    if (static_cast<int64_t>(i) < keep || name == latest) continue;
    // Rename first so an interrupted delete never leaves a partial step_<N> directory.
    const fs::path aside = root / (std::string(kTmpPrefix) + "prune-" + name);
    fs::rename(root / name, aside);
    fs::remove_all(aside, ec);
  }
}

ResumePoint find_resume_point_impl(const fs::path& run_dir) {
  const fs::path root = run_dir / "checkpoints";
  ResumePoint rp;
  // Reads and verifies `dir`: true if usable, false (recorded in rp.rejected) if torn. A read
  // error or an integrity failure propagates: the search stops rather than skip past it.
  auto try_dir = [&rp](const fs::path& dir) {
    try {
      rp.checkpoint = read_checkpoint_impl(dir);
      rp.dir = dir;
      return true;
    } catch (const TornCheckpointError& e) {
      rp.rejected.push_back({dir, e.what()});
      return false;
    } catch (const IntegrityError& e) {
      throw IntegrityError(std::string(e.what()) +
                           "; refusing to resume from it — move the directory aside to resume from the previous "
                           "checkpoint");
    }
  };
  std::optional<std::string> latest;
  const fs::path latest_path = root / kLatestFile;
  std::error_code ec;
  if (fs::status(latest_path, ec).type() == fs::file_type::not_found) {
    rp.latest_problem = "is missing";
  } else {
    // A read error propagates (read_whole_file); only content that names no step is torn.
    std::string content = read_whole_file(latest_path);
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r' || content.back() == ' '))
      content.pop_back();
    if (parse_step_dir_name(content))
      latest = content;
    else
      rp.latest_problem = "is malformed (does not name a checkpoint directory \"step_<N>\")";
  }
  if (latest) {
    if (fs::status(root / *latest, ec).type() == fs::file_type::not_found) {
      rp.latest_problem = "names " + *latest + ", which does not exist";
    } else if (try_dir(root / *latest)) {
      rp.latest_ok = true;
      return rp;
    } else {
      rp.latest_rejected = true;
      rp.latest_problem = "names " + *latest + ", which is torn (" + rp.rejected.back().reason + ")";
    }
  }
  for (const auto& [step, name] : step_dirs_newest_first(root)) {
    if (latest && name == *latest) continue;
    if (try_dir(root / name)) break;
  }
  return rp;
}

void set_aside_rejected_impl(const fs::path& run_dir, const ResumePoint& rp) {
  if (rp.latest_ok) return;
  const fs::path root = run_dir / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return;
  for (const auto& r : rp.rejected) {
    if (!fs::exists(r.dir, ec)) continue;
    const std::string base = "rejected-" + r.dir.filename().string();
    fs::path aside = root / base;
    for (int k = 1; fs::exists(aside, ec); k++) aside = root / (base + "." + std::to_string(k));
    fs::rename(r.dir, aside);
  }
  if (rp.checkpoint) {
    write_file_atomic(root / kLatestFile, rp.dir.filename().string() + "\n");
  } else {
    fs::remove(root / kLatestFile);
    fsync_path(root);
  }
}

}  // namespace

void check_checkpoint_tensors(const LoadedCheckpoint& ck, const std::map<std::string, std::vector<int64_t>>& expected,
                              const fs::path& ckpt_dir) {
  const std::string where = ckpt_dir.string() + ": ";
  auto want = expected.begin();
  auto have = ck.shapes.begin();
  while (want != expected.end() || have != ck.shapes.end()) {
    if (have == ck.shapes.end() || (want != expected.end() && want->first < have->first))
      throw ConfigError(where + "checkpoint has no tensor '" + want->first + "' " + shape_str(want->second) +
                        ", which the recipe's model has");
    if (want == expected.end() || have->first < want->first)
      throw ConfigError(where + "checkpoint has tensor '" + have->first + "' " + shape_str(have->second) +
                        ", which the recipe's model does not have");
    if (want->second != have->second)
      throw ConfigError(where + "tensor '" + want->first + "' has shape " + shape_str(have->second) +
                        " in the checkpoint but " + shape_str(want->second) + " in the recipe's model");
    ++want;
    ++have;
  }
}

ResumePoint find_resume_point(const fs::path& run_dir) {
  return fs_errors_as_io([&] { return find_resume_point_impl(run_dir); });
}

void set_aside_rejected(const fs::path& run_dir, const ResumePoint& rp) {
  fs_errors_as_io([&] { set_aside_rejected_impl(run_dir, rp); });
}

std::string write_checkpoint(const fs::path& run_dir, const CheckpointMeta& meta,
                             const std::vector<CheckpointTensor>& tensors, const CheckpointWriteHook& hook,
                             StateRoots* roots) {
  return fs_errors_as_io([&] { return write_checkpoint_impl(run_dir, meta, tensors, hook, roots); });
}

std::optional<fs::path> latest_checkpoint(const fs::path& run_dir) {
  return fs_errors_as_io([&] { return latest_checkpoint_impl(run_dir); });
}

LoadedCheckpoint read_checkpoint(const fs::path& ckpt_dir) {
  return fs_errors_as_io([&] { return read_checkpoint_impl(ckpt_dir); });
}

CheckpointManifest read_manifest(const fs::path& ckpt_dir) {
  const fs::path m = ckpt_dir / kManifestFile;
  return parse_manifest(read_whole_file(m), m);
}

CheckpointManifest stream_checkpoint(const fs::path& ckpt_dir, const std::function<bool(const std::string&)>& want,
                                     const CheckpointSink& sink) {
  return fs_errors_as_io([&] { return stream_checkpoint_impl(ckpt_dir, want, sink); });
}

StateRoots state_roots_of(const LoadedCheckpoint& ck) {
  std::map<std::string, Digest> leaves;
  for (const auto& [key, t] : ck.tensors) {
    const size_t nbytes = t.size() * sizeof(float);
    LeafHasher leaf;
    leaf.update(state_leaf_header(key, "float32", ck.shapes.at(key), nbytes));
    leaf.update(t.data(), nbytes);
    leaves[key] = leaf.finish();
  }
  return state_roots(leaves);
}

void prune_checkpoints(const fs::path& run_dir, int64_t keep) {
  fs_errors_as_io([&] { prune_checkpoints_impl(run_dir, keep); });
}

}  // namespace ssiat
