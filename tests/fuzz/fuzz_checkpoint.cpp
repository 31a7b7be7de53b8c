// libFuzzer target for the checkpoint manifest reader (core/checkpoint.h: parse_manifest and
// manifest_json; read_checkpoint runs parse_manifest on manifest.json before it opens state.h5).
//
// Input: the first byte selects the mode, the rest is manifest.json:
//   even  the bytes as they are (almost never pass the self-digest: exercises JSON syntax,
//         nesting, the format and digest checks)
//   odd   if the bytes parse as a JSON object, its manifest_sha256 is recomputed first (as a
//         forger would), so every field check behind the self-digest is reached
// Properties checked for every input (stated in core/checkpoint.h):
//   C1 parse_manifest either returns or throws IoError; any other exception escapes and libFuzzer
//      reports it as a crash
//   C2 every error message is one line and starts with the manifest's path
//   C3 a manifest that parses is written back by manifest_json to bytes that parse to the same
//      fields (meta, tensors, state_sha256)
// A violation prints the property and the input (escaped) to stderr, then aborts.
// Build and run: tests/fuzz/run_fuzz.sh SECONDS BUILD_DIR checkpoint.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/hash.h"

#include "tests/fuzz/fuzz_util.h"

namespace {

using ssiat::fuzz::escaped;

constexpr const char* kPath = "run/checkpoints/step_00000001/manifest.json";

[[noreturn]] void fail(const char* property, std::string_view input, const std::string& detail) {
  ssiat::fuzz::fail("fuzz_checkpoint", property, input, detail);
}

// The bytes with their self-digest recomputed, or the bytes unchanged if they are not a shallow
// JSON object (the depth limit keeps this helper's own recursion bounded).
std::string resealed(std::string_view bytes) {
  int max_depth = 0;
  const nlohmann::json::parser_callback_t depth = [&max_depth](int d, nlohmann::json::parse_event_t, nlohmann::json&) {
    max_depth = std::max(max_depth, d);
    return d <= 64;
  };
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(bytes.begin(), bytes.end(), depth);
  } catch (const nlohmann::json::exception&) {
    return std::string(bytes);
  }
  if (max_depth > 64 || !m.is_object()) return std::string(bytes);
  m.erase("manifest_sha256");
  m["manifest_sha256"] = ssiat::sha256_hex(m.dump());
  return m.dump(1);
}

bool same(const ssiat::CheckpointManifest& a, const ssiat::CheckpointManifest& b) {
  if (a.meta.step != b.meta.step || a.meta.samples_seen != b.meta.samples_seen ||
      a.meta.master_seed != b.meta.master_seed || a.meta.parent != b.meta.parent || a.meta.recipe != b.meta.recipe ||
      a.meta.extra.dump() != b.meta.extra.dump() || a.state_sha256 != b.state_sha256 ||
      a.tensors.size() != b.tensors.size())
    return false;
  for (const auto& [key, t] : a.tensors) {
    const auto it = b.tensors.find(key);
    if (it == b.tensors.end() || it->second.shape != t.shape || it->second.sha256 != t.sha256) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view raw(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string bytes = (data[0] & 1) ? resealed(raw) : std::string(raw);
  ssiat::CheckpointManifest man;
  try {
    man = ssiat::parse_manifest(bytes, kPath);
  } catch (const ssiat::IoError& e) {
    const std::string_view msg = e.what();
    if (msg.find('\n') != std::string_view::npos || msg.find('\r') != std::string_view::npos)
      fail("C2 one-line error", bytes, "message \"" + escaped(msg) + "\"");
    if (msg.rfind(std::string(kPath) + ": ", 0) != 0) fail("C2 error names the file", bytes, std::string(msg));
    return 0;
  }
  std::string again;
  try {
    again = ssiat::manifest_json(man.meta, man.tensors, man.state_sha256);
  } catch (const ssiat::Error& e) {
    fail("C3 written back", bytes, std::string("manifest_json threw: ") + e.what());
  }
  try {
    if (!same(man, ssiat::parse_manifest(again, kPath))) fail("C3 same fields", bytes, "rewritten: " + escaped(again));
  } catch (const ssiat::IoError& e) {
    fail("C3 rewritten manifest parses", bytes, e.what());
  }
  return 0;
}
