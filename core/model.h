// Llama-style decoder-only transformer (Touvron et al. 2023, arXiv:2302.13971) for one rank,
// with Hugging Face LlamaForCausalLM semantics: RMSNorm pre-norm, RoPE (rotate_half), causal
// grouped-query attention, SwiGLU MLP, no biases, optional tied embeddings.
//
// Glossary (docs/ARCHITECTURE.md): B batch, T sequence length, C d_model, NH query heads, NKV
// key/value heads, HS head size (C / NH), F MLP width, V vocabulary, L layers, N = B*T.
//
// Parameters, gradients (and the optimizer's moments, core/optimizer.h) each live in ONE flat
// buffer; views() lists named views with Hugging Face names in buffer order:
//   model.embed_tokens.weight (V, C)
//   model.layers.{l}.input_layernorm.weight (C)
//   model.layers.{l}.self_attn.{q,k,v}_proj.weight (NH*HS, C), (NKV*HS, C), (NKV*HS, C)  adjacent,
//       so they form one (QKV = (NH+2*NKV)*HS, C) matrix and one GEMM
//   model.layers.{l}.self_attn.o_proj.weight (C, NH*HS)
//   model.layers.{l}.post_attention_layernorm.weight (C)
//   model.layers.{l}.mlp.{gate,up}_proj.weight (F, C), (F, C)  adjacent: one (2F, C) GEMM
//   model.layers.{l}.mlp.down_proj.weight (C, F)
//   model.norm.weight (C)
//   lm_head.weight (V, C)       absent when tied (the head then reads the embedding)
//
// Contract: forward() computes the mean cross-entropy over the batch; in Pass::kTrain it also
// leaves d(loss * loss_scale)/dlogits in the logits buffer, and backward() then ACCUMULATES
// (+=) every parameter's gradient into grads(); zero_grads() clears them. Activations are
// sized for at most max_B * max_T tokens (ensure_capacity()).
//
// Device (core/device.h): every buffer lives on the Backend's device and every op goes through
// core/ops.h, so this one definition runs on the CPU and on CUDA. params(), grads() and
// logits() point into device memory; the copy_*() members move them to or from the host.
// With Precision::kBf16 a bf16 working copy of the weights (same offsets) feeds the GEMMs;
// copy_params_from_host() and the optimizer (core/optimizer.h) keep it equal to the masters.
// Recompute (ExecConfig::recompute): only the residual stream and the norms' rstd are kept per
// layer; backward() reruns each layer's forward first (the same ops, so the same bits).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/error.h"
#include "core/device.h"
#include "core/init.h"
#include "core/recipe.h"
#include "core/tensor_parallel.h"
#include "distributed/mesh.h"

namespace ssiat {

class SeedRegistry;

struct ParamView {
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;  // logical (unsharded) shape, row-major
  int64_t offset = 0;          // into the flat buffers, in elements
  int64_t numel = 0;           // elements held by this rank (the local block)
  InitSpec init;
  bool weight_decay = false;   // true for matrices, false for norms
  // Tensor parallelism: how the tensor is split over the tp group, and this rank's block of it
  // (rows and cols of the logical (rows, cols) matrix; a 1-D tensor is (1, n), replicated).
  distributed::ShardKind shard = distributed::ShardKind::kReplicated;
  distributed::Block block{};
};

enum class Pass { kTrain, kEval, kLogits };

// Training FLOPs per token (forward + backward) of the whole (logical) model cfg describes, at
// sequence length T: 6 * matmul params + 12 * L * C * T (attention); the matmul parameters are
// every weight matrix but the embedding, plus the LM head (the embedding's when tied).
// Llama::flops_per_token() is this; core/launch_plan.h uses it without building a model.
double model_flops_per_token(const ModelConfig& cfg, int64_t T);

// Tensors given instead of drawn (Llama::init_weights): by name, the logical tensor's values
// (row-major, numel of its logical shape) and the origin to record.
struct LoadedTensor {
  std::vector<float> data;
  std::string origin;  // "loaded:<sha256 of the file>"
};
using InitOverrides = std::map<std::string, LoadedTensor>;

// One initial tensor's digests (lowercase hex): SHA-256 of its bytes, and its init-leaf hash
// (core/init_leaf.h), the leaf of the init commitment's Merkle tree.
struct InitHash {
  std::string sha256;
  std::string leaf;
  bool operator==(const InitHash&) const = default;
};

// Where and how the model runs (recipe keys train.device, train.precision, train.recompute).
struct ExecConfig {
  DeviceKind device = DeviceKind::kCpu;
  int ordinal = 0;
  Precision precision = Precision::kF32;
  bool recompute = false;
};

template <typename T>
class Llama {
 public:
  // tp: this rank's place in a tensor-parallel group (default: one rank). Every sharded dimension
  // must be a multiple of tp.size (distributed/mesh.h); the model then holds its blocks only.
  explicit Llama(const ModelConfig& cfg, const ExecConfig& exec = {}, const TensorParallel& tp = {});

