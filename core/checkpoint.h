// Checkpoints (DESIGN invariants 6-7): atomic, self-verifying, chained.
//
// A checkpoint is a directory <run>/checkpoints/step_<NNNNNNNN>/ holding
//   state.h5       one dataset per tensor at "/<group>/<name>" (group: "param", "adam_m",
//                  "adam_v"), float32 logical (unsharded) tensors; each dataset carries
//                  attributes "sha256" (of its little-endian bytes) and "shape".
//   manifest.json  {"format":"ssiat-checkpoint/v2","step","samples_seen","master_seed",
//                   "parent": digest of the previous checkpoint's manifest or the init root,
//                   "recipe": the effective recipe as canonical TOML ("" if the writer gave none),
//                   "recipe_sha256": SHA-256 of "recipe",
//                   "tensors": {"<group>/<name>": {"shape","sha256"}}, "state_sha256",
//                   "extra": {...}, "manifest_sha256"}
// manifest_sha256 (the self-digest) covers every other field: it is the SHA-256 (lowercase hex)
// of the manifest object without the "manifest_sha256" member, serialised by nlohmann::json's
// compact dump(): members in byte order of their names, no whitespace, numbers as parsed
// (shortest round-trip form for floats), strings as UTF-8 with JSON escapes. The reader
// recomputes it from the parsed manifest, so any edited field is refused; whitespace changes are
// not edits. Tensor bytes stay covered by their per-tensor SHA-256 and state_sha256.
// The checkpoint's digest (what a child's "parent" names) is the SHA-256 of its manifest.json
// bytes. v1 manifests (no self-digest, no recipe) are refused.
// Writing: everything goes to <run>/checkpoints/.tmp-step_<N>/, files are fsynced, the directory
// is renamed into place, then <run>/checkpoints/latest (one line: the directory name) is
// replaced atomically. A reader trusts only what `latest` names, and re-verifies every hash.
//
// Reading sorts every failure into one of three classes (all IoError):
//   torn       TornCheckpointError: what a crash or a file system that lost unsynced writes
//              leaves: manifest.json or state.h5 missing; manifest.json not JSON, not an object,
//              or not of format v2; state.h5 not openable as HDF5, or a tensor's dataset missing
//              or shorter than the manifest says (each only while state.h5 is not the file
//              state_sha256 hashed). For resume, `latest` missing, malformed or dangling too.
//   read       ReadError (core/error.h): the operating system failed a read (EIO; a file
//              shrinking while read): "PATH: read error at byte N: ...". state.h5 is hashed
//              whole (checked reads) before HDF5 opens it, so an EIO normally surfaces there; an
//              HDF5 call that fails later is a read error when HDF5's file driver recorded an OS
//              errno for it (e.g. "errno = 5"), else torn, or integrity if state.h5 is byte for
//              byte the file state_sha256 hashed (then nothing in it can be torn).
//   integrity  IntegrityError (core/error.h): a complete, readable checkpoint that contradicts
//              itself: a field checked by name first (step vs the directory name, samples_seen vs
//              step × train.micro_batch × train.grad_accum of the recorded recipe, recipe_sha256
//              vs the recipe text, a key missing or of the wrong type), then manifest_sha256 vs
//              the fields, then state.h5 (a tensor whose SHA-256 differs from the manifest's,
//              named; a dataset of another type or shape; state_sha256 itself). Every message is
//              one line naming the file and the key or tensor.
// Anything else (a .tmp-* directory, a file that exists but cannot be opened, e.g. EACCES) is a
// plain IoError. Resume (find_resume_point) falls back past torn checkpoints only; any other
// failure stops it (hard error, nothing renamed, `latest` untouched).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/state_digest.h"

