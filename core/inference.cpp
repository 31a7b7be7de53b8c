// Logits, KV-cache generation and evaluation (contract in core/inference.h).
#include "core/inference.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>

#include "core/data.h"
#include "core/error.h"
#include "core/init.h"
#include "core/philox.h"
#include "core/seed_registry.h"
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

namespace {

// y (rows) = W (rows, cols) x (cols); double sums in index order per row.
void matvec(float* y, const std::vector<float>& W, const float* x, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 16))
  for (int64_t r = 0; r < rows; r++) {
    const float* w = W.data() + r * cols;
    double s = 0;
    for (int64_t c = 0; c < cols; c++) s += static_cast<double>(w[c]) * static_cast<double>(x[c]);
    y[r] = static_cast<float>(s);
  }
}

void rmsnorm(float* out, const float* x, const std::vector<float>& w, int64_t C, double eps) {
  double ss = 0;
  for (int64_t c = 0; c < C; c++) ss += static_cast<double>(x[c]) * static_cast<double>(x[c]);
  const double r = 1.0 / std::sqrt(ss / static_cast<double>(C) + eps);
  for (int64_t c = 0; c < C; c++) out[c] = static_cast<float>(static_cast<double>(x[c]) * r * static_cast<double>(w[c]));
}

// rotate_half RoPE of one head vector at table row (cos, sin) (kernels/rope.h).
void rope(float* v, const float* cos, const float* sin, int64_t HS) {
  const int64_t half = HS / 2;
  for (int64_t j = 0; j < half; j++) {
    const float a = v[j], b = v[j + half];
    v[j] = a * cos[j] - b * sin[j];
    v[j + half] = b * cos[j] + a * sin[j];
  }
}

}  // namespace

KvDecoder::KvDecoder(const ModelSource& src) : cfg_(src.recipe.model) {
  const int64_t C = cfg_.d_model, L = cfg_.n_layer, HS = cfg_.head_dim(), NKV = cfg_.n_kv_head > 0 ? cfg_.n_kv_head : cfg_.n_head;
  const int64_t Tm = cfg_.max_seq_len;
  std::map<std::string, std::vector<float>> w;
  for_each_parameter(src, [&](const std::string& name, const std::vector<int64_t>&, std::vector<float>&& data) {
    w[name] = std::move(data);
  });
  auto take = [&](const std::string& name) {
    const auto it = w.find(name);
    if (it == w.end()) throw IntegrityError(src.checkpoint.string() + ": the checkpoint has no tensor param/" + name);
    return std::move(it->second);
  };
  embed_ = take("model.embed_tokens.weight");
  final_norm_ = take("model.norm.weight");
  if (!cfg_.tied_embeddings) lm_head_ = take("lm_head.weight");
  layers_.resize(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer& y = layers_[l];
    y.in_norm = take(p + "input_layernorm.weight");
    y.q = take(p + "self_attn.q_proj.weight");
    y.k = take(p + "self_attn.k_proj.weight");
    y.v = take(p + "self_attn.v_proj.weight");
    y.o = take(p + "self_attn.o_proj.weight");
    y.post_norm = take(p + "post_attention_layernorm.weight");
    y.gate = take(p + "mlp.gate_proj.weight");
    y.up = take(p + "mlp.up_proj.weight");
    y.down = take(p + "mlp.down_proj.weight");
    y.kcache.resize(static_cast<size_t>(Tm * NKV * HS));
    y.vcache.resize(static_cast<size_t>(Tm * NKV * HS));
  }
  cos_.resize(static_cast<size_t>(Tm * HS / 2));
  sin_.resize(cos_.size());
  kernels::cpu::rope_tables(cos_.data(), sin_.data(), Tm, HS, cfg_.rope_theta);
  x_.resize(C);
  h_.resize(C);
  q_.resize(static_cast<size_t>(cfg_.n_head * HS));
  att_.resize(q_.size());
  g_.resize(static_cast<size_t>(cfg_.d_ff));
  u_.resize(g_.size());
  logits_.resize(static_cast<size_t>(cfg_.vocab_size));
  scores_.resize(static_cast<size_t>(Tm));
}

