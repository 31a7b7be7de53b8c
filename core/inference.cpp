// Logits, KV-cache generation and evaluation (contract in core/inference.h).
#include "core/inference.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "core/data.h"
#include "core/error.h"
#include "core/init.h"
#include "core/philox.h"
#include "core/seed_registry.h"
#include "core/ops.h"
#include "kernels/rope.h"

namespace ssiat {

std::vector<float> logits_of(Llama<float>& model, const std::vector<int32_t>& ids) {
  const int64_t T = static_cast<int64_t>(ids.size()), V = model.config().vocab_size;
  if (T == 0) throw ConfigError("the prompt encodes to no token");
  if (T > model.config().max_seq_len)
    throw ConfigError("the prompt is " + std::to_string(T) + " tokens, longer than model.max_seq_len = " +
                      std::to_string(model.config().max_seq_len));
  model.forward(ids.data(), nullptr, 1, T, Pass::kLogits);
  std::vector<float> out(static_cast<size_t>(T * V));
  model.copy_logits_to_host(out.data(), 0, T);
  return out;
}

// ---- KV-cache decoder ------------------------------------------------------------------------

KvDecoder::KvDecoder(Llama<float>& model)
    : model_(model), be_(model.backend()), cfg_(model.config()) {
  SSIAT_CHECK(model.tensor_parallel().size == 1) << "KvDecoder: a tensor-parallel model (decode on one rank)";
  const int64_t C = cfg_.d_model, L = cfg_.n_layer, HS = cfg_.head_dim(), NH = cfg_.n_head, F = cfg_.d_ff;
  const int64_t NKV = cfg_.n_kv_head > 0 ? cfg_.n_kv_head : cfg_.n_head, Tm = cfg_.max_seq_len, V = cfg_.vocab_size;
  QKV_ = (NH + 2 * NKV) * HS;
  auto at = [&](const std::string& name) { return model.view(name).offset; };
  // Fused operands: q|k|v and gate|up are adjacent in the flat buffer (core/model.h).
  auto fused = [&](const std::string& first, const std::vector<std::string>& rest) {
    int64_t end = model.view(first).offset + model.view(first).numel;
    for (const auto& r : rest) {
      SSIAT_CHECK(model.view(r).offset == end) << "KvDecoder: " << r << " does not follow " << first;
      end += model.view(r).numel;
    }
    return model.view(first).offset;
  };
  for (int64_t l = 0; l < L; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    layers_.push_back({at(p + "input_layernorm.weight"),
                       fused(p + "self_attn.q_proj.weight", {p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"}),
                       at(p + "self_attn.o_proj.weight"), at(p + "post_attention_layernorm.weight"),
                       fused(p + "mlp.gate_proj.weight", {p + "mlp.up_proj.weight"}), at(p + "mlp.down_proj.weight")});
  }
  wte_ = at("model.embed_tokens.weight");
  final_norm_ = at("model.norm.weight");
  lm_head_ = cfg_.tied_embeddings ? wte_ : at("lm_head.weight");
  const Device dev = be_.device();
  cache_.resize(L * Tm * QKV_, dev);
  std::vector<float> cos(static_cast<size_t>(Tm * HS / 2)), sin(cos.size());
  kernels::cpu::rope_tables(cos.data(), sin.data(), Tm, HS, cfg_.rope_theta);
  cos_.resize(static_cast<int64_t>(cos.size()), dev);
  sin_.resize(static_cast<int64_t>(sin.size()), dev);
  ops::upload(be_, cos_.data(), cos.data(), static_cast<int64_t>(cos.size()));
  ops::upload(be_, sin_.data(), sin.data(), static_cast<int64_t>(sin.size()));
  for (Buffer<float>* b : {&x_, &h_, &tmp_}) b->resize(C, dev);
  att_.resize(NH * HS, dev);
  gu_.resize(2 * F, dev);
  act_.resize(F, dev);
  rstd_.resize(1, dev);
  logits_dev_.resize(V, dev);
  token_.resize(1, dev);
  logits_.resize(static_cast<size_t>(V));
}

const std::vector<float>& KvDecoder::step(int32_t token) {
  const int64_t C = cfg_.d_model, HS = cfg_.head_dim(), NH = cfg_.n_head, F = cfg_.d_ff, V = cfg_.vocab_size;
  const int64_t NKV = cfg_.n_kv_head > 0 ? cfg_.n_kv_head : cfg_.n_head, Tm = cfg_.max_seq_len;
  if (token < 0 || token >= V)
    throw ConfigError("token id " + std::to_string(token) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
  if (pos_ >= Tm) throw ConfigError("the KV cache is full: model.max_seq_len = " + std::to_string(Tm));
  const int64_t p = pos_;
  const float* w = model_.params();
  const float eps = static_cast<float>(cfg_.norm_eps);
  ops::upload(be_, token_.data(), &token, 1);
  ops::embedding_forward(be_, x_.data(), token_.data(), w + wte_, 1, C, V);
  for (size_t l = 0; l < layers_.size(); l++) {
    const LayerAt& y = layers_[l];
    float* rows = cache_.data() + static_cast<int64_t>(l) * Tm * QKV_;
    float* row = rows + p * QKV_;
    ops::rmsnorm_forward(be_, h_.data(), rstd_.data(), x_.data(), w + y.in_norm, 1, C, eps);
    ops::matmul_forward<float>(be_, row, h_.data(), w + y.qkv, nullptr, 1, C, QKV_);
    ops::rope_forward(be_, row, cos_.data() + p * HS / 2, sin_.data() + p * HS / 2, 1, 1, NH, NKV, HS);
    ops::attention_decode(be_, att_.data(), rows, p + 1, NH, NKV, HS);
    ops::matmul_forward<float>(be_, tmp_.data(), att_.data(), w + y.o, nullptr, 1, NH * HS, C);
    ops::add(be_, x_.data(), x_.data(), tmp_.data(), C);
    ops::rmsnorm_forward(be_, h_.data(), rstd_.data(), x_.data(), w + y.post_norm, 1, C, eps);
    ops::matmul_forward<float>(be_, gu_.data(), h_.data(), w + y.gate_up, nullptr, 1, C, 2 * F);
    ops::swiglu_forward(be_, act_.data(), gu_.data(), 1, F);
    ops::matmul_forward<float>(be_, tmp_.data(), act_.data(), w + y.down, nullptr, 1, F, C);
    ops::add(be_, x_.data(), x_.data(), tmp_.data(), C);
  }
  ops::rmsnorm_forward(be_, h_.data(), rstd_.data(), x_.data(), w + final_norm_, 1, C, eps);
  ops::matmul_forward<float>(be_, logits_dev_.data(), h_.data(), w + lm_head_, nullptr, 1, C, V);
  ops::download(be_, logits_.data(), logits_dev_.data(), V);
  pos_++;
  return logits_;
}

// ---- sampling --------------------------------------------------------------------------------

int32_t sample_token(const std::vector<float>& logits, const SamplingOptions& opt, int64_t step) {
  const int64_t V = static_cast<int64_t>(logits.size());
  if (opt.temperature <= 0) return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(V);
  for (int64_t i = 0; i < V; i++) p[i] = std::exp((static_cast<double>(logits[i]) - mx) / opt.temperature);
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  int64_t keep = V;
  if (opt.top_k > 0) keep = std::min(keep, opt.top_k);
  double total = 0;
  for (int64_t i = 0; i < keep; i++) total += p[order[i]];
  if (opt.top_p < 1.0) {
    double acc = 0;
    for (int64_t i = 0; i < keep; i++) {
      acc += p[order[i]];
      if (acc >= opt.top_p * total) {
        keep = i + 1;
        break;
      }
    }
    total = 0;
    for (int64_t i = 0; i < keep; i++) total += p[order[i]];
  }
  const PhiloxCounter r = philox4x32_10({static_cast<uint32_t>(step), static_cast<uint32_t>(static_cast<uint64_t>(step) >> 32), 0, 0},
                                        SeedRegistry::derive_key(opt.seed, "generate"));
  const double u = uniform01_from_bits(r[0], r[1]) * total;
  double acc = 0;
  for (int64_t i = 0; i < keep; i++) {
    acc += p[order[i]];
    if (u < acc) return order[i];
  }
  return order[keep - 1];
}

std::vector<int32_t> generate_tokens(KvDecoder& dec, const std::vector<int32_t>& prompt, int32_t eos_id,
                                     const SamplingOptions& opt, const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) throw ConfigError("the prompt encodes to no token");
  const int64_t Tm = dec.config().max_seq_len;
  if (static_cast<int64_t>(prompt.size()) > Tm)
    throw ConfigError("the prompt is " + std::to_string(prompt.size()) + " tokens, longer than model.max_seq_len = " + std::to_string(Tm));
  dec.reset();
  const std::vector<float>* logits = nullptr;
  for (int32_t id : prompt) logits = &dec.step(id);
  std::vector<int32_t> out;
  for (int64_t s = 0; s < opt.max_new_tokens; s++) {
    const int32_t next = sample_token(*logits, opt, s);
    out.push_back(next);
    if (on_token) on_token(next);
    if ((opt.stop_at_eos && next == eos_id) || dec.position() >= Tm) break;
    logits = &dec.step(next);
  }
  return out;
}

// ---- evaluation ------------------------------------------------------------------------------

double EvalResult::perplexity() const { return std::exp(loss()); }
double EvalResult::bits_per_byte() const { return bytes ? nll_sum / std::log(2.0) / static_cast<double>(bytes) : 0; }

EvalResult evaluate_text(Llama<float>& model, const tokenizer::Tokenizer& tok, const std::string& text, int64_t seq_len,
                         int64_t batch, bool progress, bool lines_are_documents) {
  if (seq_len < 1 || seq_len > model.config().max_seq_len)
    throw ConfigError("eval: --seq-len " + std::to_string(seq_len) + " must lie in [1, model.max_seq_len = " +
                      std::to_string(model.config().max_seq_len) + "]");
  if (batch < 1) throw ConfigError("eval: --batch must be at least 1");
  EvalResult r;
  std::vector<int32_t> stream = {tok.eos_id()};
  for (std::string_view d : lines_are_documents ? text_lines(text) : text_documents(text)) {
    const std::vector<int32_t> ids = tok.encode(d);
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(tok.eos_id());
    r.documents++;
    r.bytes += static_cast<int64_t>(d.size());
  }
  if (r.documents == 0) throw ConfigError("eval: the text holds no document (no non-blank line)");
  const int64_t predicted = static_cast<int64_t>(stream.size()) - 1;
  const int64_t windows = (predicted + seq_len - 1) / seq_len, full = predicted / seq_len;
  std::vector<int32_t> x(static_cast<size_t>(batch * seq_len)), y(x.size());
  const auto t0 = std::chrono::steady_clock::now();
  auto t_last = t0;
  // Full windows in batches, then the last (shorter) one alone.
  for (int64_t w = 0; w < windows;) {
    const int64_t T = w < full ? seq_len : predicted - full * seq_len;
    const int64_t B = w < full ? std::min(batch, full - w) : 1;
    for (int64_t b = 0; b < B; b++) {
      const int32_t* s = stream.data() + (w + b) * seq_len;
      std::copy_n(s, T, x.begin() + b * T);
      std::copy_n(s + 1, T, y.begin() + b * T);
    }
    const double mean = model.forward(x.data(), y.data(), B, T, Pass::kEval);
    r.nll_sum += mean * static_cast<double>(B * T);
    r.tokens += B * T;
    w += B;
    const auto now = std::chrono::steady_clock::now();
    if (progress && (std::chrono::duration<double>(now - t_last).count() >= 1.0 || w == windows)) {
      t_last = now;
      const double el = std::chrono::duration<double>(now - t0).count();
      std::fprintf(stderr, "eval: window %lld/%lld | %.0f tok/s | loss %.4f | ETA %.0f s\n", static_cast<long long>(w),
                   static_cast<long long>(windows), static_cast<double>(r.tokens) / std::max(el, 1e-9), r.loss(),
                   el / static_cast<double>(w) * static_cast<double>(windows - w));
    }
  }
  return r;
}

}  // namespace ssiat