  const ModelConfig& config() const { return cfg_; }
  const ExecConfig& exec() const { return exec_; }
  const TensorParallel& tensor_parallel() const { return tp_; }
  // The communicator of the tp group for this model's buffers, when it can only be made after
  // the model (NCCL on the model's CUDA stream); same group, size and rank as given.
  void bind_tp_comm(distributed::Communicator* comm) {
    SSIAT_CHECK(comm && comm->size() == tp_.size && comm->rank() == tp_.rank) << "model: tp communicator mismatch";
    tp_.comm = comm;
  }
  // This rank's vocabulary slice [vocab_start(), vocab_start() + local_vocab()) of the logits.
  int64_t vocab_start() const { return v0_; }
  int64_t local_vocab() const { return V_; }
  const Backend& backend() const { return *backend_; }
  const std::vector<ParamView>& views() const { return views_; }
  const ParamView& view(const std::string& name) const;
  int64_t num_params() const { return params_.size(); }
  T* params() { return params_.data(); }
  const T* params() const { return params_.data(); }
  T* grads() { return grads_.data(); }
  const T* grads() const { return grads_.data(); }
  void zero_grads() { grads_.zero(); }
  // The bf16 working copy (nullptr unless Precision::kBf16).
  kernels::bf16* params_lp() { return params_lp_.data(); }

  // Host <-> device copies of the flat buffers (plain copies on the CPU). copy_params_from_host
  // also refreshes the bf16 working copy.
  void copy_params_to_host(T* dst) const;
  void copy_params_from_host(const T* src);
  // Rounds the weights into the bf16 working copy (no-op without one): after the weights were
  // changed in place other than by the optimizer's pass, e.g. a ZeRO-1 all-gather.
  void refresh_working_copy();
  void copy_grads_to_host(T* dst) const;
  // rows [row0, row0 + rows) of the last forward's logits (N, Vl) into dst (rows, Vl): this
  // rank's vocabulary columns (all V with one tp rank).
  void copy_logits_to_host(T* dst, int64_t row0, int64_t rows) const;
  // Draws every tensor from its stream "init/<name>" and records name, shape, dtype, init spec,
  // origin ("regenerated"), trainable flag, the SHA-256 of its initial bytes and its init-leaf
  // hash (core/init_leaf.h) in the registry; returns those hashes in views() order.
  // Under tensor parallelism each rank draws exactly its block (the elements of the logical
  // tensor it holds, at their logical indices: docs/init.md), and tp rank 0 also draws each
  // whole tensor, one at a time, to record the logical tensor's hash.
  // `loaded` (recipe init.from, one tp rank only): tensors taken from a weight file instead,
  // recorded with their origin ("loaded:<digest>"), their hashes over the loaded bytes.
  std::vector<InitHash> init_weights(SeedRegistry& reg, const InitOverrides* loaded = nullptr);

