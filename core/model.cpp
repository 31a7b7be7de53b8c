// Llama decoder forward/backward over flat buffers (contract in core/model.h).
#include "core/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/hash.h"
#include "core/seed_registry.h"
#include "kernels/attention.h"
#include "kernels/crossentropy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace ssiat {

namespace k = kernels::cpu;

template <typename T>
Llama<T>::Llama(const ModelConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  C_ = cfg_.d_model;
  NH_ = cfg_.n_head;
  NKV_ = cfg_.n_kv_head > 0 ? cfg_.n_kv_head : cfg_.n_head;
  HS_ = C_ / NH_;
  F_ = cfg_.d_ff;
  V_ = cfg_.vocab_size;
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
  // Sizes are checked (core/buffer.h): a shape whose element count overflows throws naming the tensor.
  auto add = [&](const std::string& name, std::vector<int64_t> shape, InitSpec init, bool decay) {
    int64_t n = 1;
    for (int64_t d : shape) n = checked_mul(n, d, name);
    views_.push_back(ParamView{name, std::move(shape), off, n, init, decay});
    off = checked_add(off, n, "model parameters");
    return off - n;
  };
  wte_ = add("model.embed_tokens.weight", {V_, C_}, InitSpec::normal(0.0, std), true);
  for (int64_t l = 0; l < L_; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer ly;
    ly.ln1 = add(p + "input_layernorm.weight", {C_}, InitSpec::ones(), false);
    ly.qkv = add(p + "self_attn.q_proj.weight", {NH_ * HS_, C_}, InitSpec::normal(0.0, std), true);
    add(p + "self_attn.k_proj.weight", {NKV_ * HS_, C_}, InitSpec::normal(0.0, std), true);
    add(p + "self_attn.v_proj.weight", {NKV_ * HS_, C_}, InitSpec::normal(0.0, std), true);
    ly.o = add(p + "self_attn.o_proj.weight", {C_, NH_ * HS_}, InitSpec::normal(0.0, std_out), true);
    ly.ln2 = add(p + "post_attention_layernorm.weight", {C_}, InitSpec::ones(), false);
    ly.gu = add(p + "mlp.gate_proj.weight", {F_, C_}, InitSpec::normal(0.0, std), true);
    add(p + "mlp.up_proj.weight", {F_, C_}, InitSpec::normal(0.0, std), true);
    ly.down = add(p + "mlp.down_proj.weight", {C_, F_}, InitSpec::normal(0.0, std_out), true);
    layers_.push_back(ly);
  }
  norm_ = add("model.norm.weight", {C_}, InitSpec::ones(), false);
  lm_head_ = cfg_.tied_embeddings ? wte_ : add("lm_head.weight", {V_, C_}, InitSpec::normal(0.0, std), true);
  params_.resize(off);
  grads_.resize(off);
}

template <typename T>
const ParamView& Llama<T>::view(const std::string& name) const {
  for (const auto& v : views_)
    if (v.name == name) return v;
  throw Error("model has no parameter '" + name + "'");
}

template <typename T>
std::vector<std::string> Llama<T>::init_weights(SeedRegistry& reg) {
  std::vector<std::string> hashes;
  for (const auto& v : views_) {
    const std::string stream = "init/" + v.name;
    T* dst = params_.data() + v.offset;
    if (v.init.kind == InitKind::kZeros || v.init.kind == InitKind::kOnes) {
      init_fill(dst, 0, v.numel, v.init, PhiloxKey{});  // deterministic: no stream drawn
    } else {
      init_fill(dst, 0, v.numel, v.init, reg.stream_key(stream));
    }
    nlohmann::json rec = {{"type", "tensor"},
                          {"name", v.name},
                          {"shape", v.shape},
                          {"dtype", sizeof(T) == 4 ? "float32" : "float64"},
                          {"init", v.init.to_json()},
                          {"sha256", hashes.emplace_back(sha256_hex(dst, static_cast<size_t>(v.numel) * sizeof(T)))}};
    if (v.init.kind != InitKind::kZeros && v.init.kind != InitKind::kOnes) rec["stream"] = stream;
    reg.record(std::move(rec));
  }
  return hashes;
}

