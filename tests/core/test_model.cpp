// Whole-model tests: float64 finite-difference gradients of every parameter, an independent
// naive forward (plain loops, HF Llama formulas) as the referee for the forward, accumulation
// semantics, and float32/float64 agreement.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/seed_registry.h"
#include "tests/common/gradcheck.h"

namespace ssiat {
namespace {

ModelConfig tiny_config(bool tied) {
  ModelConfig c;
  c.vocab_size = 11;
  c.n_layer = 2;
  c.d_model = 8;
  c.n_head = 2;
  c.n_kv_head = 1;
  c.d_ff = 12;
  c.max_seq_len = 6;
  c.tied_embeddings = tied;
  c.rope_theta = 10000.0;
  c.norm_eps = 1e-5;
  c.init_std = 0.3;  // large enough that every path carries signal
  return c;
}

std::vector<int32_t> tokens(int64_t n, int64_t V, uint32_t salt) {
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; i++) t[i] = static_cast<int32_t>((i * 7 + salt * 3 + i * i) % V);
  return t;
}

// Naive Llama forward in double from the Hugging Face formulas; returns mean cross-entropy.
double naive_loss(const Llama<double>& m, const std::vector<int32_t>& x, const std::vector<int32_t>& y, int64_t B,
                  int64_t T) {
  const ModelConfig& c = m.config();
  const int64_t C = c.d_model, NH = c.n_head, NKV = c.n_kv_head, HS = C / NH, F = c.d_ff, V = c.vocab_size;
  auto W = [&](const std::string& n) { return m.params() + m.view(n).offset; };
  auto rmsnorm = [&](const std::vector<double>& in, const double* w) {
    std::vector<double> out(in.size());
    for (int64_t n = 0; n < B * T; n++) {
      double ss = 0;
      for (int64_t i = 0; i < C; i++) ss += in[n * C + i] * in[n * C + i];
      const double r = 1.0 / std::sqrt(ss / C + c.norm_eps);
      for (int64_t i = 0; i < C; i++) out[n * C + i] = in[n * C + i] * r * w[i];
    }
    return out;
  };
  auto linear = [&](const std::vector<double>& in, int64_t IN, const double* w, int64_t OUT) {
    std::vector<double> out(B * T * OUT, 0.0);
    for (int64_t n = 0; n < B * T; n++)
      for (int64_t o = 0; o < OUT; o++) {
        double s = 0;
        for (int64_t i = 0; i < IN; i++) s += in[n * IN + i] * w[o * IN + i];
        out[n * OUT + o] = s;
      }
    return out;
  };
  auto rope = [&](std::vector<double>& v, int64_t heads) {  // v (B, T, heads, HS)
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < heads; h++) {
          double* p = &v[((b * T + t) * heads + h) * HS];
          std::vector<double> o(HS);
          for (int64_t j = 0; j < HS; j++) {
            const int64_t jj = j % (HS / 2);
            const double ang = t * std::pow(c.rope_theta, -2.0 * jj / HS);
            const double rot = j < HS / 2 ? -p[j + HS / 2] : p[j - HS / 2];  // rotate_half
            o[j] = p[j] * std::cos(ang) + rot * std::sin(ang);
          }
          for (int64_t j = 0; j < HS; j++) p[j] = o[j];
        }
  };
  std::vector<double> h(B * T * C);
  for (int64_t n = 0; n < B * T; n++)
    for (int64_t i = 0; i < C; i++) h[n * C + i] = W("model.embed_tokens.weight")[x[n] * C + i];
  for (int64_t l = 0; l < c.n_layer; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto a = rmsnorm(h, W(p + "input_layernorm.weight"));
    auto q = linear(a, C, W(p + "self_attn.q_proj.weight"), NH * HS);
    auto k = linear(a, C, W(p + "self_attn.k_proj.weight"), NKV * HS);
    auto v = linear(a, C, W(p + "self_attn.v_proj.weight"), NKV * HS);
    rope(q, NH);
    rope(k, NKV);
    std::vector<double> att(B * T * NH * HS, 0.0);
    for (int64_t b = 0; b < B; b++)
      for (int64_t hh = 0; hh < NH; hh++) {
        const int64_t g = hh / (NH / NKV);
        for (int64_t t = 0; t < T; t++) {
          std::vector<double> s(t + 1);
          double mx = -1e300, sum = 0;
          for (int64_t u = 0; u <= t; u++) {
            double d = 0;
            for (int64_t j = 0; j < HS; j++) d += q[((b * T + t) * NH + hh) * HS + j] * k[((b * T + u) * NKV + g) * HS + j];
            s[u] = d / std::sqrt(static_cast<double>(HS));
            mx = std::max(mx, s[u]);
          }
          for (int64_t u = 0; u <= t; u++) sum += (s[u] = std::exp(s[u] - mx));
          for (int64_t u = 0; u <= t; u++)
            for (int64_t j = 0; j < HS; j++)
              att[((b * T + t) * NH + hh) * HS + j] += s[u] / sum * v[((b * T + u) * NKV + g) * HS + j];
        }
      }
    auto o = linear(att, NH * HS, W(p + "self_attn.o_proj.weight"), C);
    for (size_t i = 0; i < h.size(); i++) h[i] += o[i];
    auto a2 = rmsnorm(h, W(p + "post_attention_layernorm.weight"));
    auto gate = linear(a2, C, W(p + "mlp.gate_proj.weight"), F);
    auto up = linear(a2, C, W(p + "mlp.up_proj.weight"), F);
    for (size_t i = 0; i < gate.size(); i++) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
    auto d = linear(gate, F, W(p + "mlp.down_proj.weight"), C);
    for (size_t i = 0; i < h.size(); i++) h[i] += d[i];
  }
  auto f = rmsnorm(h, W("model.norm.weight"));
  auto logits = linear(f, C, W(c.tied_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"), V);
  double loss = 0;
  for (int64_t n = 0; n < B * T; n++) {
    double mx = -1e300, sum = 0;
    for (int64_t vv = 0; vv < V; vv++) mx = std::max(mx, logits[n * V + vv]);
    for (int64_t vv = 0; vv < V; vv++) sum += std::exp(logits[n * V + vv] - mx);
    loss += std::log(sum) + mx - logits[n * V + y[n]];
  }
  return loss / static_cast<double>(B * T);
}

class ModelTest : public ::testing::TestWithParam<bool> {};

TEST_P(ModelTest, ForwardMatchesNaiveReference) {
  Llama<double> m(tiny_config(GetParam()));
  SeedRegistry reg(42, SeedSource::kRecipe);
  m.init_weights(reg);
  const int64_t B = 2, T = 5;
  auto x = tokens(B * T, 11, 1), y = tokens(B * T, 11, 2);
  const double got = m.forward(x.data(), y.data(), B, T, Pass::kEval);
  EXPECT_NEAR(got, naive_loss(m, x, y, B, T), 1e-12);
}

TEST_P(ModelTest, FiniteDifferenceGradientsOfEveryParameter) {
  Llama<double> m(tiny_config(GetParam()));
  SeedRegistry reg(7, SeedSource::kRecipe);
  m.init_weights(reg);
  // Perturb the norm weights away from 1 so their gradients are generic.
  for (const auto& v : m.views())
    if (v.shape.size() == 1)
      for (int64_t i = 0; i < v.numel; i++) m.params()[v.offset + i] += 0.1 * std::sin(1.0 + i + v.offset);
  const int64_t B = 2, T = 5;
  auto x = tokens(B * T, 11, 3), y = tokens(B * T, 11, 4);
  m.zero_grads();
  m.forward(x.data(), y.data(), B, T, Pass::kTrain);
  m.backward();
  std::vector<double> analytic(m.grads(), m.grads() + m.num_params());
  auto loss = [&] { return m.forward(x.data(), y.data(), B, T, Pass::kEval); };
  for (const auto& v : m.views()) {
    const double err = testing::gradcheck_relerr(m.params() + v.offset, v.numel, analytic.data() + v.offset, loss);
    EXPECT_LE(err, 1e-6) << v.name;
  }
}

TEST_P(ModelTest, BackwardAccumulatesAndLossScaleScales) {
  Llama<double> m(tiny_config(GetParam()));
  SeedRegistry reg(9, SeedSource::kRecipe);
  m.init_weights(reg);
  const int64_t B = 1, T = 6;
  auto x = tokens(B * T, 11, 5), y = tokens(B * T, 11, 6);
  m.zero_grads();
  m.forward(x.data(), y.data(), B, T, Pass::kTrain);
  m.backward();
  std::vector<double> once(m.grads(), m.grads() + m.num_params());
  m.forward(x.data(), y.data(), B, T, Pass::kTrain, 0.5);
  m.backward();
  for (int64_t i = 0; i < m.num_params(); i++) ASSERT_NEAR(m.grads()[i], 1.5 * once[i], 1e-12 + 1e-9 * std::abs(once[i]));
}

TEST_P(ModelTest, Float32AgreesWithFloat64) {
  Llama<double> md(tiny_config(GetParam()));
  Llama<float> mf(tiny_config(GetParam()));
  SeedRegistry r1(11, SeedSource::kRecipe), r2(11, SeedSource::kRecipe);
  md.init_weights(r1);
  mf.init_weights(r2);
  const int64_t B = 2, T = 6;
  auto x = tokens(B * T, 11, 7), y = tokens(B * T, 11, 8);
  EXPECT_NEAR(mf.forward(x.data(), y.data(), B, T, Pass::kEval), md.forward(x.data(), y.data(), B, T, Pass::kEval), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(TiedAndUntied, ModelTest, ::testing::Values(false, true));

TEST(ModelLayout, HuggingFaceNamesAndFusedAdjacency) {
  Llama<float> m(tiny_config(false));
  const auto& q = m.view("model.layers.1.self_attn.q_proj.weight");
  const auto& k = m.view("model.layers.1.self_attn.k_proj.weight");
  const auto& v = m.view("model.layers.1.self_attn.v_proj.weight");
  EXPECT_EQ(k.offset, q.offset + q.numel);
  EXPECT_EQ(v.offset, k.offset + k.numel);
  EXPECT_EQ(k.shape, (std::vector<int64_t>{4, 8}));  // NKV*HS = 1*4
  const auto& g = m.view("model.layers.0.mlp.gate_proj.weight");
  EXPECT_EQ(m.view("model.layers.0.mlp.up_proj.weight").offset, g.offset + g.numel);
  int64_t total = 0;
  for (const auto& pv : m.views()) total += pv.numel;
  EXPECT_EQ(total, m.num_params());
  // 11*8 embed + 2 layers * (8 + 64 + 32 + 32 + 64 + 8 + 96 + 96 + 96) + 8 norm + 88 head
  EXPECT_EQ(m.num_params(), 88 + 2 * 496 + 8 + 88);
  EXPECT_THROW(m.view("lm_head.bias"), Error);
  Llama<float> tied(tiny_config(true));
  EXPECT_EQ(tied.num_params(), 88 + 2 * 496 + 8);
}

}  // namespace
}  // namespace ssiat