const std::vector<float>& KvDecoder::step(int32_t token) {
  const int64_t C = cfg_.d_model, HS = cfg_.head_dim(), NH = cfg_.n_head, F = cfg_.d_ff, V = cfg_.vocab_size;
  const int64_t NKV = cfg_.n_kv_head > 0 ? cfg_.n_kv_head : cfg_.n_head, group = NH / NKV;
  if (token < 0 || token >= V) throw ConfigError("token id " + std::to_string(token) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
  if (pos_ >= cfg_.max_seq_len) throw ConfigError("the KV cache is full: model.max_seq_len = " + std::to_string(cfg_.max_seq_len));
  const int64_t p = pos_;
  std::copy_n(embed_.begin() + token * C, C, x_.begin());
  const float* cos = cos_.data() + p * HS / 2;
  const float* sin = sin_.data() + p * HS / 2;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  for (Layer& y : layers_) {
    rmsnorm(h_.data(), x_.data(), y.in_norm, C, cfg_.norm_eps);
    float* kp = y.kcache.data() + p * NKV * HS;
    float* vp = y.vcache.data() + p * NKV * HS;
    matvec(q_.data(), y.q, h_.data(), NH * HS, C);
    matvec(kp, y.k, h_.data(), NKV * HS, C);
    matvec(vp, y.v, h_.data(), NKV * HS, C);
    for (int64_t hd = 0; hd < NH; hd++) rope(q_.data() + hd * HS, cos, sin, HS);
    for (int64_t hd = 0; hd < NKV; hd++) rope(kp + hd * HS, cos, sin, HS);
    for (int64_t hd = 0; hd < NH; hd++) {
      const float* q = q_.data() + hd * HS;
      const int64_t kv = hd / group;
      double mx = -INFINITY;
      for (int64_t t = 0; t <= p; t++) {
        const float* k = y.kcache.data() + (t * NKV + kv) * HS;
        double s = 0;
        for (int64_t j = 0; j < HS; j++) s += static_cast<double>(q[j]) * static_cast<double>(k[j]);
        scores_[t] = s * scale;
        mx = std::max(mx, scores_[t]);
      }
      double sum = 0;
      for (int64_t t = 0; t <= p; t++) sum += (scores_[t] = std::exp(scores_[t] - mx));
      for (int64_t j = 0; j < HS; j++) {
        double a = 0;
        for (int64_t t = 0; t <= p; t++) a += scores_[t] * static_cast<double>(y.vcache[(t * NKV + kv) * HS + j]);
        att_[hd * HS + j] = static_cast<float>(a / sum);
      }
    }
    matvec(h_.data(), y.o, att_.data(), C, NH * HS);
    for (int64_t c = 0; c < C; c++) x_[c] += h_[c];
    rmsnorm(h_.data(), x_.data(), y.post_norm, C, cfg_.norm_eps);
    matvec(g_.data(), y.gate, h_.data(), F, C);
    matvec(u_.data(), y.up, h_.data(), F, C);
    for (int64_t f = 0; f < F; f++) {
      const double g = g_[f];
      g_[f] = static_cast<float>(g / (1.0 + std::exp(-g)) * static_cast<double>(u_[f]));
    }
    matvec(h_.data(), y.down, g_.data(), C, F);
    for (int64_t c = 0; c < C; c++) x_[c] += h_[c];
  }
  rmsnorm(h_.data(), x_.data(), final_norm_, C, cfg_.norm_eps);
  matvec(logits_.data(), cfg_.tied_embeddings ? embed_ : lm_head_, h_.data(), V, C);
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
                         int64_t batch, bool progress) {
  if (seq_len < 1 || seq_len > model.config().max_seq_len)
    throw ConfigError("eval: --seq-len " + std::to_string(seq_len) + " must lie in [1, model.max_seq_len = " +
                      std::to_string(model.config().max_seq_len) + "]");
  if (batch < 1) throw ConfigError("eval: --batch must be at least 1");
  EvalResult r;
  std::vector<int32_t> stream = {tok.eos_id()};
  for (std::string_view d : text_documents(text)) {
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
