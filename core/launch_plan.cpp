// Launch plan of a recipe on dp × tp GPUs (contract in core/launch_plan.h). The device buffers
// are core/memory_plan.h's (its plan of the same layout on the host), plus what only a CUDA run
// holds: the bf16 working copy and the GEMM scratch; recompute is credited here.
#include "core/launch_plan.h"

#include <algorithm>
#include <array>
#include <utility>

#include "core/buffer.h"
#include "core/error.h"
#include "core/memory_plan.h"
#include "core/model.h"
#include "distributed/mesh.h"

namespace ssiat {
namespace {

// Bytes of a Buffer of `elements` items of `elem` bytes: rounded up to 64 B (core/buffer.h).
int64_t buffer_bytes(int64_t elements, int64_t elem) {
  const int64_t b = checked_mul(elements, elem, "launch plan buffer");
  return checked_add(b, 63, "launch plan buffer") / 64 * 64;
}

int64_t prod(std::initializer_list<int64_t> xs) {
  int64_t p = 1;
  for (int64_t x : xs) p = checked_mul(p, x, "launch plan size");
  return p;
}

const MemoryItem* find_item(const MemoryPlan& p, std::string_view name) {
  for (const auto& it : p.items)
    if (it.name == name) return &it;
  return nullptr;
}

int64_t item_bytes(const MemoryPlan& p, std::string_view name) {
  const MemoryItem* it = find_item(p, name);
  SSIAT_CHECK(it) << "memory plan has no item '" << name << "'";
  return it->bytes;
}

std::string where(const Recipe& r) { return r.path.empty() ? "recipe" : r.path; }

// The recipe with the layout's [parallel] and recompute, its buffers planned on the host
// (train.device = "cpu": memory_plan then lists the model's and optimizer's buffers, which a
// CUDA run holds on the device instead).
Recipe with_layout(const Recipe& r, const LaunchLayout& lay) {
  Recipe out = r;
  out.parallel.dp = lay.dp;
  out.parallel.tp = lay.tp;
  out.parallel.zero1 = lay.zero1;
  out.train.recompute = lay.recompute;
  return out;
}

distributed::ShardedDims dims_of(const ModelConfig& m) {
  return {m.n_head, m.n_kv_head > 0 ? m.n_kv_head : m.n_head, m.d_ff, m.vocab_size};
}

// How to keep the recipe's global batch (micro_batch × grad_accum × dp sequences) at `dp`
// replicas: "train.grad_accum = G keeps the global batch", or what it becomes.
std::string batch_note(const Recipe& r, int64_t dp) {
  const int64_t global = r.train.grad_accum * r.parallel.dp;
  if (global % dp == 0) return "train.grad_accum = " + std::to_string(global / dp) + " keeps the global batch";
  return "the global batch becomes " + std::to_string(r.train.micro_batch * r.train.grad_accum * dp) + " sequences";
}

}  // namespace

int64_t GpuSpec::usable_bytes() const {
  return static_cast<int64_t>(static_cast<double>(capacity_bytes) * (1.0 - kReserveFraction));
}

GpuSpec gpu_spec(std::string_view key) {
  // Memory: the data sheets' figures in decimal bytes; peak: dense bf16 tensor-core FLOP/s.
  if (key == "h100") return {"h100", "H100 SXM 80 GB", 80'000'000'000, 989.4e12};
  if (key == "h200") return {"h200", "H200 SXM 141 GB", 141'000'000'000, 989.4e12};
  throw ConfigError("--gpu = '" + std::string(key) + "' is not a known GPU (must be h100 or h200)");
}

std::string RankMemory::largest() const {
  const std::array<std::pair<const char*, int64_t>, 7> items = {{{"weights", weights()},
                                                                 {"gradients", gradients},
                                                                 {"moments", moments},
                                                                 {"activations", activations},
                                                                 {"logits", logits},
                                                                 {"scratch", scratch},
                                                                 {"gemm", gemm}}};
  return std::max_element(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.second < b.second; })
      ->first;
}

int64_t RankMemory::bytes_of(std::string_view item) const {
  if (item == "weights") return weights();
  if (item == "gradients") return gradients;
  if (item == "moments") return moments;
  if (item == "activations") return activations;
  if (item == "logits") return logits;
  if (item == "scratch") return scratch;
  if (item == "gemm") return gemm;
  SSIAT_CHECK(false) << "no memory item '" << item << "'";
  return 0;
}

int64_t layer_activation_bytes(const Recipe& r, int64_t slots) {
  const ModelConfig& m = r.model;
  const int64_t tp = std::max<int64_t>(1, r.parallel.tp);
  const int64_t C = m.d_model, L = m.n_layer, HS = m.head_dim();
  const int64_t NH = m.n_head / tp, NKV = (m.n_kv_head > 0 ? m.n_kv_head : m.n_head) / tp, F = m.d_ff / tp;
  const int64_t QKV = (NH + 2 * NKV) * HS;
  const int64_t N = prod({r.train.micro_batch, sequence_capacity(r, PlanFor::kTrain)});
  constexpr int64_t f32 = 4;
  // Kept for every layer (res has one more row: the final norm's input).
  int64_t bytes = buffer_bytes(prod({L + 1, N, C}), f32)  // res
                  + buffer_bytes(prod({L, N, C}), f32)    // resmid
                  + 2 * buffer_bytes(prod({L, N}), f32);  // rstd1, rstd2
  // Kept for `slots` layers.
  bytes += 2 * buffer_bytes(prod({slots, N, C}), f32)        // ln1, ln2
           + buffer_bytes(prod({slots, N, QKV}), f32)         // q|k|v (rotated)
           + buffer_bytes(prod({slots, N, NH, HS}), f32)      // attention output
           + buffer_bytes(prod({slots, N, NH}), f32)          // log-sum-exp
           + buffer_bytes(prod({slots, N, 2, F}), f32)        // gate|up
           + buffer_bytes(prod({slots, N, F}), f32);          // SwiGLU
  return bytes;
}

RankMemory rank_memory(const Recipe& recipe, const LaunchLayout& lay) {
  if (const auto p = distributed::layout_problem(lay.dp, lay.tp, dims_of(recipe.model)))
    throw ConfigError(where(recipe) + ": " + p->message);
  Recipe r = with_layout(recipe, lay);
  const bool bf16 = r.train.precision.value_or(Precision::kBf16) == Precision::kBf16;  // as on CUDA
  Recipe host = r;
  host.train.device = DeviceKind::kCpu;
  const MemoryPlan mp = plan_memory(host, PlanFor::kTrain);

  RankMemory m;
  m.weights_master = item_bytes(mp, "parameters");
  m.weights_working = bf16 ? buffer_bytes(mp.num_params, 2) : 0;
  m.gradients = item_bytes(mp, "gradients");
  m.moments = item_bytes(mp, "AdamW m") + item_bytes(mp, "AdamW v");
  m.activations = lay.recompute ? layer_activation_bytes(r, 1) : item_bytes(mp, "layer activations");
  m.logits = item_bytes(mp, "logits");
  m.scratch = item_bytes(mp, "head and backward scratch") + item_bytes(mp, "RoPE tables");
  if (const MemoryItem* ce = find_item(mp, "vocab-parallel cross-entropy")) m.scratch += ce->bytes;

  // GEMM: the bf16 operands of the widest backward GEMM (Llama::ensure_capacity), and cuBLASLt's workspace.
  const ModelConfig& c = r.model;
  const int64_t tp = lay.tp, C = c.d_model, HS = c.head_dim();
  const int64_t NH = c.n_head / tp, NKV = (c.n_kv_head > 0 ? c.n_kv_head : c.n_head) / tp;
  const int64_t widest = std::max({(NH + 2 * NKV) * HS + C, NH * HS + C, 2 * (c.d_ff / tp) + C, c.vocab_size / tp + C});
  const int64_t N = prod({r.train.micro_batch, sequence_capacity(r, PlanFor::kTrain)});
  m.gemm = (bf16 ? buffer_bytes(prod({N, widest}), 2) : 0) + kCublasWorkspaceBytes;

  for (int64_t b :
       {m.weights_master, m.weights_working, m.gradients, m.moments, m.activations, m.logits, m.scratch, m.gemm})
    m.total = checked_add(m.total, b, "launch plan total");
  return m;
}

LaunchPlan plan_launch(const Recipe& recipe, int64_t gpus, const GpuSpec& gpu) {
  const ParallelConfig& par = recipe.parallel;
  if (gpus < 1) throw ConfigError("--gpus = " + std::to_string(gpus) + " must be >= 1");
  if (gpus % par.tp != 0)
    throw ConfigError(where(recipe) + ": parallel.tp = " + std::to_string(par.tp) + " does not divide --gpus " +
                      std::to_string(gpus) + " (the plan keeps the recipe's tp and takes dp = gpus / tp)");
  LaunchPlan plan;
  plan.recipe_path = where(recipe);
  plan.gpu = gpu;
  plan.gpus = gpus;
  plan.layout = {gpus / par.tp, par.tp, par.zero1, recipe.train.recompute};
  plan.layout_from_recipe = gpus == par.dp * par.tp;
  if (!plan.layout_from_recipe)
    plan.notes.push_back("the recipe's layout is dp " + std::to_string(par.dp) + " x tp " + std::to_string(par.tp) +
                         " = " + std::to_string(par.dp * par.tp) + " ranks; planned for " + std::to_string(gpus) +
                         " GPUs as dp " + std::to_string(plan.layout.dp) + " x tp " + std::to_string(par.tp) + " (" +
                         batch_note(recipe, plan.layout.dp) + ")");
  if (recipe.train.device != DeviceKind::kCuda)
    plan.notes.push_back("planned as train.device = \"cuda\" (the recipe says \"cpu\")");
  if (recipe.train.precision == Precision::kF32)
    plan.notes.push_back("train.precision = \"f32\": no bf16 working copy");
  if (plan.layout.zero1 && plan.layout.dp == 1) plan.notes.push_back("parallel.zero1 has no effect with dp 1");

  plan.params = count_params(recipe);
  plan.params_per_rank = plan_memory([&] {
                           Recipe h = with_layout(recipe, plan.layout);
                           h.train.device = DeviceKind::kCpu;
                           return h;
                         }(), PlanFor::kBench).num_params;
  plan.micro_batch = recipe.train.micro_batch;
  plan.seq_len = recipe.train.seq_len;
  plan.seq_capacity = sequence_capacity(recipe, PlanFor::kTrain);
  LaunchLayout off = plan.layout, on = plan.layout;
  off.recompute = false;
  on.recompute = true;
  plan.without_recompute = rank_memory(recipe, off);
  plan.with_recompute = rank_memory(recipe, on);
  const int64_t usable = gpu.usable_bytes();
  plan.fits = plan.as_set().total <= usable;
  plan.largest = plan.as_set().largest();
  plan.flops_per_token = model_flops_per_token(recipe.model, recipe.train.seq_len);
  plan.tokens_per_s_per_gpu = kPlanMfu * gpu.peak_bf16_flops / plan.flops_per_token;
  if (plan.fits) return plan;

  // Suggestions: the switches first (no more GPUs per replica), then the smallest larger tp.
  const LaunchLayout& cur = plan.layout;
  auto total_of = [&](const LaunchLayout& l) { return rank_memory(recipe, l).total; };
  auto suggest = [&](const LaunchLayout& l, std::string change) {
    const int64_t t = total_of(l);
    if (t > usable) return false;
    plan.suggestions.push_back({l, std::move(change), t});
    return true;
  };
  const bool can_zero1 = !cur.zero1 && cur.dp > 1;
  bool fitted = can_zero1 && suggest({cur.dp, cur.tp, true, cur.recompute}, "parallel.zero1 = true");
  if (!cur.recompute) fitted = suggest({cur.dp, cur.tp, cur.zero1, true}, "train.recompute = true") || fitted;
  if (!fitted && can_zero1 && !cur.recompute)
    suggest({cur.dp, cur.tp, true, true}, "parallel.zero1 = true and train.recompute = true");
  const distributed::ShardedDims dims = dims_of(recipe.model);
  auto smallest_tp = [&](bool zero1, bool recompute, const std::string& also) {
    for (int64_t tp = 2; tp <= gpus; tp *= 2) {
      if (tp <= cur.tp || gpus % tp != 0 || distributed::layout_problem(gpus / tp, tp, dims)) continue;
      const LaunchLayout l{gpus / tp, tp, zero1 && gpus / tp > 1, recompute};
      if (suggest(l, "parallel.tp = " + std::to_string(tp) + also + " (dp " + std::to_string(l.dp) + "; " +
                         batch_note(recipe, l.dp) + ")")) return true;
    }
    return false;
  };
  if (!smallest_tp(cur.zero1, cur.recompute, "") && (!cur.zero1 || !cur.recompute))
    smallest_tp(true, true, " with parallel.zero1 = true and train.recompute = true");
  return plan;
}

}  // namespace ssiat
