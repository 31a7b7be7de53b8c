// Launch plan: from a recipe alone, what one rank of a GPU launch holds on its device under a
// dp × tp layout, whether that fits a given GPU, and the training FLOPs per token (`ssiat plan`).
// Nothing is allocated; no GPU is needed.
//
// Contract. P = the model's parameters (count_params, core/memory_plan.h); P_r = the parameters
// one rank holds (its tp shards: heads, kv heads, MLP width and vocabulary split by tp, norms
// whole; exactly Llama<float>::num_params() on that rank). N = train.micro_batch * T tokens,
// T = sequence_capacity(recipe, PlanFor::kTrain) (train.seq_len unless sampling after training
// needs longer), the activations' capacity as train() sizes them. Every buffer is rounded up to
// 64 B as core/buffer.h allocates it. Per rank, on the device, as OUR trainer holds them with
// train.device = "cuda" (core/model.h, core/optimizer.h, core/data_parallel.h, core/device.cpp):
//   weights      f32 master P_r * 4 B, plus the bf16 working copy P_r * 2 B when the effective
//                train.precision is bf16 (the default on CUDA)
//   gradients    f32, P_r * 4 B (every rank holds the whole flat buffer, also under ZeRO-1)
//   moments      AdamW m and v, f32: 2 * P_r * 4 B; ZeRO-1 (parallel.zero1, dp > 1) keeps this
//                rank's slice of every 2^24-element bucket: (P_r / dp + P_r / 2^24 + 1) each
//   activations  the layer activations kept for backward (below), with and without recompute
//   logits       N * V / tp * 4 B (f32; dlogits overwrite them in place)
//   head, backward scratch and tables  the final norm, the loss, the backward scratch (dres, dln,
//                datt, dqkv, dgu, dact), RoPE tables, the vocab-parallel cross-entropy buffers
//   GEMM scratch the bf16 operand scratch N * max(QKV + C, NH_r*HS + C, 2 F_r + C, V_r + C) * 2 B
//                (bf16 only) and the cuBLASLt workspace, 32 MiB (kernels/cuda/matmul.cu)
// The parameters, gradients, moments, logits, scratch and the no-recompute activations are
// core/memory_plan.h's items for the same layout (plan_memory of the recipe with
// train.device = "cpu": the same buffers, on the host there), so this plan and the trainer's own
// host plan agree where they overlap; tests/core/test_launch_plan.cpp checks both against a hand
// count. memory_plan never credits recompute; this plan does, from the same buffer list.
//
// Layer activations (per rank; f32; C = d_model, HS = head_dim, NH_r = n_head/tp, NKV_r =
// n_kv_head/tp, F_r = d_ff/tp, QKV = (NH_r + 2 NKV_r) HS), the form of Korthikanti et al. 2022,
// "Reducing Activation Recomputation in Large Transformer Models", arXiv:2205.05198, §4: a part
// every tp rank keeps whole (their sbh·10, the layer inputs and norms) plus a part tp divides
// (their sbh·24/t). Ours differs in the terms: f32 storage, no dropout masks, and a fused causal
// attention that keeps one log-sum-exp per head and token instead of the T x T scores (no
// 5as/h term):
//   no recompute: N * L * (4 C + 2 + QKV + NH_r HS + NH_r + 3 F_r) * 4 B + N * C * 4 B
//                 (res is (L+1, N, C); resmid, ln1, ln2 (L, N, C); rstd1, rstd2 (L, N); qkv, att,
//                 lse, gate|up, SwiGLU (L, N, ·))
//   recompute:    res, resmid, rstd1, rstd2 for every layer, the rest for one layer only (the
//                 layer being recomputed; core/model.h ExecConfig::recompute):
//                 N * L * (2 C + 2) * 4 B + N * C * 4 B + N * (2 C + QKV + NH_r HS + NH_r + 3 F_r) * 4 B
//                 — Korthikanti's "full recomputation" keeps the layer input only; we keep the
//                 mid-layer residual and the norms' rstd too, which makes the rerun bit-identical.
// FLOPs per token: model_flops_per_token (core/model.h; Llama::flops_per_token is the same
// function): 6 × matmul parameters (Kaplan et al. 2020 arXiv:2001.08361 §2.1; Hoffmann et al.
// 2022 arXiv:2203.15556) plus 12 L C T for attention; the whole model's, per token, with T =
// train.seq_len. Recompute adds one more forward (≈ 2 × matmul params) that is not counted, as
// MFU conventionally does not.
// Throughput estimate: tokens/s per GPU = 0.40 × peak / FLOPs per token, peak = the dense bf16
// tensor-core figure (989.4 TFLOP/s for H100 SXM and H200, NVIDIA data sheets, the same table as
// kernels/cuda/runtime.cu's MFU).
//
// GPUs (capacity = the data sheet's memory, read in decimal bytes): h100 = H100 SXM 80 GB
// (80e9 B = 74.5 GiB), h200 = H200 SXM 141 GB (141e9 B = 131.3 GiB). Both report somewhat more to
// the driver (about 79.6 GiB and 139 GiB), left as headroom. A layout FITS when its total is
// at most the usable memory = capacity × (1 − kReserveFraction), the reserve (5 %: 3.7 GiB on H100,
// 6.6 GiB on H200) standing for what the plan does not count: the CUDA context (~0.5 GiB), NCCL's
// buffers for the dp and tp communicators, the ops' small reduction scratch, the optimizer's
// per-view flags, and allocator slack.
//
// Layout. gpus = dp × tp: tp comes from the recipe ([parallel] tp); when gpus is not the recipe's
// dp × tp the plan takes dp = gpus / tp and says so in a note; a tp that does not divide gpus is
// a ConfigError naming the recipe and parallel.tp. When a layout does not fit, the plan names
// the largest item and suggests the smallest change that fits, if any: parallel.zero1 = true,
// train.recompute = true, both, or the smallest larger tp (a power of two dividing gpus and, per
// distributed/mesh.h layout_problem, n_head, n_kv_head, d_ff and vocab_size) with the recipe's
// switches, else with both switches on.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/recipe.h"

