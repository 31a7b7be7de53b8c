// Fail-closed verification of an init-provenance attestation (docs/provenance.md section 7;
// the statement is core/attestation.h's). This part needs no BLAS, MPI, HDF5 or model: it
// regenerates the initial weights from the attestation's recipe and seed block alone, one tensor
// at a time (core/init_table.h), and builds into the small `ssiat-verify` as well as `ssiat`.
//
// Checks, in order, each PASS, FAIL or NOT RUN (a check whose inputs failed is NOT RUN, with the
// reason); the result is PASS only if none FAILED:
//   signature    the envelope parses, is signed by the public key, carries an in-toto statement
//   schema       the statement's type, predicate type, subjects and predicate fields
//   init         every initial tensor regenerated from the recipe and seed block in the
//                attestation alone (no file of the prover is read): each leaf equals the init
//                manifest's, and the Merkle root equals the init-root subject
//   chain        the records link from the init root, each parent the digest of the one before,
//                and the last weights root is the final-weights-root subject
//   checkpoints  with VerifyOptions::checkpoints (ssiat's HDF5 reader) and a run directory: each
//                chain record whose checkpoint still exists matches it
//   origin       no tensor loaded from a file, every tensor trainable, and every trainable tensor
//                changed by training (the evidence's ‖W_final − W_init‖ > 0)
//   replay       with VerifyOptions::replay (ssiat's trainer), a run directory and replay_segments
//                K > 0: the last K segments (checkpoint → next checkpoint) whose first checkpoint
//                is present are retrained and must reproduce the next record's roots bit for bit
//                (same hardware class and build; a segment trained on several ranks is NOT RUN)
//   lineage      with VerifyOptions::lineage, a run directory and a reference (a safetensors file
//                or a run directory): a report, not a verdict — the centred (Pearson) correlation
//                of each tensor of the run's last checkpoint with the reference's tensor of the
//                same name and shape, beside the control: the same figure between the run's last
//                checkpoint and its own regenerated init. Never raw cosine (norm weights near 1
//                have cosine ≈ 1 between unrelated models). Per-tensor figures in Check::data.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/chain.h"

namespace ssiat {

inline constexpr const char* kStatementType = "https://in-toto.io/Statement/v1";
inline constexpr const char* kPredicateType = "https://ssiat.dev/init-provenance/v1";

enum class CheckStatus { kPass, kFail, kNotRun };
const char* check_status_name(CheckStatus s);  // "PASS", "FAIL", "NOT RUN"

struct Check {
  std::string name;
  CheckStatus status = CheckStatus::kNotRun;
  std::string detail = {};  // one line
  nlohmann::json data = {};  // per-item figures for the JSON report (lineage); null if none
};

// Thrown by a check that could not run (reported as NOT RUN with its message, not as FAIL).
class CheckNotRun : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Checks the chain's checkpoints in a run directory, and the statement's per-tensor evidence
// against the last one; returns the PASS line, throws the FAIL one.
using CheckpointCheck = std::function<std::string(const std::vector<ChainRecord>& chain, const std::filesystem::path& run,
                                                  const nlohmann::json& evidence)>;

// Replays up to `segments` segments of the chain in a run directory; PASS line or throws.
using ReplayCheck = std::function<std::string(const std::vector<ChainRecord>& chain, const std::filesystem::path& run,
                                              int64_t segments)>;

// The lineage report: the PASS line; fills `data` with the per-tensor figures.
using LineageCheck = std::function<std::string(const std::vector<ChainRecord>& chain, const std::filesystem::path& run,
                                               const std::filesystem::path& reference, nlohmann::json& data)>;

struct VerifyOptions {
  std::filesystem::path envelope;
  std::filesystem::path pubkey;
  std::optional<std::filesystem::path> checkpoint_run;
  CheckpointCheck checkpoints;  // empty in a build without HDF5 (the check is then NOT RUN)
  int64_t replay_segments = 0;
  ReplayCheck replay;           // empty in a build without the trainer
  std::optional<std::filesystem::path> reference;
  LineageCheck lineage;         // empty in a build without HDF5
};

std::vector<Check> verify(const VerifyOptions& opt);
bool all_passed(const std::vector<Check>& checks);  // no FAIL
nlohmann::json report_json(const std::vector<Check>& checks);

}  // namespace ssiat
