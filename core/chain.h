// The checkpoint chain (docs/provenance.md "Chain"): <run>/chain.jsonl holds one record per
// checkpoint the run wrote, oldest first, and is never pruned with the checkpoints, so the chain
// from the init root to the last checkpoint stays whole. One JSON object per line (compact, keys in
// byte order, as nlohmann::json::dump writes them), fields:
//   step, samples_seen        the checkpoint's (core/checkpoint.h)
//   checkpoint                "step_<N>" (its directory, which pruning may remove)
//   manifest_sha256           the checkpoint's digest (SHA-256 of its manifest.json)
//   weights_root, optimizer_root, roots_scheme
//                             over the logical tensor bytes (core/state_digest.h)
//   recipe_sha256             of the segment's effective recipe (canonical TOML)
//   build                     {"git_commit", "executable_sha256"} of the segment's ssiat
//   segment                   the invocation that wrote it (history.jsonl's "segment")
//   parent                    the previous record's digest, or the init root for the first
// A record's digest is the SHA-256 of its line's bytes (without the "\n"). On resume the records
// after the resumed checkpoint's step are dropped (that work is being redone) and the next record's
// parent is the digest of the record of the resumed checkpoint.
// Errors: IoError naming the file; IntegrityError "FILE:LINE: ..." for a record that does not parse
// or lacks a field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ssiat {

struct ChainRecord {
  int64_t step = 0;
  int64_t samples_seen = 0;
  std::string checkpoint;
  std::string manifest_sha256;
  std::string weights_root;
  std::string optimizer_root;
  std::string recipe_sha256;
  std::string git_commit;
  std::string executable_sha256;
  int64_t segment = 0;
  std::string parent;
  nlohmann::json to_json() const;
  static ChainRecord from_json(const nlohmann::json& j, const std::string& where);
};

inline constexpr const char* kChainFile = "chain.jsonl";

std::string chain_line(const ChainRecord& r);        // compact JSON, no "\n"
std::string chain_digest(const std::string& line);   // SHA-256 hex of the line's bytes

// Every record of <run>/chain.jsonl (empty if the file does not exist).
std::vector<ChainRecord> read_chain(const std::filesystem::path& run);
// Replaces <run>/chain.jsonl (atomically) by `records`.
void write_chain(const std::filesystem::path& run, const std::vector<ChainRecord>& records);
// The digest the next record's parent names: the last record's, or `init_root` if none.
std::string chain_tip(const std::vector<ChainRecord>& records, const std::string& init_root);

}  // namespace ssiat