namespace ssiat {

// A checkpoint left incomplete by a crash (the "torn" class above); resume falls back past it.
class TornCheckpointError : public IoError {
 public:
  using IoError::IoError;
};

struct CheckpointTensor {
  std::string key;  // "<group>/<name>", e.g. "param/model.norm.weight"
  std::vector<int64_t> shape;
  const float* data = nullptr;  // numel(shape) floats, or null and then:
  // Fills numel(shape) floats at dst. Called once per tensor, in list order, when the writer
  // reaches the tensor (so a writer holds one fetched tensor at a time, e.g. gathered from
  // other ranks).
  std::function<void(float* dst)> fetch = nullptr;
};

struct CheckpointMeta {
  int64_t step = 0;
  int64_t samples_seen = 0;  // loader position (global samples consumed)
  uint64_t master_seed = 0;
  std::string parent;        // digest of the parent (previous checkpoint or init commitment)
  std::string recipe;        // effective recipe, canonical TOML (core/recipe.h); "" if none
  nlohmann::json extra = nlohmann::json::object();
};

// One tensor as listed in manifest.json.
struct ManifestTensor {
  std::vector<int64_t> shape;
  std::string sha256;
};

// The parsed, self-digest-verified content of a manifest.json.
struct CheckpointManifest {
  CheckpointMeta meta;
  std::map<std::string, ManifestTensor> tensors;  // by key "<group>/<name>"
  std::string state_sha256;
  std::string digest;  // SHA-256 of the manifest bytes (the checkpoint's digest)
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

// Writes a checkpoint atomically and points `latest` at it; returns its digest. With `roots`,
// also the weights and optimizer roots over the logical tensor bytes (core/state_digest.h),
// computed as the tensors are written.
std::string write_checkpoint(const std::filesystem::path& run_dir, const CheckpointMeta& meta,
                             const std::vector<CheckpointTensor>& tensors,
                             const CheckpointWriteHook& hook = {}, StateRoots* roots = nullptr);

// The roots of a checkpoint read back (LoadedCheckpoint::tensors, f32), the same as the writer's.
StateRoots state_roots_of(const LoadedCheckpoint& ck);

// The directory named by <run>/checkpoints/latest, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

// Reads and verifies every field and hash (order and classes: "Reading" above); throws
// TornCheckpointError, ReadError or IntegrityError naming the file and key or tensor, and
// IoError for a .tmp-* directory or a file system error.
LoadedCheckpoint read_checkpoint(const std::filesystem::path& ckpt_dir);

// The same checks, one tensor in memory at a time: each tensor whose key `want` accepts (every
// one when `want` is empty) is verified and handed to `sink`, in key order; the manifest is
// returned at the end. A tensor `want` refuses is not read (the whole-file state_sha256 still
// covers its bytes).
using CheckpointSink =
    std::function<void(const std::string& key, const std::vector<int64_t>& shape, std::vector<float>&& data)>;
CheckpointManifest stream_checkpoint(const std::filesystem::path& ckpt_dir,
                                     const std::function<bool(const std::string&)>& want, const CheckpointSink& sink);

// Parses manifest.json bytes: a JSON object (nesting at most 64 deep) with the v2 format
// (TornCheckpointError otherwise), every field of the right type, valid tensor keys and shapes,
// recipe_sha256 matching recipe, and a matching manifest_sha256 (IntegrityError otherwise, naming
// the key). Throws "<mpath>: ..." errors derived from IoError, and nothing else. Reads no file;
// `mpath` names the bytes. The checks against the directory and the recipe are read_checkpoint's.
CheckpointManifest parse_manifest(std::string_view bytes, const std::filesystem::path& mpath);
// parse_manifest of <ckpt_dir>/manifest.json (the tensors are not read).
CheckpointManifest read_manifest(const std::filesystem::path& ckpt_dir);

// The manifest.json bytes (pretty-printed, recipe_sha256 and self-digest filled in); IoError if
// meta.extra is not an object or a string is not valid UTF-8.
std::string manifest_json(const CheckpointMeta& meta, const std::map<std::string, ManifestTensor>& tensors,
                          const std::string& state_sha256);

// Checks that `ck` holds exactly the tensors `expected` lists (key -> shape): throws ConfigError
// "<ckpt_dir>: ..." naming the first key (in key order) that is missing from the checkpoint,
// present in it but not expected (e.g. "param/lm_head.weight" under tied embeddings), or of
// another shape.
void check_checkpoint_tensors(const LoadedCheckpoint& ck, const std::map<std::string, std::vector<int64_t>>& expected,
                              const std::filesystem::path& ckpt_dir);

// ---- choosing where a resume starts (no dead ends) ---------------------------------------

struct RejectedCheckpoint {
  std::filesystem::path dir;
  std::string reason;  // the one-line error that refused it
};

struct ResumePoint {
  std::optional<LoadedCheckpoint> checkpoint;  // the checkpoint to resume from; nullopt: none usable
  std::filesystem::path dir;                   // its directory ("" if none)
  bool latest_ok = false;                      // `latest` named it (no fallback happened)
  std::string latest_problem;                  // why `latest` was not used: "is missing", "names step_N, which ..."
  bool latest_rejected = false;                // `latest` named rejected[0] (torn)
  std::vector<RejectedCheckpoint> rejected;    // torn directories tried and refused, newest first
};

// Finds the checkpoint a resume starts from, reading only: the one `latest` names if it reads
// and verifies (read_checkpoint); otherwise (latest missing, malformed, dangling, or naming a
// torn checkpoint) the newest step_<N> directory that does, newest first, passing over torn ones
// (each listed in `rejected`). No step directory at all: an empty ResumePoint with latest_ok
// false. A checkpoint tried that fails with a read error (ReadError, or an IoError such as a
// permission error) or an integrity failure ends the search: the error propagates (an
// IntegrityError with "; refusing to resume from it — move the directory aside to resume from
// the previous checkpoint" appended), so resume never skips a checkpoint it cannot trust to be
// merely torn. A read error on `latest` itself propagates too.
ResumePoint find_resume_point(const std::filesystem::path& run_dir);

// After a fallback (rp.latest_ok false), before anything new is written: renames each rejected
// (torn) directory to checkpoints/rejected-step_<N>[.k] (kept for inspection; never read, pruned
// or overwritten), and points `latest` at rp.dir, or removes it if rp has no checkpoint, so later
// writes of the same steps never collide with a bad directory.
void set_aside_rejected(const std::filesystem::path& run_dir, const ResumePoint& rp);

// Deletes all but the newest `keep` complete checkpoints (and stale .tmp-* directories).
void prune_checkpoints(const std::filesystem::path& run_dir, int64_t keep);

}  // namespace ssiat
