// Checkpoints (DESIGN invariants 6-7): atomic, self-verifying, chained.
//
// A checkpoint is a directory <run>/checkpoints/step_<NNNNNNNN>/ holding
//   state.h5       one dataset per tensor at "/<group>/<name>" (group: "param", "adam_m",
//                  "adam_v"), float32 logical (unsharded) tensors; each dataset carries
//                  attributes "sha256" (of its little-endian bytes) and "shape".
//   manifest.json  {"format":"ssiat-checkpoint/v1","step","samples_seen","master_seed",
//                   "parent": digest of the previous checkpoint's manifest or the init root,
//                   "tensors": {"<group>/<name>": {"shape","sha256"}}, "state_sha256",
//                   "extra": {...}}
// The checkpoint's digest is the SHA-256 of its manifest.json bytes.
// Writing: everything goes to <run>/checkpoints/.tmp-step_<N>/, files are fsynced, the directory
// is renamed into place, then <run>/checkpoints/latest (one line: the directory name) is
// replaced atomically. A reader trusts only what `latest` names, and re-verifies every hash.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ssiat {

struct CheckpointTensor {
  std::string key;  // "<group>/<name>", e.g. "param/model.norm.weight"
  std::vector<int64_t> shape;
  const float* data = nullptr;  // numel(shape) floats
};

struct CheckpointMeta {
  int64_t step = 0;
  int64_t samples_seen = 0;  // loader position (global samples consumed)
  uint64_t master_seed = 0;
  std::string parent;        // digest of the parent (previous checkpoint or init commitment)
  nlohmann::json extra = nlohmann::json::object();
};

struct LoadedCheckpoint {
  CheckpointMeta meta;
  std::string digest;  // SHA-256 of manifest.json
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, std::vector<float>> tensors;
};

// Test hook: called after each tensor is written into the temporary directory; throwing from
// it simulates an interrupted write.
using CheckpointWriteHook = std::function<void(const std::string& key)>;

// Writes a checkpoint atomically and points `latest` at it; returns its digest.
std::string write_checkpoint(const std::filesystem::path& run_dir, const CheckpointMeta& meta,
                             const std::vector<CheckpointTensor>& tensors,
                             const CheckpointWriteHook& hook = {});

// The directory named by <run>/checkpoints/latest, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

// Reads and verifies (every tensor's SHA-256, the manifest's consistency); throws IoError naming
// the file and tensor on any mismatch.
LoadedCheckpoint read_checkpoint(const std::filesystem::path& ckpt_dir);

// Deletes all but the newest `keep` complete checkpoints (and stale .tmp-* directories).
void prune_checkpoints(const std::filesystem::path& run_dir, int64_t keep);

}  // namespace ssiat
