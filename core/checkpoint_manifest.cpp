// manifest.json of a checkpoint: writing and parsing with the self-digest (format, digest rule
// and error classes: core/checkpoint.h). This file uses no HDF5, so the libFuzzer target
// tests/fuzz/fuzz_checkpoint.cpp builds it alone with clang.
//
// Contract beyond the header: parse_manifest() throws only IoError subclasses, whatever the bytes
// (a JSON syntax error names the byte offset; a nesting deeper than kMaxDepth is refused before
// any recursive walk). Order: JSON, object, format (TornCheckpointError: what a torn write
// leaves); then every field's presence and type, then recipe_sha256 against recipe
// (IntegrityError naming the key); the self-digest last, so that an edit a field check can see is
// named by its key (read_checkpoint adds its directory and recipe checks before the digest).
#include <string>
#include <utility>

#include "core/checkpoint.h"
#include "core/checkpoint_detail.h"
#include "core/error.h"
#include "core/hash.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ssiat {
namespace {

using ckpt_detail::kFormat;
using ckpt_detail::kSelfDigestKey;
using ckpt_detail::UnsealedManifest;

constexpr int kMaxDepth = 64;

// SHA-256 hex of `m`'s compact dump without the self-digest member.
std::string self_digest(json m) {
  m.erase(kSelfDigestKey);
  return sha256_hex(m.dump());
}

template <typename T>
T field(const json& j, const char* name, const fs::path& mpath) {
  const auto it = j.find(name);
  if (it == j.end()) throw IntegrityError(mpath.string() + ": missing key '" + name + "'");
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw IntegrityError(mpath.string() + ": key '" + name + "' has the wrong type");
  }
}

// Integers only: get<int64_t>() would also convert floats and big unsigned numbers.
int64_t int_field(const json& j, const char* name, const fs::path& mpath) {
  const auto it = j.find(name);
  if (it == j.end()) throw IntegrityError(mpath.string() + ": missing key '" + name + "'");
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    throw IntegrityError(mpath.string() + ": key '" + name + "' is out of range");
  if (!it->is_number_integer()) throw IntegrityError(mpath.string() + ": key '" + name + "' is not an integer");
  const int64_t v = it->get<int64_t>();
  if (v < 0) throw IntegrityError(mpath.string() + ": key '" + name + "' is negative");
  return v;
}

uint64_t u64_field(const json& j, const char* name, const fs::path& mpath) {
  const auto it = j.find(name);
  if (it == j.end()) throw IntegrityError(mpath.string() + ": missing key '" + name + "'");
  if (!it->is_number_unsigned()) throw IntegrityError(mpath.string() + ": key '" + name + "' is not an unsigned integer");
  return it->get<uint64_t>();
}