namespace ssiat {

inline constexpr double kReserveFraction = 0.05;
inline constexpr double kPlanMfu = 0.40;
inline constexpr int64_t kCublasWorkspaceBytes = int64_t{32} << 20;  // kernels/cuda/matmul.cu

struct GpuSpec {
  std::string key;         // "h100", the --gpu value
  std::string name;        // "H100 SXM 80 GB"
  int64_t capacity_bytes;  // 80'000'000'000
  double peak_bf16_flops;  // dense, per second
  int64_t usable_bytes() const;  // capacity × (1 − kReserveFraction), rounded down
};

// The GPU named by `key` ("h100" or "h200"); ConfigError "--gpu = 'a100' is not a known GPU (must
// be h100 or h200)" otherwise.
GpuSpec gpu_spec(std::string_view key);

struct LaunchLayout {
  int64_t dp = 1, tp = 1;
  bool zero1 = false, recompute = false;
  bool operator==(const LaunchLayout&) const = default;
};

// One rank's device memory, bytes (the items in the contract above).
struct RankMemory {
  int64_t weights_master = 0;   // f32
  int64_t weights_working = 0;  // bf16 copy (0 with f32 precision)
  int64_t gradients = 0;
  int64_t moments = 0;          // m + v
  int64_t activations = 0;      // layer activations for the layout's recompute setting
  int64_t logits = 0;
  int64_t scratch = 0;          // head, backward scratch, RoPE tables, vocab-parallel CE
  int64_t gemm = 0;             // bf16 operand scratch + cuBLASLt workspace
  int64_t total = 0;
  int64_t weights() const { return weights_master + weights_working; }
  // The largest item and its name: "weights", "gradients", "moments", "activations", "logits",
  // "scratch" or "gemm".
  std::string largest() const;
  int64_t bytes_of(std::string_view item) const;
};

// Bytes of the layer activations one rank keeps with `slots` layers' worth of the recomputable
// buffers (ln1, ln2, qkv, att, lse, gate|up, SwiGLU): n_layer without recompute, 1 with it; res,
// resmid and the rstd always for every layer. Uses the recipe's [parallel] tp and
// sequence_capacity(recipe, PlanFor::kTrain).
int64_t layer_activation_bytes(const Recipe& recipe, int64_t slots);

// One rank's memory under `layout` (the recipe's model and train sections; its [parallel] and
// train.recompute are replaced by the layout's). Throws ConfigError for a layout the mesh refuses.
RankMemory rank_memory(const Recipe& recipe, const LaunchLayout& layout);

struct LaunchSuggestion {
  LaunchLayout layout;
  std::string change;  // "parallel.tp = 4 (dp 2; train.grad_accum = 2 keeps the global batch)"
  int64_t total_bytes = 0;
};

struct LaunchPlan {
  std::string recipe_path;
  GpuSpec gpu;
  int64_t gpus = 0;
  LaunchLayout layout;                  // as planned (dp = gpus / tp)
  bool layout_from_recipe = true;       // gpus == the recipe's dp × tp
  int64_t params = 0, params_per_rank = 0;
  int64_t micro_batch = 0, seq_len = 0;  // train.micro_batch, train.seq_len (FLOPs use seq_len)
  int64_t seq_capacity = 0;              // T the activations are sized for (sequence_capacity)
  RankMemory without_recompute, with_recompute;
  const RankMemory& as_set() const { return layout.recompute ? with_recompute : without_recompute; }
  bool fits = false;                    // as_set().total <= gpu.usable_bytes()
  std::string largest;                  // as_set().largest()
  double flops_per_token = 0;
  double tokens_per_s_per_gpu = 0;      // at kPlanMfu
  std::vector<LaunchSuggestion> suggestions;  // empty when it fits
  std::vector<std::string> notes;       // layout taken from --gpus, device/precision assumed, ...
};

// The plan for `gpus` GPUs of kind `gpu` (the contract above). The recipe must be valid
// (load_recipe). ConfigError, one line naming the recipe and the key, for gpus < 1 or a tp that
// does not divide gpus.
LaunchPlan plan_launch(const Recipe& recipe, int64_t gpus, const GpuSpec& gpu);

}  // namespace ssiat
