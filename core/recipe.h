// Recipes: one TOML file fills one small config struct per component (no god object).
//
// Layout of a recipe (every key optional unless marked; defaults below):
//   seed = 1234                        # master seed (u64); absent: drawn once from the OS, logged
//   [model]     vocab_size*, n_layer*, d_model*, n_head*, n_kv_head, d_ff*, max_seq_len*,
//               tied_embeddings, rope_theta, norm_eps, init_std
//   [tokenizer] kind ("byte" | "bpe"), path (bpe: the directory `ssiat tokenizer train` wrote)
//   [data]      train* (prepared data dir), val (prepared data dir)
//   [train]     steps*, micro_batch*, seq_len*, grad_accum, eval_interval, eval_batches,
//               log_interval, sample_tokens, sample_prompt
//   [optim]     lr*, min_lr, beta1, beta2, eps, weight_decay, grad_clip
//   [schedule]  kind ("cosine" | "wsd"), warmup_steps, decay_fraction (wsd only)
//   [checkpoint] interval, keep
//   [parallel]  dp, tp, zero1          # world = dp × tp ranks (distributed/mesh.h)
//   [init]      from                   # a weight file whose tensors replace the drawn ones
//   [provenance] sovereign             # refuse any weight file outside the run's own chain
// Relative paths in a recipe are taken relative to the current working directory.
// docs/recipes.md lists every key with its type, default and range. Seeds must be < 2^63 (TOML
// integers are signed 64-bit).
//
// Contract: load_recipe() throws ConfigError with one line naming the file, the key and its
// line for an unknown key, a wrong type, an out-of-range value, or a missing file; it reads
// only, writes nothing. Overrides (`--set section.key=value`, value in TOML syntax, a bare
// word taken as a string) apply before validation, with the same checks.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/device.h"

namespace ssiat {

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t n_layer = 0;
  int64_t d_model = 0;
  int64_t n_head = 0;
  int64_t n_kv_head = 0;  // 0 (or absent) in the file means "= n_head"; load_recipe stores n_head
  int64_t d_ff = 0;
  int64_t max_seq_len = 0;
  bool tied_embeddings = false;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;
  int64_t head_dim() const { return d_model / n_head; }
  void validate() const;  // throws ConfigError naming the key and value
  bool operator==(const ModelConfig&) const = default;
};

enum class TokenizerKind { kByte, kBpe };

struct TokenizerConfig {
  TokenizerKind kind = TokenizerKind::kByte;
  std::string path;  // tokenizer directory (bpe); unused for "byte"
  void validate() const;
  bool operator==(const TokenizerConfig&) const = default;
};

struct DataConfig {
  std::string train;  // directory written by `ssiat data prepare`
  std::string val;    // optional
  void validate() const;
  bool operator==(const DataConfig&) const = default;
};

struct TrainConfig {
  int64_t steps = 0;
  int64_t micro_batch = 0;
  int64_t seq_len = 0;
  int64_t grad_accum = 1;
  int64_t eval_interval = 0;  // 0: only at the end (if data.val is set)
  int64_t eval_batches = 8;
  int64_t log_interval = 1;
  int64_t sample_tokens = 0;  // generate this many tokens after training (greedy); 0: none
  std::string sample_prompt;
  DeviceKind device = DeviceKind::kCpu;   // "cpu" | "cuda" (core/device.h)
  std::optional<Precision> precision;      // "f32" | "bf16"; "auto" (unset): bf16 on cuda, f32 on cpu
  bool recompute = false;                  // recompute each layer's activations in backward
  Precision effective_precision() const {
    return precision.value_or(device == DeviceKind::kCuda ? Precision::kBf16 : Precision::kF32);
  }
  void validate() const;
  bool operator==(const TrainConfig&) const = default;
};

struct OptimConfig {
  double lr = 0;
  double min_lr = 0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // 0: no clipping
  void validate() const;
  bool operator==(const OptimConfig&) const = default;
};

enum class ScheduleKind { kCosine, kWsd };

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::kCosine;
  int64_t warmup_steps = 0;
  double decay_fraction = 0.2;  // wsd: last fraction of steps decays linearly to min_lr
  void validate() const;
  bool operator==(const ScheduleConfig&) const = default;
};

struct CheckpointConfig {
  int64_t interval = 0;  // 0: only at the last step
  int64_t keep = 0;      // 0: keep all
  void validate() const;
  bool operator==(const CheckpointConfig&) const = default;
};