std::vector<int64_t> shape_of(const json& j, const fs::path& mpath, const std::string& key) {
  if (!j.is_array()) throw IntegrityError(mpath.string() + ": tensors['" + key + "'].shape is not an array");
  if (j.size() > 64) throw IntegrityError(mpath.string() + ": tensors['" + key + "'].shape has rank > 64");
  std::vector<int64_t> shape;
  for (const auto& d : j) {
    if (!d.is_number_integer() || (d.is_number_unsigned() && d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) ||
        d.get<int64_t>() < 0)
      throw IntegrityError(mpath.string() + ": tensors['" + key + "'].shape has a bad dimension");
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

bool is_sha256_hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

UnsealedManifest parse_impl(std::string_view bytes, const fs::path& mpath) {
  // Depth limit first (a SAX-free check: the parser callback sees every depth), then the fields.
  bool too_deep = false;
  const json::parser_callback_t depth_guard = [&too_deep](int depth, json::parse_event_t, json&) {
    if (depth > kMaxDepth) too_deep = true;
    return !too_deep;  // discard everything once too deep, so the tree stays shallow
  };
  json m;
  try {
    m = json::parse(bytes.begin(), bytes.end(), depth_guard);
  } catch (const json::parse_error& e) {
    throw TornCheckpointError(mpath.string() + ": invalid JSON at byte " + std::to_string(e.byte));
  }
  if (too_deep) throw TornCheckpointError(mpath.string() + ": JSON nested deeper than " + std::to_string(kMaxDepth));
  if (!m.is_object()) throw TornCheckpointError(mpath.string() + ": not a JSON object");
  const auto format = m.find("format");
  if (format == m.end() || !format->is_string() || format->get<std::string>() != kFormat)
    throw TornCheckpointError(mpath.string() + ": format is not \"" + kFormat + "\"");

  UnsealedManifest u;
  u.stored_self_digest = field<std::string>(m, kSelfDigestKey, mpath);
  u.self_digest = self_digest(m);
  CheckpointManifest& out = u.man;
  out.digest = sha256_hex(bytes.data(), bytes.size());
  out.meta.step = int_field(m, "step", mpath);
  out.meta.samples_seen = int_field(m, "samples_seen", mpath);
  out.meta.master_seed = u64_field(m, "master_seed", mpath);
  out.meta.parent = field<std::string>(m, "parent", mpath);
  out.meta.recipe = field<std::string>(m, "recipe", mpath);
  const std::string recipe_sha = field<std::string>(m, "recipe_sha256", mpath);
  if (const std::string actual = sha256_hex(out.meta.recipe); recipe_sha != actual)
    throw IntegrityError(mpath.string() + ": recipe_sha256 " + ckpt_detail::printable(recipe_sha.substr(0, 64)) +
                         " is not the SHA-256 of the recorded recipe text (" + actual +
                         "); the recipe or its digest was edited");
  out.meta.extra = m.contains("extra") ? m["extra"] : json::object();
  if (!out.meta.extra.is_object()) throw IntegrityError(mpath.string() + ": key 'extra' is not an object");
  out.state_sha256 = field<std::string>(m, "state_sha256", mpath);
  if (!is_sha256_hex(out.state_sha256))
    throw IntegrityError(mpath.string() + ": key 'state_sha256' is not 64 lowercase hex digits");
  const auto tensors = m.find("tensors");
  if (tensors == m.end() || !tensors->is_object())
    throw IntegrityError(mpath.string() + ": key 'tensors' missing or not an object");
  for (const auto& [key, entry] : tensors->items()) {
    try {
      ckpt_detail::validate_key(key);
    } catch (const IoError& e) {
      throw IntegrityError(mpath.string() + ": " + e.what());
    }
    if (!entry.is_object() || !entry.contains("shape") || !entry.contains("sha256") || !entry["sha256"].is_string())
      throw IntegrityError(mpath.string() + ": tensors['" + key + "'] lacks shape or sha256");
    ManifestTensor t;
    t.shape = shape_of(entry["shape"], mpath, key);
    try {
      ckpt_detail::numel_of(t.shape, key);
    } catch (const IoError& e) {
      throw IntegrityError(mpath.string() + ": " + e.what());
    }
    t.sha256 = entry["sha256"].get<std::string>();
    if (!is_sha256_hex(t.sha256))
      throw IntegrityError(mpath.string() + ": tensors['" + key + "'].sha256 is not 64 lowercase hex digits");
    out.tensors.emplace(key, std::move(t));
  }
  return u;
}

}  // namespace

namespace ckpt_detail {

UnsealedManifest parse_manifest_fields(std::string_view bytes, const fs::path& mpath) {
  try {
    return parse_impl(bytes, mpath);
  } catch (const IoError&) {
    throw;
  } catch (const json::exception& e) {  // not expected: every access above is type-checked
    throw IntegrityError(mpath.string() + ": malformed manifest (" + printable(std::string(e.what()).substr(0, 120)) +
                         ")");
  }
}

void check_self_digest(const UnsealedManifest& u, const fs::path& mpath) {
  if (u.stored_self_digest != u.self_digest)
    throw IntegrityError(mpath.string() + ": " + kSelfDigestKey +
                         " does not match the manifest's fields (a field was edited after the checkpoint was written)");
}

}  // namespace ckpt_detail

CheckpointManifest parse_manifest(std::string_view bytes, const fs::path& mpath) {
  UnsealedManifest u = ckpt_detail::parse_manifest_fields(bytes, mpath);
  ckpt_detail::check_self_digest(u, mpath);
  return std::move(u.man);
}

std::string manifest_json(const CheckpointMeta& meta, const std::map<std::string, ManifestTensor>& tensors,
                          const std::string& state_sha256) {
  if (!meta.extra.is_object() && !meta.extra.is_null())  // null (e.g. `extra = {}`) is written as {}
    throw IoError("write_checkpoint: meta.extra must be a JSON object");
  json tj = json::object();
  for (const auto& [key, t] : tensors) tj[key] = {{"shape", t.shape}, {"sha256", t.sha256}};
  json m = {{"format", kFormat},
            {"step", meta.step},
            {"samples_seen", meta.samples_seen},
            {"master_seed", meta.master_seed},
            {"parent", meta.parent},
            {"recipe", meta.recipe},
            {"recipe_sha256", sha256_hex(meta.recipe)},
            {"tensors", tj},
            {"state_sha256", state_sha256},
            {"extra", meta.extra.is_null() ? json::object() : meta.extra}};
  try {
    m[kSelfDigestKey] = self_digest(m);
    return m.dump(2) + "\n";
  } catch (const json::exception& e) {  // type_error 316: a string that is not UTF-8
    throw IoError(std::string("write_checkpoint: manifest cannot be serialised (") + e.what() + ")");
  }
}

}  // namespace ssiat
