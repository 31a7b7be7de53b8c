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

#include <algorithm>
#include <bit>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"

namespace fs = std::filesystem;

namespace ssiat {
namespace {

static_assert(std::endian::native == std::endian::little,
              "checkpoint I/O hashes native float bytes as little-endian; port before use on BE");

constexpr const char* kFormat = "ssiat-checkpoint/v1";
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

// A key is "<group>/<name>[/<more>]": non-empty components, none "." or "..", no leading '/'.
void validate_key(const std::string& key) {
  if (key.empty() || key.find('/') == std::string::npos)
    throw IoError("checkpoint tensor key '" + key + "': must be \"<group>/<name>\"");
  size_t start = 0;
  while (true) {
    const size_t end = key.find('/', start);
    const std::string part = key.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (part.empty() || part == "." || part == "..")
      throw IoError("checkpoint tensor key '" + key + "': empty, '.' or '..' path component");
    if (end == std::string::npos) break;
    start = end + 1;
  }
}

int64_t numel_of(const std::vector<int64_t>& shape, const std::string& key) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw IoError("checkpoint tensor '" + key + "': negative dimension in shape");
    if (d != 0 && n > INT64_MAX / 4 / d) throw IoError("checkpoint tensor '" + key + "': shape too large");
    n *= d;
  }
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); i++) os << (i ? "," : "") << shape[i];
  os << "]";
  return os.str();
}

// ---- HDF5 helpers -------------------------------------------------------------------------

// Owns one HDF5 identifier; `closer` is H5Fclose, H5Gclose, ...
class H5Handle {
 public:
  H5Handle() = default;
  H5Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), closer_(o.closer_) {}
  ~H5Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; returns false if the close failed (for files: data not flushed).
  bool reset() {
    bool ok = true;
    if (id_ >= 0 && closer_) ok = closer_(id_) >= 0;
    id_ = H5I_INVALID_HID;
    return ok;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*closer_)(hid_t) = nullptr;
};

// Silences HDF5's automatic error-stack printing for its lifetime (we throw IoError instead)
// and restores the previous handler.
class H5QuietErrors {
 public:
  H5QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~H5QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  H5QuietErrors(const H5QuietErrors&) = delete;
  H5QuietErrors& operator=(const H5QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

[[noreturn]] void h5_fail(const fs::path& file, const std::string& key, const std::string& what) {
  throw IoError(file.string() + ": HDF5 " + what + (key.empty() ? "" : " for tensor '" + key + "'"));
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

std::string h5_read_sha_attr(hid_t dset, const fs::path& fname, const std::string& key) {
  H5Handle attr = h5_check(H5Aopen(dset, "sha256", H5P_DEFAULT), H5Aclose, fname, key, "attribute 'sha256' open");
  H5Handle ftype = h5_check(H5Aget_type(attr.get()), H5Tclose, fname, key, "attribute 'sha256' type");
  if (H5Tget_class(ftype.get()) != H5T_STRING || H5Tis_variable_str(ftype.get()) != 0)
    throw IoError(fname.string() + ": attribute 'sha256' of tensor '" + key + "' is not a fixed-length string");
  const size_t size = H5Tget_size(ftype.get());
  if (size == 0 || size > 1024)
    throw IoError(fname.string() + ": attribute 'sha256' of tensor '" + key + "' has a bad size");
  H5Handle mtype = h5_check(H5Tcopy(H5T_C_S1), H5Tclose, fname, key, "string type");
  if (H5Tset_size(mtype.get(), size) < 0 || H5Tset_strpad(mtype.get(), H5T_STR_NULLPAD) < 0)
    h5_fail(fname, key, "string type setup");
  std::string s(size, '\0');
  if (H5Aread(attr.get(), mtype.get(), s.data()) < 0) h5_fail(fname, key, "attribute 'sha256' read");
  s.erase(std::find(s.begin(), s.end(), '\0'), s.end());
  return s;
}

std::vector<int64_t> h5_read_shape_attr(hid_t dset, const fs::path& fname, const std::string& key) {
  H5Handle attr = h5_check(H5Aopen(dset, "shape", H5P_DEFAULT), H5Aclose, fname, key, "attribute 'shape' open");
  H5Handle space = h5_check(H5Aget_space(attr.get()), H5Sclose, fname, key, "attribute 'shape' dataspace");
  const H5S_class_t cls = H5Sget_simple_extent_type(space.get());
  if (cls == H5S_NULL) return {};
  if (cls != H5S_SIMPLE || H5Sget_simple_extent_ndims(space.get()) != 1)
    throw IoError(fname.string() + ": attribute 'shape' of tensor '" + key + "' is not a 1-D array");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  if (n > 64) throw IoError(fname.string() + ": attribute 'shape' of tensor '" + key + "' has rank > 64");
  std::vector<int64_t> shape(n);
  if (n > 0 && H5Aread(attr.get(), H5T_NATIVE_INT64, shape.data()) < 0) h5_fail(fname, key, "attribute 'shape' read");
  return shape;
}

// ---- write ------------------------------------------------------------------------------------

void write_state_h5(const fs::path& fname, const std::vector<CheckpointTensor>& tensors,
                    const std::vector<std::string>& shas, const CheckpointWriteHook& hook) {
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
    if (numel_of(ten.shape, key) > 0 &&
        H5Dwrite(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ten.data) < 0)
      h5_fail(fname, key, "dataset write");
    h5_write_attrs(dset.get(), ten.shape, shas[t], fname, key);
    if (hook) hook(key);
  }
  if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) h5_fail(fname, "", "flush");
  dcpl.reset();
  if (!file.reset()) h5_fail(fname, "", "file close");
}

// Writes `content` to a new file (the containing directory is fsynced by publish_dir_atomic).
void write_new_file(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError(path.string() + ": cannot create");
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) throw IoError(path.string() + ": write failed");
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
  std::ifstream in(latest, std::ios::binary);
  if (!in) throw IoError(latest.string() + ": cannot open for reading");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!content.empty() && (content.back() == '\n' || content.back() == '\r' || content.back() == ' '))
    content.pop_back();
  if (!parse_step_dir_name(content))
    throw IoError(latest.string() + ": does not name a checkpoint directory (expected \"step_<N>\")");
  return content;
}