  // Training FLOPs per token of the whole (logical) model: model_flops_per_token(config(), T_).
  double flops_per_token(int64_t T_) const { return model_flops_per_token(cfg_, T_); }

  void ensure_capacity(int64_t B, int64_t T_);

  // inputs, targets (B, T). Returns the mean loss over the B*T targets (0 for Pass::kLogits).
  // kTrain: logits are replaced by loss_scale * dmean_loss/dlogits for backward().
  double forward(const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T_, Pass pass,
                 T loss_scale = T(1));
  // Accumulates gradients for the last kTrain forward.
  void backward();

  // Logits of the last forward (B*T, V), in device memory; valid after Pass::kEval or kLogits.
  const T* logits() const { return logits_.data(); }

 private:
  struct Layer {
    int64_t ln1, qkv, o, ln2, gu, down;  // offsets of the weights in the flat buffers
  };
  void layout();
  void layer_forward(int64_t l);
  // The bf16 copy of the weight at `offset` (nullptr with f32 operands).
  const kernels::bf16* lp(int64_t offset) const { return params_lp_.data() ? params_lp_.data() + offset : nullptr; }
  // Layer slot of the per-layer activations: l, or 0 when they are recomputed.
  int64_t slot(int64_t l) const { return exec_.recompute ? 0 : l; }

  ModelConfig cfg_;
  ExecConfig exec_;
  TensorParallel tp_;
  std::unique_ptr<Backend> backend_;
  // Local (this tp rank's) dimensions: NH_ = n_head / tp, NKV_, F_ and V_ likewise; HS_ and C_
  // are whole; QKV_ = (NH_ + 2 NKV_) HS_. v0_: the first vocabulary id of this rank's slice.
  int64_t C_, NH_, NKV_, HS_, F_, V_, L_, QKV_;
  int64_t v0_ = 0;
  std::vector<ParamView> views_;
  std::vector<Layer> layers_;
  int64_t wte_ = 0, norm_ = 0, lm_head_ = 0;
  Buffer<T> params_, grads_;
  Buffer<kernels::bf16> params_lp_;  // bf16 working copy (Precision::kBf16 only)

  // Activations for cap_ = max tokens; per layer l, offsets l * (N * width).
  int64_t cap_B_ = 0, cap_T_ = 0;
  int64_t cur_B_ = 0, cur_T_ = 0;
  Buffer<int32_t> inputs_;   // (N) the last forward's inputs, for the embedding backward
  Buffer<int32_t> targets_;  // (N)
  Buffer<T> rope_cos_, rope_sin_;               // (maxT, HS/2)
  Buffer<T> res_;                               // (L+1, N, C) residual stream at each layer input
  Buffer<T> resmid_;                            // (L, N, C) after the attention block
  // Per-layer activations below are (L, ...), or (1, ...) under recompute (slot()).
  Buffer<T> ln1_, ln2_;                         // (L, N, C)
  Buffer<T> rstd1_, rstd2_;                     // (L, N)
  Buffer<T> qkv_;                               // (L, N, QKV), q and k rotated in place
  Buffer<T> att_;                               // (L, N, NH*HS)
  Buffer<T> lse_;                               // (L, B, NH, T)
  Buffer<T> gu_;                                // (L, N, 2F)
  Buffer<T> act_;                               // (L, N, F)
  Buffer<T> lnf_, rstdf_;                       // (N, C), (N)
  Buffer<T> logits_;                            // (N, V), dlogits after a kTrain forward
  Buffer<T> losses_;                            // (N)
  Buffer<T> ce_rowmax_, ce_gathered_, ce_sums_;  // (N), (tp, N), (2, N): vocab-parallel CE
  Buffer<T> proj_;                              // (N, C) scratch
  Buffer<T> dres_, dln_, datt_;                 // (N, C) backward scratch
  Buffer<T> dqkv_, dgu_, dact_;                 // (N, QKV), (N, 2F), (N, F)
};

}  // namespace ssiat
