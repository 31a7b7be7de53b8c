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
//                  "evidence": [{"name", "norm_final_minus_init", "steps_changed"} per tensor]}}
// final-weights-root is the last chain record's weights root (the init root without one); the
// recipe digest is SHA-256 of recipe.toml's bytes; the tokenizer digest is the tokenizer's.
//
// Verification is core/verify.h; verify_checkpoints() is its checkpoint check (HDF5).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/chain.h"
#include "core/verify.h"

namespace ssiat {

// The statement of a run directory (IoError/IntegrityError naming the file that is missing or
// malformed; ConfigError if the run wrote no init commitment yet).
nlohmann::json build_statement(const std::filesystem::path& run);

// Signs the statement of `run` with the key at `key` and writes the DSSE envelope to `out`
// atomically; returns the signer's key id.
std::string attest(const std::filesystem::path& run, const std::filesystem::path& key, const std::filesystem::path& out);

// The checkpoints check (VerifyOptions::checkpoints): every checkpoint of `chain` still in
// <run>/checkpoints has the record's manifest digest and roots (recomputed from its tensors);
// pruned ones are skipped; none present is a FAIL.
std::string verify_checkpoints(const std::vector<ChainRecord>& chain, const std::filesystem::path& run,
                               const nlohmann::json& evidence);

// The replay check (VerifyOptions::replay): for the last `segments` pairs of consecutive chain
// records (A, B) whose checkpoint A is in <run>/checkpoints, trains from A to B in a temporary
// run directory with the recipe of B's segment (history.jsonl) and requires B's weights and
// optimizer roots bit for bit. The recipe's data paths are read as the training run read them
// (relative to the working directory). A segment trained on several ranks cannot be replayed by
// one process and is skipped; none replayable is NOT RUN (CheckNotRun).
std::string replay_segments(const std::vector<ChainRecord>& chain, const std::filesystem::path& run, int64_t segments);

// The lineage report (VerifyOptions::lineage): the run's last checkpoint of `chain` (in
// <run>/checkpoints) against `reference` (a .safetensors file, or a run directory's latest
// checkpoint): per tensor of the same name and shape the centred (Pearson) correlation, and as
// the control the same between the last checkpoint and the run's regenerated init; `data` gets
// {"reference", "tensors": [{"name", "r_reference", "r_own_init"}], "mean_r_reference",
// "mean_r_own_init", "matrices"} (means over the matched 2-D tensors; a tensor with no variance on
// either side has null r and is left out).
std::string lineage_report(const std::vector<ChainRecord>& chain, const std::filesystem::path& run,
                           const std::filesystem::path& reference, nlohmann::json& data);

}  // namespace ssiat