// ---- read ---------------------------------------------------------------------------------

std::vector<int64_t> json_shape(const nlohmann::json& j, const fs::path& mpath, const std::string& key) {
  if (!j.is_array()) throw IoError(mpath.string() + ": tensors['" + key + "'].shape is not an array");
  std::vector<int64_t> shape;
  for (const auto& d : j) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      throw IoError(mpath.string() + ": tensors['" + key + "'].shape has a bad dimension");
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

template <typename T>
T json_field(const nlohmann::json& j, const char* name, const fs::path& mpath) {
  if (!j.contains(name)) throw IoError(mpath.string() + ": missing key '" + name + "'");
  try {
    return j.at(name).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw IoError(mpath.string() + ": key '" + name + "' has the wrong type");
  }
}

// Runs f, turning std::filesystem errors into IoError (other exceptions pass unchanged).
template <typename F>
auto fs_errors_as_io(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const fs::filesystem_error& e) {
    throw IoError(std::string("checkpoint: ") + e.what());
  }
}

std::string write_checkpoint_impl(const fs::path& run_dir, const CheckpointMeta& meta,
                                  const std::vector<CheckpointTensor>& tensors, const CheckpointWriteHook& hook) {
  if (meta.step < 0) throw IoError("write_checkpoint: step " + std::to_string(meta.step) + " is negative");
  if (meta.samples_seen < 0)
    throw IoError("write_checkpoint: samples_seen " + std::to_string(meta.samples_seen) + " is negative");
  if (!meta.extra.is_object() && !meta.extra.is_null())  // null (e.g. `extra = {}`) is written as {}
    throw IoError("write_checkpoint: meta.extra must be a JSON object");

  // Validate everything and hash the tensors before touching the disk.
  nlohmann::json tj = nlohmann::json::object();
  std::vector<std::string> shas;
  shas.reserve(tensors.size());
  for (const auto& t : tensors) {
    validate_key(t.key);
    const int64_t n = numel_of(t.shape, t.key);
    if (n > 0 && t.data == nullptr) throw IoError("checkpoint tensor '" + t.key + "': data is null");
    if (tj.contains(t.key)) throw IoError("checkpoint tensor '" + t.key + "': duplicate key");
    shas.push_back(sha256_hex(t.data, static_cast<size_t>(n) * sizeof(float)));
    tj[t.key] = {{"shape", t.shape}, {"sha256", shas.back()}};
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
    write_state_h5(state, tensors, shas, hook);
    nlohmann::json m = {{"format", kFormat},
                        {"step", meta.step},
                        {"samples_seen", meta.samples_seen},
                        {"master_seed", meta.master_seed},
                        {"parent", meta.parent},
                        {"tensors", tj},
                        {"state_sha256", sha256_file(state)},
                        {"extra", meta.extra.is_null() ? nlohmann::json::object() : meta.extra}};
    manifest_bytes = m.dump(2) + "\n";
    write_new_file(tmp_dir / kManifestFile, manifest_bytes);
    publish_dir_atomic(tmp_dir, final_dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);  // best effort; the next write or prune retries
    throw;
  }
  write_file_atomic(root / kLatestFile, name + "\n");
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

LoadedCheckpoint read_checkpoint_impl(const fs::path& ckpt_dir) {
  const std::string dir_name = ckpt_dir.filename().string();
  if (is_tmp_name(dir_name))
    throw IoError(ckpt_dir.string() + ": is an unpublished temporary checkpoint directory");
  const fs::path mpath = ckpt_dir / kManifestFile;
  const fs::path spath = ckpt_dir / kStateFile;

  std::ifstream in(mpath, std::ios::binary);
  if (!in) throw IoError(mpath.string() + ": cannot open for reading");
  const std::string mbytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw IoError(mpath.string() + ": read error");
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(mbytes);
  } catch (const nlohmann::json::parse_error& e) {
    throw IoError(mpath.string() + ": invalid JSON at byte " + std::to_string(e.byte));
  }
  if (!m.is_object()) throw IoError(mpath.string() + ": not a JSON object");
  if (json_field<std::string>(m, "format", mpath) != kFormat)
    throw IoError(mpath.string() + ": format is not \"" + kFormat + "\"");

  LoadedCheckpoint out;
  out.digest = sha256_hex(mbytes);
  out.meta.step = json_field<int64_t>(m, "step", mpath);
  out.meta.samples_seen = json_field<int64_t>(m, "samples_seen", mpath);
  out.meta.master_seed = json_field<uint64_t>(m, "master_seed", mpath);
  out.meta.parent = json_field<std::string>(m, "parent", mpath);
  out.meta.extra = m.contains("extra") ? m["extra"] : nlohmann::json::object();
  if (!out.meta.extra.is_object()) throw IoError(mpath.string() + ": key 'extra' is not an object");
  if (const auto dir_step = parse_step_dir_name(dir_name); dir_step && *dir_step != out.meta.step)
    throw IoError(mpath.string() + ": step " + std::to_string(out.meta.step) + " does not match directory name");
  const auto state_sha = json_field<std::string>(m, "state_sha256", mpath);
  if (!m.contains("tensors") || !m["tensors"].is_object())
    throw IoError(mpath.string() + ": key 'tensors' missing or not an object");

  const std::string actual_state_sha = sha256_file(spath);
  if (actual_state_sha != state_sha)
    throw IoError(spath.string() + ": SHA-256 " + actual_state_sha + " does not match manifest state_sha256 " +
                  state_sha);

  H5QuietErrors quiet;
  H5Handle file = h5_check(H5Fopen(spath.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, spath, "", "file open");
  for (const auto& [key, entry] : m["tensors"].items()) {
    validate_key(key);
    if (!entry.is_object() || !entry.contains("shape") || !entry.contains("sha256") || !entry["sha256"].is_string())
      throw IoError(mpath.string() + ": tensors['" + key + "'] lacks shape or sha256");
    const std::vector<int64_t> shape = json_shape(entry["shape"], mpath, key);
    const std::string want_sha = entry["sha256"].get<std::string>();
    const int64_t n = numel_of(shape, key);

    const std::string dpath = "/" + key;
    if (H5Lexists(file.get(), dpath.substr(0, dpath.rfind('/')).c_str(), H5P_DEFAULT) <= 0 ||
        H5Lexists(file.get(), dpath.c_str(), H5P_DEFAULT) <= 0)
      throw IoError(spath.string() + ": tensor '" + key + "' listed in the manifest is missing");
    H5Handle dset = h5_check(H5Dopen2(file.get(), dpath.c_str(), H5P_DEFAULT), H5Dclose, spath, key, "dataset open");
    H5Handle dtype = h5_check(H5Dget_type(dset.get()), H5Tclose, spath, key, "dataset type");
    if (H5Tequal(dtype.get(), H5T_IEEE_F32LE) <= 0)
      throw IoError(spath.string() + ": tensor '" + key + "' is not float32 little-endian");
    H5Handle space = h5_check(H5Dget_space(dset.get()), H5Sclose, spath, key, "dataset dataspace");
    std::vector<int64_t> dshape;
    const H5S_class_t cls = H5Sget_simple_extent_type(space.get());
    if (cls == H5S_SIMPLE) {
      const int nd = H5Sget_simple_extent_ndims(space.get());
      if (nd < 0 || nd > 64) h5_fail(spath, key, "dataspace rank");
      std::vector<hsize_t> dims(nd);
      H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
      dshape.assign(dims.begin(), dims.end());
    } else if (cls != H5S_SCALAR) {
      throw IoError(spath.string() + ": tensor '" + key + "' has an unsupported dataspace");
    }
    if (dshape != shape)
      throw IoError(spath.string() + ": tensor '" + key + "' has shape " + shape_str(dshape) +
                    " but the manifest says " + shape_str(shape));
    if (h5_read_shape_attr(dset.get(), spath, key) != shape)
      throw IoError(spath.string() + ": tensor '" + key + "' attribute 'shape' does not match the manifest");

    std::vector<float> data(static_cast<size_t>(n));
    if (n > 0 && H5Dread(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0)
      h5_fail(spath, key, "dataset read");
    const std::string got_sha = sha256_hex(data.data(), data.size() * sizeof(float));
    const std::string attr_sha = h5_read_sha_attr(dset.get(), spath, key);
    if (got_sha != attr_sha)
      throw IoError(spath.string() + ": tensor '" + key + "' SHA-256 " + got_sha + " does not match its attribute " +
                    attr_sha);
    if (got_sha != want_sha)
      throw IoError(spath.string() + ": tensor '" + key + "' SHA-256 " + got_sha + " does not match " +
                    mpath.string() + " " + want_sha);
    out.shapes[key] = shape;
    out.tensors[key] = std::move(data);
  }
  return out;
}

void prune_checkpoints_impl(const fs::path& run_dir, int64_t keep) {
  if (keep < 0) throw ConfigError("prune_checkpoints: keep = " + std::to_string(keep) + " must be >= 0");
  const fs::path root = run_dir / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return;
  remove_stale_tmp(root);
  const std::optional<std::string> latest = read_latest_name(root);

  std::vector<std::pair<int64_t, std::string>> steps;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory()) continue;
    if (const auto s = parse_step_dir_name(name)) steps.emplace_back(*s, name);
  }
  std::sort(steps.begin(), steps.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = 0; i < steps.size(); i++) {
    const std::string& name = steps[i].second;
    if (static_cast<int64_t>(i) < keep || name == latest) continue;
    // Rename first so an interrupted delete never leaves a partial step_<N> directory.
    const fs::path aside = root / (std::string(kTmpPrefix) + "prune-" + name);
    fs::rename(root / name, aside);
    fs::remove_all(aside, ec);
  }
}

}  // namespace

std::string write_checkpoint(const fs::path& run_dir, const CheckpointMeta& meta,
                             const std::vector<CheckpointTensor>& tensors, const CheckpointWriteHook& hook) {
  return fs_errors_as_io([&] { return write_checkpoint_impl(run_dir, meta, tensors, hook); });
}

std::optional<fs::path> latest_checkpoint(const fs::path& run_dir) {
  return fs_errors_as_io([&] { return latest_checkpoint_impl(run_dir); });
}

LoadedCheckpoint read_checkpoint(const fs::path& ckpt_dir) {
  return fs_errors_as_io([&] { return read_checkpoint_impl(ckpt_dir); });
}

void prune_checkpoints(const fs::path& run_dir, int64_t keep) {
  fs_errors_as_io([&] { prune_checkpoints_impl(run_dir, keep); });
}

}  // namespace ssiat
