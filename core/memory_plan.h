// Memory plan: the bytes every buffer the trainer allocates needs, from a recipe alone, and the
// check that refuses a recipe whose buffers cannot fit before anything is allocated.
//
// Per rank, under the recipe's [parallel] layout (tp divides heads, MLP width and vocabulary;
// ZeRO-1 divides the moments by dp; global rank 0 alone reads a checkpoint on resume).
// Items (f32 = 4 B; every Buffer rounded up to 64 B as core/buffer.h allocates it; P = number
// of parameters this rank holds, exactly Llama<float>::num_params(); N = micro_batch * T_cap tokens, T_cap =
// train.seq_len, or longer when sampling after training grows the activations up to
// model.max_seq_len):
//   parameters, gradients, AdamW m, AdamW v   4 buffers of P floats (core/model.h, optimizer.h)
//   logits                                   N * vocab_size floats
//   layer activations                        per layer and token: residual, attention output,
//                                            two norms, q|k|v, attention, log-sum-exp, gate|up,
//                                            SwiGLU (core/model.h's buffers, times n_layer)
//   head and backward scratch                per token: final norm, projection, dres, dln, datt,
//                                            dqkv, dgu, dact, losses, input ids
//   RoPE tables                              max_seq_len * head_dim floats
//   batch buffers                            train (and eval) inputs/targets, int32
//   sampling                                 vocab_size doubles (train.sample_tokens > 0)
//   checkpoint being resumed                 3 * P floats (the loaded tensors)
//   program                                  a fixed allowance for code, libraries, threads
// With train.device = "cuda" the plan is the host's: the flat buffers, logits, activations and
// RoPE tables are on the GPU, replaced by "host copies (GPU run)" (4 * P floats; P for a bench).
// train.recompute is not credited (the plan is an upper bound then).
// Not counted: the data loader's tokens (they depend on the data, not the recipe) and kernels'
// per-thread tiles (kilobytes).
//
// Every product is overflow-checked: a recipe whose sizes overflow 64-bit integers is refused
// with ConfigError naming the key, e.g. "r.toml: model.vocab_size = 2000000000 with
// train.micro_batch*train.seq_len = 9007199254740992 overflows the logits size". A plan that
// exceeds the available memory is refused with ResourceError, one line: "r.toml: needs 37.2 GiB
// (logits: train.micro_batch*train.seq_len*model.vocab_size*4 B = 31.0 GiB) but 21.5 GiB is
// available (MemAvailable)".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/recipe.h"

namespace ssiat {

struct MemoryItem {
  std::string name;     // "logits"
  std::string formula;  // "train.micro_batch*train.seq_len*model.vocab_size*4 B"
  int64_t bytes = 0;
};

struct MemoryPlan {
  std::vector<MemoryItem> items;
  int64_t total_bytes = 0;
  int64_t num_params = 0;        // P: this rank's (its tp shards; the whole model at tp = 1)
  int64_t activation_bytes = 0;  // the model's activation buffers (layer, head/backward, RoPE, logits)
  const MemoryItem& largest() const;
};

enum class PlanFor {
  kTrain,   // `ssiat train` from step 0
  kResume,  // `ssiat train --resume`: also the loaded checkpoint
  kBench,   // `ssiat bench train-step`: one batch, no eval, no sampling
};

// Parameters of the model a ModelConfig describes (Llama<float>::num_params() with one tp rank),
// checked.
int64_t count_params(const Recipe& recipe);

// The longest sequence the model is run on: train.seq_len, or up to model.max_seq_len when
// sampling after training (prompt + sample_tokens). train() sizes the activations for
// micro_batch * this at start-up, so nothing is allocated later.
int64_t sequence_capacity(const Recipe& recipe, PlanFor use);

// Where a rank stands, for its plan: the writer (global rank 0) reads a whole checkpoint on
// resume; ranks_on_node ranks share this node's memory.
struct RankPlace {
  bool writer = true;
  int64_t ranks_on_node = 1;
};

// One rank's plan under the recipe's layout ([parallel]): its shards of the parameters and
// activations (tp), its moments (ZeRO-1: 1/dp of them). Needs recipe.model and recipe.train to
// be valid (ModelConfig/TrainConfig::validate()).
MemoryPlan plan_memory(const Recipe& recipe, PlanFor use, const RankPlace& place = {});

// Memory this process may still use, and which limit set it: the least of /proc/meminfo
// MemAvailable, the cgroup's memory limit minus its usage (v2 memory.max, v1
// memory.limit_in_bytes) and RLIMIT_AS minus the current address space. nullopt if none of
// them can be read.
struct AvailableMemory {
  int64_t bytes = 0;
  std::string source;  // "MemAvailable", "cgroup memory.max", "RLIMIT_AS"
};
std::optional<AvailableMemory> available_memory();

// Throws ResourceError (the one-line message above) if plan.total_bytes > avail.bytes.
void check_memory(const Recipe& recipe, const MemoryPlan& plan, const AvailableMemory& avail);

// plan_memory() then check_memory() against available_memory() (no check if unknown): the
// one call train() and bench_train_step() make before allocating. With ranks_on_node > 1 the
// node's other ranks' plans (as non-writers) are added, as an item "the node's other ranks".
void require_memory(const Recipe& recipe, PlanFor use, const RankPlace& place = {});

// "37.2 GiB", "512.0 MiB", "3.0 KiB", "17 B".
std::string format_bytes(int64_t bytes);

}  // namespace ssiat