template <typename T>
double Llama<T>::flops_per_token(int64_t T_) const {
  double matmul = 0;
  for (const auto& v : views_)
    if (v.shape.size() == 2 && v.offset != wte_) matmul += static_cast<double>(v.numel);
  if (cfg_.tied_embeddings) matmul += static_cast<double>(V_) * static_cast<double>(C_);
  return 6.0 * matmul + 12.0 * static_cast<double>(L_) * static_cast<double>(C_) * static_cast<double>(T_);
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
  const int64_t N = n({cap_B, cap_T}), L = L_;
  inputs_.resize(N);
  rope_cos_.resize(n({cfg_.max_seq_len, HS_ / 2}));
  rope_sin_.resize(n({cfg_.max_seq_len, HS_ / 2}));
  k::rope_tables(rope_cos_.data(), rope_sin_.data(), cfg_.max_seq_len, HS_, cfg_.rope_theta);
  res_.resize(n({L + 1, N, C_}));
  resmid_.resize(n({L, N, C_}));
  ln1_.resize(n({L, N, C_}));
  ln2_.resize(n({L, N, C_}));
  rstd1_.resize(n({L, N}));
  rstd2_.resize(n({L, N}));
  qkv_.resize(n({L, N, QKV_}));
  att_.resize(n({L, N, NH_, HS_}));
  lse_.resize(n({L, N, NH_}));
  gu_.resize(n({L, N, 2, F_}));
  act_.resize(n({L, N, F_}));
  lnf_.resize(n({N, C_}));
  rstdf_.resize(N);
  logits_.resize(n({N, V_}));
  losses_.resize(N);
  proj_.resize(n({N, C_}));
  dres_.resize(n({N, C_}));
  dln_.resize(n({N, C_}));
  datt_.resize(n({N, NH_, HS_}));
  dqkv_.resize(n({N, QKV_}));
  dgu_.resize(n({N, 2, F_}));
  dact_.resize(n({N, F_}));
  cap_B_ = cap_B;
  cap_T_ = cap_T;
}

template <typename T>
double Llama<T>::forward(const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T_, Pass pass,
                         T loss_scale) {
  ensure_capacity(B, T_);
  cur_B_ = B;
  cur_T_ = T_;
  const int64_t N = B * T_, C = C_;
  const T eps = static_cast<T>(cfg_.norm_eps);
  T* w = params_.data();
  std::memcpy(inputs_.data(), inputs, static_cast<size_t>(N) * sizeof(int32_t));

  k::embedding_forward(res_.data(), inputs, w + wte_, N, C, V_);
  for (int64_t l = 0; l < L_; l++) {
    const Layer& ly = layers_[l];
    T* res = res_.data() + l * N * C;
    T* resmid = resmid_.data() + l * N * C;
    T* ln1 = ln1_.data() + l * N * C;
    T* ln2 = ln2_.data() + l * N * C;
    T* qkv = qkv_.data() + l * N * QKV_;
    T* att = att_.data() + l * N * NH_ * HS_;
    T* gu = gu_.data() + l * N * 2 * F_;
    T* act = act_.data() + l * N * F_;
    // attention block: resmid = res + o_proj(attn(rope(qkv_proj(norm(res)))))
    k::rmsnorm_forward(ln1, rstd1_.data() + l * N, res, w + ly.ln1, N, C, eps);
    k::matmul_forward(qkv, ln1, w + ly.qkv, N, C, QKV_);
    k::rope_forward(qkv, rope_cos_.data(), rope_sin_.data(), B, T_, NH_, NKV_, HS_);
    k::attention_forward(att, lse_.data() + l * N * NH_, qkv, B, T_, NH_, NKV_, HS_);
    k::matmul_forward(proj_.data(), att, w + ly.o, N, NH_ * HS_, C);
    std::memcpy(resmid, res, static_cast<size_t>(N * C) * sizeof(T));
    k::add_inplace(resmid, proj_.data(), N * C);
    // MLP block: res_next = resmid + down(silu(gate(x)) * up(x)), x = norm(resmid)
    k::rmsnorm_forward(ln2, rstd2_.data() + l * N, resmid, w + ly.ln2, N, C, eps);
    k::matmul_forward(gu, ln2, w + ly.gu, N, C, 2 * F_);
    k::swiglu_forward(act, gu, N, F_);
    k::matmul_forward(proj_.data(), act, w + ly.down, N, F_, C);
    T* next = res_.data() + (l + 1) * N * C;
    std::memcpy(next, resmid, static_cast<size_t>(N * C) * sizeof(T));
    k::add_inplace(next, proj_.data(), N * C);
  }
  k::rmsnorm_forward(lnf_.data(), rstdf_.data(), res_.data() + L_ * N * C, w + norm_, N, C, eps);
  k::matmul_forward(logits_.data(), lnf_.data(), w + lm_head_, N, C, V_);
  if (pass == Pass::kLogits) return 0.0;
  if (pass == Pass::kTrain) {
    k::crossentropy_fused(losses_.data(), logits_.data(), targets, N, V_, loss_scale / static_cast<T>(N));
  } else {
    k::crossentropy_forward(losses_.data(), logits_.data(), targets, N, V_);
  }
  double sum = 0;
  for (int64_t i = 0; i < N; i++) sum += static_cast<double>(losses_[i]);
  return sum / static_cast<double>(N);
}

