// Llama decoder forward/backward over flat buffers (contract in core/model.h).
#include "core/model.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/error.h"
#include "core/hash.h"
#include "core/init_leaf.h"
#include "core/ops.h"
#include "core/seed_registry.h"
#include "kernels/rope.h"

namespace ssiat {

template <typename T>
Llama<T>::Llama(const ModelConfig& cfg, const ExecConfig& exec, const TensorParallel& tp)
    : cfg_(cfg), exec_(exec), tp_(tp) {
  cfg_.validate();
  SSIAT_CHECK(tp.size >= 1 && tp.rank >= 0 && tp.rank < tp.size && (tp.size == 1 || tp.comm))
      << "model: bad tensor-parallel rank " << tp.rank << " of " << tp.size;
  const int64_t NKV = cfg_.n_kv_head > 0 ? cfg_.n_kv_head : cfg_.n_head;
  if (const auto p = distributed::layout_problem(1, tp.size, {cfg_.n_head, NKV, cfg_.d_ff, cfg_.vocab_size}))
    throw ConfigError(p->message);
  backend_ = Backend::create(exec.device, exec.ordinal, exec.precision);
  C_ = cfg_.d_model;
  HS_ = C_ / cfg_.n_head;
  NH_ = cfg_.n_head / tp.size;
  NKV_ = NKV / tp.size;
  F_ = cfg_.d_ff / tp.size;
  V_ = cfg_.vocab_size / tp.size;
  v0_ = V_ * tp.rank;
  L_ = cfg_.n_layer;
  QKV_ = checked_mul(checked_add(NH_, checked_mul(2, NKV_, "model.n_kv_head"), "model.n_head"), HS_, "model.d_model");
  layout();
}

template <typename T>
void Llama<T>::layout() {
  int64_t off = 0;
  const double std = cfg_.init_std;
  // Output projections into the residual stream are scaled by 1/sqrt(2L) (GPT-2, Megatron).
  const double std_out = cfg_.init_std / std::sqrt(2.0 * static_cast<double>(L_));
  // Shard specs are decided here, once (DESIGN "Parallelism"): column-parallel (rows split) for
  // the embedding, q/k/v, gate/up and the LM head; row-parallel (cols split) for o_proj and
  // down_proj; norms replicated. Each view holds this rank's block, in the one-rank layout with
  // the local dimensions, so the local [q|k|v] and [gate|up] stay adjacent.
  const distributed::Layout mesh(tp_.size, 1, tp_.size,
                                 {cfg_.n_head, NKV_ * tp_.size, cfg_.d_ff, cfg_.vocab_size});
  using distributed::ShardKind;
  // Sizes are checked (core/buffer.h): a shape whose element count overflows throws naming the tensor.
  auto add = [&](const std::string& name, std::vector<int64_t> shape, ShardKind kind, InitSpec init, bool decay) {
    int64_t n = 1;
    for (int64_t d : shape) n = checked_mul(n, d, name);
    const int64_t rows = shape.size() == 2 ? shape[0] : 1, cols = shape.back();
    const distributed::Block block = mesh.block(rows, cols, kind, tp_.rank);
    const int64_t local = block.rows.length * block.cols.length;
    views_.push_back(ParamView{name, std::move(shape), off, local, init, decay, kind, block});
    off = checked_add(off, local, "model parameters");
    return off - local;
  };
  const int64_t NHg = cfg_.n_head, NKVg = NKV_ * tp_.size, Fg = cfg_.d_ff, Vg = cfg_.vocab_size;
  wte_ = add("model.embed_tokens.weight", {Vg, C_}, ShardKind::kColumn, InitSpec::normal(0.0, std), true);
  for (int64_t l = 0; l < L_; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer ly;
    ly.ln1 = add(p + "input_layernorm.weight", {C_}, ShardKind::kReplicated, InitSpec::ones(), false);
    ly.qkv = add(p + "self_attn.q_proj.weight", {NHg * HS_, C_}, ShardKind::kColumn, InitSpec::normal(0.0, std), true);
    add(p + "self_attn.k_proj.weight", {NKVg * HS_, C_}, ShardKind::kColumn, InitSpec::normal(0.0, std), true);
    add(p + "self_attn.v_proj.weight", {NKVg * HS_, C_}, ShardKind::kColumn, InitSpec::normal(0.0, std), true);
    ly.o = add(p + "self_attn.o_proj.weight", {C_, NHg * HS_}, ShardKind::kRow, InitSpec::normal(0.0, std_out), true);
    ly.ln2 = add(p + "post_attention_layernorm.weight", {C_}, ShardKind::kReplicated, InitSpec::ones(), false);
    ly.gu = add(p + "mlp.gate_proj.weight", {Fg, C_}, ShardKind::kColumn, InitSpec::normal(0.0, std), true);
    add(p + "mlp.up_proj.weight", {Fg, C_}, ShardKind::kColumn, InitSpec::normal(0.0, std), true);
    ly.down = add(p + "mlp.down_proj.weight", {C_, Fg}, ShardKind::kRow, InitSpec::normal(0.0, std_out), true);
    layers_.push_back(ly);
  }
  norm_ = add("model.norm.weight", {C_}, ShardKind::kReplicated, InitSpec::ones(), false);
  lm_head_ = cfg_.tied_embeddings
                 ? wte_
                 : add("lm_head.weight", {Vg, C_}, ShardKind::kColumn, InitSpec::normal(0.0, std), true);
  const Device& dev = backend_->device();
  params_.resize(off, dev);
  grads_.resize(off, dev);
  if (exec_.precision == Precision::kBf16) {
    SSIAT_CHECK((std::is_same_v<T, float>)) << "bf16 working copies are kept for f32 masters only";
    params_lp_.resize(off, dev);
  }
}

template <typename T>
void Llama<T>::refresh_working_copy() {
  if constexpr (std::is_same_v<T, float>)
    if (params_lp_.data()) ops::cast_to_bf16(*backend_, params_lp_.data(), params_.data(), params_.size());
}

template <typename T>
void Llama<T>::copy_params_to_host(T* dst) const {
  ops::download(*backend_, dst, params_.data(), params_.size());
}

template <typename T>
void Llama<T>::copy_params_from_host(const T* src) {
  ops::upload(*backend_, params_.data(), src, params_.size());
  refresh_working_copy();
}

template <typename T>
void Llama<T>::copy_grads_to_host(T* dst) const {
  ops::download(*backend_, dst, grads_.data(), grads_.size());
}

template <typename T>
void Llama<T>::copy_logits_to_host(T* dst, int64_t row0, int64_t rows) const {
  SSIAT_CHECK(row0 >= 0 && rows >= 0 && row0 + rows <= cur_B_ * cur_T_)
      << "logits rows [" << row0 << ", " << row0 + rows << ") outside the last forward's " << cur_B_ * cur_T_;
  ops::download(*backend_, dst, logits_.data() + row0 * V_, rows * V_);
}

template <typename T>
const ParamView& Llama<T>::view(const std::string& name) const {
  for (const auto& v : views_)
    if (v.name == name) return v;
  throw Error("model has no parameter '" + name + "'");
}

template <typename T>
std::vector<InitHash> Llama<T>::init_weights(SeedRegistry& reg, const InitOverrides* loaded) {
  SSIAT_CHECK(!loaded || loaded->empty() || !tp_.active()) << "init from a weight file under tensor parallelism";
  std::vector<InitHash> hashes;
  // Drawn on the host (the generator is the CPU's, docs/init.md) and uploaded to a device.
  Buffer<T> staging;
  T* base = params_.data();
  if (backend_->kind() != DeviceKind::kCpu) {
    staging.resize(params_.size());
    base = staging.data();
  }
  std::vector<T> whole;  // tp rank 0 under tensor parallelism: one logical tensor at a time
  for (const auto& v : views_) {
    const std::string stream = "init/" + v.name;
    T* dst = base + v.offset;
    const bool deterministic = v.init.kind == InitKind::kZeros || v.init.kind == InitKind::kOnes;
    const PhiloxKey key = deterministic ? PhiloxKey{} : reg.stream_key(stream);  // no stream for constants
    // This rank's block at its logical element indices: rows [r0, r1) x cols [c0, c1) of the
    // (rows, cols) tensor; element (r, c) is stream index r * cols + c.
    const int64_t cols = v.shape.back();
    const distributed::Block& b = v.block;
    if (b.cols.length == cols) {
      init_fill(dst, static_cast<uint64_t>(b.rows.start * cols), v.numel, v.init, key);
    } else {
      for (int64_t r = 0; r < b.rows.length; r++)
        init_fill(dst + r * b.cols.length, static_cast<uint64_t>((b.rows.start + r) * cols + b.cols.start),
                  b.cols.length, v.init, key);
    }
    std::string origin = "regenerated";
    if (loaded) {
      if (const auto it = loaded->find(v.name); it != loaded->end()) {
        SSIAT_CHECK(static_cast<int64_t>(it->second.data.size()) == v.numel) << "loaded tensor " << v.name << ": wrong size";
        for (int64_t i = 0; i < v.numel; i++) dst[i] = static_cast<T>(it->second.data[i]);
        origin = it->second.origin;
      }
    }
    const T* hashed = dst;
    int64_t hashed_n = v.numel;
    if (tp_.active() && tp_.rank == 0 && v.shard != distributed::ShardKind::kReplicated) {
      hashed_n = 1;
      for (int64_t d : v.shape) hashed_n *= d;
      whole.resize(static_cast<size_t>(hashed_n));
      init_fill(whole.data(), 0, hashed_n, v.init, key);
      hashed = whole.data();
    }
    const char* dtype = sizeof(T) == 4 ? "float32" : "float64";
    const size_t nbytes = static_cast<size_t>(hashed_n) * sizeof(T);
    const InitHash& h = hashes.emplace_back(
        InitHash{sha256_hex(hashed, nbytes), digest_hex(init_leaf_hash(v.name, dtype, v.shape, v.init, hashed, nbytes))});
    nlohmann::json rec = {{"type", "tensor"},
                          {"name", v.name},
                          {"shape", v.shape},
                          {"dtype", dtype},
                          {"init", v.init.to_json()},
                          {"origin", origin},
                          {"trainable", true},
                          {"sha256", h.sha256},
                          {"leaf", h.leaf}};
    if (v.init.kind != InitKind::kZeros && v.init.kind != InitKind::kOnes && origin == "regenerated") rec["stream"] = stream;
    reg.record(std::move(rec));
  }
  if (staging.data()) ops::upload(*backend_, params_.data(), staging.data(), params_.size());
  refresh_working_copy();
  return hashes;
}

double model_flops_per_token(const ModelConfig& cfg, int64_t T) {
  const double C = static_cast<double>(cfg.d_model), L = static_cast<double>(cfg.n_layer);
  const double HS = static_cast<double>(cfg.head_dim()), NH = static_cast<double>(cfg.n_head);
  const double NKV = static_cast<double>(cfg.n_kv_head > 0 ? cfg.n_kv_head : cfg.n_head);
  const double F = static_cast<double>(cfg.d_ff), V = static_cast<double>(cfg.vocab_size);
  // per layer: q|k|v (NH + 2 NKV) HS x C, o_proj C x NH HS, gate|up 2 F x C, down C x F; LM head V x C
  const double matmul = L * C * ((NH + 2.0 * NKV) * HS + NH * HS + 3.0 * F) + V * C;
  return 6.0 * matmul + 12.0 * L * C * static_cast<double>(T);
}

template <typename T>
void Llama<T>::ensure_capacity(int64_t B, int64_t T_) {
  SSIAT_CHECK(B >= 1 && T_ >= 1 && T_ <= cfg_.max_seq_len)
      << "batch " << B << "x" << T_ << " exceeds model.max_seq_len " << cfg_.max_seq_len;
  if (B <= cap_B_ && T_ <= cap_T_) return;
  const int64_t cap_B = std::max(B, cap_B_), cap_T = std::max(T_, cap_T_);
  // Every size is a checked product (core/memory_plan.cpp computes the same sizes from a recipe
  // and refuses one that does not fit before the model is built).
  auto n = [](std::initializer_list<int64_t> dims) {
    int64_t r = 1;
    for (int64_t d : dims) r = checked_mul(r, d, "model activations");
    return r;
  };
  const Device& dev = backend_->device();
  const int64_t N = n({cap_B, cap_T}), L = L_, LA = exec_.recompute ? 1 : L_;
  inputs_.resize(N, dev);
  targets_.resize(N, dev);
  // RoPE tables: computed on the host by the CPU kernel, then uploaded (the same angles everywhere).
  const int64_t rope_n = n({cfg_.max_seq_len, HS_ / 2});
  Buffer<T> host_cos(rope_n), host_sin(rope_n);
  kernels::cpu::rope_tables(host_cos.data(), host_sin.data(), cfg_.max_seq_len, HS_, cfg_.rope_theta);
  rope_cos_.resize(rope_n, dev);
  rope_sin_.resize(rope_n, dev);
  ops::upload(*backend_, rope_cos_.data(), host_cos.data(), rope_n);
  ops::upload(*backend_, rope_sin_.data(), host_sin.data(), rope_n);
  res_.resize(n({L + 1, N, C_}), dev);
  resmid_.resize(n({L, N, C_}), dev);
  ln1_.resize(n({LA, N, C_}), dev);
  ln2_.resize(n({LA, N, C_}), dev);
  rstd1_.resize(n({L, N}), dev);
  rstd2_.resize(n({L, N}), dev);
  qkv_.resize(n({LA, N, QKV_}), dev);
  att_.resize(n({LA, N, NH_, HS_}), dev);
  lse_.resize(n({LA, N, NH_}), dev);
  gu_.resize(n({LA, N, 2, F_}), dev);
  act_.resize(n({LA, N, F_}), dev);
  lnf_.resize(n({N, C_}), dev);
  rstdf_.resize(N, dev);
  logits_.resize(n({N, V_}), dev);
  losses_.resize(N, dev);
  if (tp_.active()) {
    ce_rowmax_.resize(N, dev);
    ce_gathered_.resize(n({tp_.size, N}), dev);
    ce_sums_.resize(n({2, N}), dev);
  }
  proj_.resize(n({N, C_}), dev);
  dres_.resize(n({N, C_}), dev);
  dln_.resize(n({N, C_}), dev);
  datt_.resize(n({N, NH_, HS_}), dev);
  dqkv_.resize(n({N, QKV_}), dev);
  dgu_.resize(n({N, 2, F_}), dev);
  dact_.resize(n({N, F_}), dev);
  // CUDA: the GEMMs' bf16 operand scratch (inp and dout of the widest backward GEMM) and the
  // ops' scratch (reductions over the parameters, embedding and RMSNorm backward).
  const int64_t widest = std::max({QKV_ + C_, NH_ * HS_ + C_, 2 * F_ + C_, V_ + C_});
  backend_->reserve(exec_.precision == Precision::kBf16 ? n({N, widest}) : 0,
                    ops::scratch_bytes(*backend_, std::max(params_.size(), N), N, C_, V_));
  cap_B_ = cap_B;
  cap_T_ = cap_T;
}

// One decoder layer's forward for the current batch (reads res_[l], writes resmid_[l],
// res_[l+1] and the layer's activations in slot(l)).
template <typename T>
void Llama<T>::layer_forward(int64_t l) {
  const Backend& be = *backend_;
  const int64_t B = cur_B_, T_ = cur_T_, N = B * T_, C = C_, s = slot(l);
  const T eps = static_cast<T>(cfg_.norm_eps);
  const T* w = params_.data();
  const Layer& ly = layers_[l];
  const T* res = res_.data() + l * N * C;         // (N, C) layer input
  T* resmid = resmid_.data() + l * N * C;         // (N, C) after the attention block
  T* next = res_.data() + (l + 1) * N * C;        // (N, C) layer output
  T* ln1 = ln1_.data() + s * N * C;               // (N, C)
  T* ln2 = ln2_.data() + s * N * C;               // (N, C)
  T* qkv = qkv_.data() + s * N * QKV_;            // (N, QKV)
  T* att = att_.data() + s * N * NH_ * HS_;       // (N, NH*HS)
  T* lse = lse_.data() + s * N * NH_;             // (B, NH, T)
  T* gu = gu_.data() + s * N * 2 * F_;            // (N, 2F)
  T* act = act_.data() + s * N * F_;              // (N, F)
  // attention block: resmid = res + o_proj(attn(rope(qkv_proj(norm(res)))))
  // (tensor parallel: this rank's heads and MLP features; q/k/v and gate/up column-parallel,
  // o_proj and down_proj row-parallel, core/tensor_parallel.h)
  ops::rmsnorm_forward(be, ln1, rstd1_.data() + l * N, res, w + ly.ln1, N, C, eps);
  tp::column_forward(be, tp_, qkv, ln1, w + ly.qkv, lp(ly.qkv), N, C, QKV_);
  ops::rope_forward(be, qkv, rope_cos_.data(), rope_sin_.data(), B, T_, NH_, NKV_, HS_);
  ops::attention_forward(be, att, lse, qkv, B, T_, NH_, NKV_, HS_);
  tp::row_forward(be, tp_, proj_.data(), att, w + ly.o, lp(ly.o), N, NH_ * HS_, C);
  // MLP block: next = resmid + down(silu(gate(x)) * up(x)), x = norm(resmid)
  ops::rmsnorm_residual_forward(be, resmid, ln2, rstd2_.data() + l * N, res, proj_.data(), w + ly.ln2, N, C, eps);
  tp::column_forward(be, tp_, gu, ln2, w + ly.gu, lp(ly.gu), N, C, 2 * F_);
  ops::swiglu_forward(be, act, gu, N, F_);
  tp::row_forward(be, tp_, proj_.data(), act, w + ly.down, lp(ly.down), N, F_, C);
  ops::add(be, next, resmid, proj_.data(), N * C);
}

template <typename T>
double Llama<T>::forward(const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T_, Pass pass,
                         T loss_scale) {
  ensure_capacity(B, T_);
  cur_B_ = B;
  cur_T_ = T_;
  const Backend& be = *backend_;
  const int64_t N = B * T_, C = C_;
  const T eps = static_cast<T>(cfg_.norm_eps);
  const T* w = params_.data();
  ops::upload(be, inputs_.data(), inputs, N);
  if (pass != Pass::kLogits) ops::upload(be, targets_.data(), targets, N);

  tp::embedding_forward(be, tp_, res_.data(), inputs_.data(), w + wte_, N, C, V_, v0_);
  for (int64_t l = 0; l < L_; l++) layer_forward(l);
  ops::rmsnorm_forward(be, lnf_.data(), rstdf_.data(), res_.data() + L_ * N * C, w + norm_, N, C, eps);
  tp::column_forward(be, tp_, logits_.data(), lnf_.data(), w + lm_head_, lp(lm_head_), N, C, V_);
  if (pass == Pass::kLogits) return 0.0;
  tp::cross_entropy(be, tp_, losses_.data(), logits_.data(), targets_.data(), N, V_, v0_, pass == Pass::kTrain,
                    loss_scale / static_cast<T>(N), {ce_rowmax_.data(), ce_gathered_.data(), ce_sums_.data()});
  return ops::sum(be, losses_.data(), N) / static_cast<double>(N);
}

template <typename T>
void Llama<T>::backward() {
  const int64_t B = cur_B_, T_ = cur_T_, N = B * T_, C = C_;
  SSIAT_CHECK(N > 0) << "backward() without a training forward()";
  const Backend& be = *backend_;
  const T* w = params_.data();
  T* g = grads_.data();
  T* dres = dres_.data();
  // LM head and final norm; dres accumulates d(residual stream) from here down.
  tp::column_backward(be, tp_, dln_.data(), g + lm_head_, logits_.data(), lnf_.data(), w + lm_head_, lp(lm_head_), N,
                      C, V_);
  ops::zero(be, dres, N * C);
  ops::rmsnorm_backward(be, dres, g + norm_, dln_.data(), res_.data() + L_ * N * C, w + norm_, rstdf_.data(), N, C);
  for (int64_t l = L_ - 1; l >= 0; l--) {
    if (exec_.recompute && l != L_ - 1) layer_forward(l);  // the last layer's slot is still current
    const Layer& ly = layers_[l];
    const int64_t s = slot(l);
    const T* res = res_.data() + l * N * C;
    const T* resmid = resmid_.data() + l * N * C;
    const T* qkv = qkv_.data() + s * N * QKV_;
    const T* att = att_.data() + s * N * NH_ * HS_;
    // MLP block (dres is d res_next; the residual path passes it through unchanged)
    tp::row_backward(be, tp_, dact_.data(), g + ly.down, dres, act_.data() + s * N * F_, w + ly.down, lp(ly.down), N,
                     F_, C);
    ops::swiglu_backward(be, dgu_.data(), dact_.data(), gu_.data() + s * N * 2 * F_, N, F_);
    tp::column_backward(be, tp_, dln_.data(), g + ly.gu, dgu_.data(), ln2_.data() + s * N * C, w + ly.gu, lp(ly.gu),
                        N, C, 2 * F_);
    ops::rmsnorm_backward(be, dres, g + ly.ln2, dln_.data(), resmid, w + ly.ln2, rstd2_.data() + l * N, N, C);
    // attention block (dres is now d resmid)
    tp::row_backward(be, tp_, datt_.data(), g + ly.o, dres, att, w + ly.o, lp(ly.o), N, NH_ * HS_, C);
    ops::attention_backward(be, dqkv_.data(), datt_.data(), att, lse_.data() + s * N * NH_, qkv, B, T_, NH_, NKV_, HS_);
    ops::rope_backward(be, dqkv_.data(), rope_cos_.data(), rope_sin_.data(), B, T_, NH_, NKV_, HS_);
    tp::column_backward(be, tp_, dln_.data(), g + ly.qkv, dqkv_.data(), ln1_.data() + s * N * C, w + ly.qkv,
                        lp(ly.qkv), N, C, QKV_);
    ops::rmsnorm_backward(be, dres, g + ly.ln1, dln_.data(), res, w + ly.ln1, rstd1_.data() + l * N, N, C);
  }
  tp::embedding_backward(be, tp_, g + wte_, dres, inputs_.data(), N, C, V_, v0_);
}

template class Llama<float>;
template class Llama<double>;

}  // namespace ssiat