// Data × tensor parallelism (distributed/mesh.h). The launch must start dp × tp ranks; that
// world size is checked at start-up, everything else by validate() and Recipe::validate().
struct ParallelConfig {
  int64_t dp = 1;      // data-parallel replicas
  int64_t tp = 1;      // tensor-parallel ranks per replica (adjacent global ranks)
  bool zero1 = false;  // ZeRO-1: each dp rank keeps the optimizer moments of its slice only
  void validate() const;
  bool operator==(const ParallelConfig&) const = default;
};

// Initialisation from a weight file (docs/provenance.md): every tensor of the model found in
// `from` (a .safetensors file, or a run directory's latest checkpoint) with the same name and
// logical shape replaces the drawn one, and the seed log marks it `loaded:<digest of the file>`,
// which the attestation's origin policy rejects. Empty: every tensor drawn from its seed stream.
struct InitConfig {
  std::string from;
  bool operator==(const InitConfig&) const = default;
};

// Sovereign mode: the trainer opens no weight file but its own checkpoint chain's (init.from
// refused; a resumed checkpoint must be a record of the run's chain.jsonl).
struct ProvenanceConfig {
  bool sovereign = false;
  bool operator==(const ProvenanceConfig&) const = default;
};

struct Recipe {
  std::string path;                    // file it was read from
  std::string text;                    // the file verbatim
  std::vector<std::string> overrides;  // the --set strings applied, in order
  std::optional<uint64_t> seed;
  ModelConfig model;
  TokenizerConfig tokenizer;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  ScheduleConfig schedule;
  CheckpointConfig checkpoint;
  ParallelConfig parallel;
  InitConfig init;
  ProvenanceConfig provenance;
  void validate() const;  // each part, then cross-checks (seq_len <= max_seq_len, tp | n_head, ...)
  bool operator==(const Recipe&) const = default;  // every field, path and text included
};

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

// load_recipe() on bytes already in memory: `text` is parsed as the content of a file named
// `path` (used only in messages and Recipe::path). Same errors, all ConfigError.
Recipe parse_recipe(std::string text, const std::string& path, const std::vector<std::string>& overrides = {});

// The effective recipe (file + overrides + defaults) as canonical TOML, for the run directory.
std::string recipe_to_toml(const Recipe& r);

// ---- comparing recipes (strict resume) ---------------------------------------------------

// The keys that a resumed run may change (core/trainer.h): they decide how long to train and
// what to log, evaluate, sample and keep, never what one update computes. `data.val` only feeds
// evaluation. Changing `train.steps` re-times a cosine schedule from the resume point (wsd
// keeps its constant phase), so the result equals a straight run of the new length only while
// the schedules agree up to the resume step. `train.recompute` trades memory for time with the
// same bits. `seed` is compared with the checkpoint's master
// seed instead (absent: the checkpoint's seed is used).
// The layout keys are not here but in kResumeLayoutKeys.
inline constexpr std::string_view kResumeMutableKeys[] = {
    "train.steps",       "train.log_interval",  "train.eval_interval", "train.eval_batches",
    "train.sample_tokens", "train.sample_prompt", "checkpoint.interval", "checkpoint.keep",
    "train.recompute",   "data.val"};

// The keys a resumed run may change to run on another layout (resharding on resume: checkpoints
// hold logical whole tensors), provided the global batch train.micro_batch × train.grad_accum ×
// parallel.dp stays the same, so every step still reads the same samples: e.g. dp 2 → 4 with
// grad_accum 2 → 1. Only the order of the sums changes (ZeRO-1 on or off changes no bit).
inline constexpr std::string_view kResumeLayoutKeys[] = {"parallel.dp", "parallel.tp", "parallel.zero1",
                                                         "train.grad_accum", "train.micro_batch"};

// One key whose value differs between two recipe texts.
struct RecipeDifference {
  std::string key;    // "section.key", or "seed"
  std::string ours;   // the value in the first text as TOML ("0.001", "\"prep/train\"", "true"),
  std::string theirs; // the value in the second; "(absent)" where a text lacks the key
};

// Compares two recipe TOML texts (normally recipe_to_toml output) key by key after parsing
// both with toml++: values are equal when they have the same TOML type and value. Keys are
// visited in canonical order (the order recipe_to_toml writes), then any other key in name
// order; the first key outside `ignore` whose value differs is returned, nullopt if none does.
// A text that does not parse throws ConfigError "recipe text #1|#2 does not parse (line L: ...)".
std::optional<RecipeDifference> first_recipe_difference(std::string_view ours, std::string_view theirs,
                                                        std::span<const std::string_view> ignore = {});

}  // namespace ssiat
