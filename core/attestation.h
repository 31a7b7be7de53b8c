// The init-provenance attestation (issue 10; ../shared/DESIGN.md "Provenance"; docs/provenance.md
// "Attestation"): an in-toto Statement v1 about a run directory, in a DSSE envelope signed with
// Ed25519 (core/dsse.h, core/keys.h), and its fail-closed verification.
//
// Statement (payloadType "application/vnd.in-toto+json"):
//   {"_type": "https://in-toto.io/Statement/v1",
//    "subject": [{"name": "init-root", "digest": {"sha256": R}}, {"name": "final-weights-root", ...},
//                {"name": "recipe", ...}, {"name": "tokenizer", ...}],
//    "predicateType": "https://ssiat.dev/init-provenance/v1",
//    "predicate": {"framework": run.json (the first segment's build as compiled),
//                  "segments": history.jsonl's lines (each segment's recipe digest and build),
//                  "recipe": recipe.toml verbatim,
//                  "seed_block": {"master": ..., "streams": [...]} (seeds.jsonl),
//                  "init_manifest": [tensor records], "init_commitment": {...},
//                  "tokenizer": {...}, "data": {...} (seeds.jsonl),
//                  "chain": [chain.jsonl's records],
//                  "evidence": [{"name", "norm_final_minus_init"} per tensor]}}
// final-weights-root is the last chain record's weights root (the init root without one); the
// recipe digest is SHA-256 of recipe.toml's bytes; the tokenizer digest is the tokenizer's.
//
// Verification (verify()) runs its checks in order and reports each as PASS, FAIL or NOT RUN;
// a check whose inputs failed is NOT RUN, and the result is PASS only if none FAILED:
//   signature    the envelope parses, is signed by the public key, carries an in-toto statement
//   schema       the statement's type, predicate type, subjects and predicate fields
//   init         every initial tensor regenerated from the recipe and seed block in the
//                attestation alone (no file of the prover is read): each leaf equals the init
//                manifest's, and the Merkle root equals the init-root subject
//   chain        the records link from the init root, each parent the digest of the one before,
//                and the last weights root is the final-weights-root subject
//   checkpoints  (--checkpoint RUN_DIR) each chain record whose checkpoint still exists matches
//                it: manifest digest and the roots recomputed from its tensors
//   origin       no tensor loaded from a file, every tensor trainable, and every trainable tensor
//                changed by training (the evidence's ‖W_final − W_init‖ > 0)
//   replay, lineage  NOT RUN (not built yet)
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ssiat {

inline constexpr const char* kStatementType = "https://in-toto.io/Statement/v1";
inline constexpr const char* kPredicateType = "https://ssiat.dev/init-provenance/v1";

// The statement of a run directory (IoError/IntegrityError naming the file that is missing or
// malformed; ConfigError if the run wrote no init commitment yet).
nlohmann::json build_statement(const std::filesystem::path& run);

// Signs the statement of `run` with the key at `key` and writes the DSSE envelope to `out`
// atomically; returns the signer's key id.
std::string attest(const std::filesystem::path& run, const std::filesystem::path& key, const std::filesystem::path& out);

enum class CheckStatus { kPass, kFail, kNotRun };
const char* check_status_name(CheckStatus s);  // "PASS", "FAIL", "NOT RUN"

struct Check {
  std::string name;
  CheckStatus status = CheckStatus::kNotRun;
  std::string detail;  // one line
};

struct VerifyOptions {
  std::filesystem::path envelope;
  std::filesystem::path pubkey;
  std::optional<std::filesystem::path> checkpoint_run;
};

std::vector<Check> verify(const VerifyOptions& opt);
bool all_passed(const std::vector<Check>& checks);  // no FAIL
nlohmann::json report_json(const std::vector<Check>& checks);

}  // namespace ssiat
