// Helpers shared by core/checkpoint.cpp (HDF5 state, directories) and
// core/checkpoint_manifest.cpp (manifest.json, fuzzed without HDF5). Not a public API.
#pragma once

#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/checkpoint.h"
#include "core/error.h"

namespace ssiat::ckpt_detail {

inline constexpr const char* kFormat = "ssiat-checkpoint/v2";
inline constexpr const char* kSelfDigestKey = "manifest_sha256";

// `s` with control bytes written as \xNN, so that a message quoting it stays on one line.
inline std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// A key is "<group>/<name>[/<more>]": non-empty components, none "." or "..", no leading '/',
// no control bytes.
inline void validate_key(const std::string& key) {
  for (unsigned char c : key)
    if (c < 0x20 || c == 0x7f) throw IoError("checkpoint tensor key '" + printable(key) + "': control character");
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

// Elements of `shape`; IoError for a negative dimension or more than INT64_MAX / 4 elements
// (so that the byte count fits in int64).
inline int64_t numel_of(const std::vector<int64_t>& shape, const std::string& key) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw IoError("checkpoint tensor '" + key + "': negative dimension in shape");
    if (d != 0 && n > INT64_MAX / 4 / d) throw IoError("checkpoint tensor '" + key + "': shape too large");
    n *= d;
  }
  return n;
}

// parse_manifest in two steps (core/checkpoint_manifest.cpp), so that read_checkpoint can check
// fields against the directory name and the recorded recipe, naming the field, before the
// self-digest (which can only name manifest_sha256).
struct UnsealedManifest {
  CheckpointManifest man;
  std::string stored_self_digest;  // manifest_sha256 as written
  std::string self_digest;         // recomputed from the other fields
};

// Everything parse_manifest checks but the self-digest: TornCheckpointError for bytes that are not
// a v2 manifest at all, IntegrityError naming the key for every other problem (a missing key, a
// wrong type, recipe_sha256 not the SHA-256 of recipe).
UnsealedManifest parse_manifest_fields(std::string_view bytes, const std::filesystem::path& mpath);

// IntegrityError naming manifest_sha256 unless it matches the recomputed self-digest.
void check_self_digest(const UnsealedManifest& u, const std::filesystem::path& mpath);

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); i++) os << (i ? "," : "") << shape[i];
  os << "]";
  return os.str();
}

}  // namespace ssiat::ckpt_detail