template <typename T>
void Llama<T>::backward() {
  const int64_t B = cur_B_, T_ = cur_T_, N = B * T_, C = C_;
  SSIAT_CHECK(N > 0) << "backward() without a training forward()";
  const T* w = params_.data();
  T* g = grads_.data();
  T* dres = dres_.data();
  // LM head and final norm; dres accumulates d(residual stream) from here down.
  k::matmul_backward(dln_.data(), g + lm_head_, logits_.data(), lnf_.data(), w + lm_head_, N, C, V_);
  dres_.zero();
  k::rmsnorm_backward(dres, g + norm_, dln_.data(), res_.data() + L_ * N * C, w + norm_, rstdf_.data(), N, C);
  for (int64_t l = L_ - 1; l >= 0; l--) {
    const Layer& ly = layers_[l];
    const T* res = res_.data() + l * N * C;
    const T* resmid = resmid_.data() + l * N * C;
    const T* qkv = qkv_.data() + l * N * QKV_;
    const T* att = att_.data() + l * N * NH_ * HS_;
    // MLP block (dres is d res_next; the residual path passes it through unchanged)
    k::matmul_backward(dact_.data(), g + ly.down, dres, act_.data() + l * N * F_, w + ly.down, N, F_, C);
    k::swiglu_backward(dgu_.data(), dact_.data(), gu_.data() + l * N * 2 * F_, N, F_);
    k::matmul_backward(dln_.data(), g + ly.gu, dgu_.data(), ln2_.data() + l * N * C, w + ly.gu, N, C, 2 * F_);
    k::rmsnorm_backward(dres, g + ly.ln2, dln_.data(), resmid, w + ly.ln2, rstd2_.data() + l * N, N, C);
    // attention block (dres is now d resmid)
    k::matmul_backward(datt_.data(), g + ly.o, dres, att, w + ly.o, N, NH_ * HS_, C);
    k::attention_backward(dqkv_.data(), datt_.data(), att, lse_.data() + l * N * NH_, qkv, B, T_, NH_, NKV_, HS_);
    k::rope_backward(dqkv_.data(), rope_cos_.data(), rope_sin_.data(), B, T_, NH_, NKV_, HS_);
    k::matmul_backward(dln_.data(), g + ly.qkv, dqkv_.data(), ln1_.data() + l * N * C, w + ly.qkv, N, C, QKV_);
    k::rmsnorm_backward(dres, g + ly.ln1, dln_.data(), res, w + ly.ln1, rstd1_.data() + l * N, N, C);
  }
  k::embedding_backward(g + wte_, dres, inputs_.data(), N, C, V_);
}

template class Llama<float>;
template class Llama<double>;

}  // namespace ssiat
