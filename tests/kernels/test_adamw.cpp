// Tests for kernels/adamw.h: several steps against a scalar reference written here from the
// header's formula (PyTorch order: decay, moments, bias-corrected update), the first Adam step's
// known size (lr * sign(g) when eps is negligible), float32 vs the reference, grad untouched,
// bitwise equality for 1 and 2 OpenMP threads, bad hyper-parameters, and the change flag (set
// exactly when some value changed, on 1 and 2 threads, never cleared).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/check.h"
#include "tests/common/gradcheck.h"

namespace {

using ssiat::kernels::cpu::adamw_update;
using ssiat::kernels::cpu::AdamWParams;
using ssiat::testing::test_values;

// One AdamW step on one element, straight from the header.
void ref_step(double& p, double g, double& m, double& v, const AdamWParams& hp) {
  p *= 1 - hp.lr * hp.weight_decay;
  m = hp.beta1 * m + (1 - hp.beta1) * g;
  v = hp.beta2 * v + (1 - hp.beta2) * g * g;
  const double mhat = m / (1 - std::pow(hp.beta1, static_cast<double>(hp.step)));
  const double vhat = v / (1 - std::pow(hp.beta2, static_cast<double>(hp.step)));
  p -= hp.lr * mhat / (std::sqrt(vhat) + hp.eps);
}

TEST(AdamW, SeveralStepsMatchScalarReference) {
  const int64_t n = 257;
  AdamWParams hp;
  hp.lr = 3e-3;
  hp.beta1 = 0.9;
  hp.beta2 = 0.95;
  hp.eps = 1e-8;
  hp.weight_decay = 0.1;
  std::vector<double> p = test_values(n, 1), m(n, 0.0), v(n, 0.0);
  std::vector<double> rp = p, rm = m, rv = v;
  std::vector<float> pf(p.begin(), p.end()), mf(n, 0.0f), vf(n, 0.0f);
  for (int64_t step = 1; step <= 6; step++) {
    hp.step = step;
    const auto g = test_values(n, 100 + step, -2.0, 2.0);
    const std::vector<float> gf(g.begin(), g.end());
    const std::vector<double> g_before = g;
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, hp);
    adamw_update(pf.data(), gf.data(), mf.data(), vf.data(), n, hp);
    for (int64_t i = 0; i < n; i++) ref_step(rp[i], g[i], rm[i], rv[i], hp);
    EXPECT_EQ(std::memcmp(g.data(), g_before.data(), sizeof(double) * n), 0);
    for (int64_t i = 0; i < n; i++) {
      EXPECT_NEAR(p[i], rp[i], 1e-14) << "step " << step << " i=" << i;
      EXPECT_NEAR(m[i], rm[i], 1e-15 * (1 + std::abs(rm[i])));
      EXPECT_NEAR(v[i], rv[i], 1e-15 * (1 + std::abs(rv[i])));
      // float32: the update is ~lr per step, each carrying ~1e-7 relative error.
      EXPECT_NEAR(pf[i], rp[i], 2e-6) << "step " << step << " i=" << i;
      EXPECT_NEAR(mf[i], rm[i], 1e-6);
      EXPECT_NEAR(vf[i], rv[i], 1e-6);
    }
  }
}

TEST(AdamW, FirstStepMovesByLearningRateTimesSign) {
  // Step 1: m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps) = lr * sign(g) for eps = 0;
  // with weight decay the parameter is first scaled by 1 - lr * wd (decoupled decay).
  const int64_t n = 6;
  const std::vector<double> g = {0.5, -2.0, 1e-3, -1e-2, 3.0, -0.25};
  std::vector<double> p = {1.0, 1.0, -1.0, 0.0, 2.0, -3.0}, m(n, 0.0), v(n, 0.0);
  const std::vector<double> p0 = p;
  AdamWParams hp;
  hp.lr = 0.01;
  hp.eps = 0.0;
  hp.weight_decay = 0.5;
  hp.step = 1;
  adamw_update(p.data(), g.data(), m.data(), v.data(), n, hp);
  for (int64_t i = 0; i < n; i++) {
    const double expect = p0[i] * (1 - 0.01 * 0.5) - 0.01 * (g[i] > 0 ? 1.0 : -1.0);
    EXPECT_NEAR(p[i], expect, 1e-12) << "i=" << i;
    EXPECT_NEAR(m[i], 0.1 * g[i], 1e-15 * std::abs(g[i]));
    EXPECT_NEAR(v[i], 0.05 * g[i] * g[i], 1e-15 * g[i] * g[i]);
  }
}

TEST(AdamWThreads, BitwiseEqualForOneAndTwoThreads) {
  const int64_t n = 100003;
  const auto pd = test_values(n, 7), gd = test_values(n, 8), md = test_values(n, 9, -0.1, 0.1),
             vd = test_values(n, 10, 0.0, 0.01);
  AdamWParams hp;
  hp.weight_decay = 0.05;
  hp.step = 3;
  struct State {
    std::vector<float> p, m, v;
  };
  const std::vector<float> g(gd.begin(), gd.end());
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    State s{std::vector<float>(pd.begin(), pd.end()), std::vector<float>(md.begin(), md.end()),
            std::vector<float>(vd.begin(), vd.end())};
    adamw_update(s.p.data(), g.data(), s.m.data(), s.v.data(), n, hp);
    return s;
  };
  const int saved = omp_get_max_threads();
  const State a = run(1), b = run(2);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(a.p.data(), b.p.data(), sizeof(float) * n), 0);
  EXPECT_EQ(std::memcmp(a.m.data(), b.m.data(), sizeof(float) * n), 0);
  EXPECT_EQ(std::memcmp(a.v.data(), b.v.data(), sizeof(float) * n), 0);
}

// The change flag: 0 when no value moves (lr 0; or zero gradient and moments without decay), 1
// when one element alone moves (the rest have zero gradient and moments), on 1 and 2 threads.
TEST(AdamW, ChangedFlagIsSetExactlyWhenAValueChanges) {
  const int64_t n = 100003;  // above the parallel threshold
  const auto pd = test_values(n, 11);
  AdamWParams hp;
  hp.lr = 1e-3;
  hp.step = 2;
  auto flag_of = [&](const AdamWParams& h, const std::vector<float>& g, int threads, int32_t start = 0) {
    omp_set_num_threads(threads);
    std::vector<float> p(pd.begin(), pd.end()), m(n, 0.0f), v(n, 0.0f);
    int32_t changed = start;
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, h, &changed);
    const bool moved = std::memcmp(p.data(), std::vector<float>(pd.begin(), pd.end()).data(), sizeof(float) * n) != 0;
    EXPECT_EQ(changed != 0, moved || start != 0) << "threads " << threads;
    return changed;
  };
  const int saved = omp_get_max_threads();
  std::vector<float> zero(n, 0.0f), one_hot(n, 0.0f);
  one_hot[n - 2] = 0.5f;  // in the second thread's half
  AdamWParams frozen = hp;
  frozen.lr = 0.0;
  frozen.weight_decay = 0.1;
  AdamWParams decayed = hp;
  decayed.weight_decay = 0.1;
  for (int threads : {1, 2}) {
    EXPECT_EQ(flag_of(hp, zero, threads), 0);
    EXPECT_EQ(flag_of(frozen, one_hot, threads), 0);
    EXPECT_EQ(flag_of(hp, one_hot, threads), 1);
    EXPECT_EQ(flag_of(decayed, zero, threads), 1);  // decay alone moves the values
    EXPECT_EQ(flag_of(hp, zero, threads, 1), 1);    // never cleared
  }
  omp_set_num_threads(saved);
}

TEST(AdamWErrors, BadHyperParametersThrow) {
  std::vector<float> p(4, 1.0f), g(4, 1.0f), m(4, 0.0f), v(4, 0.0f);
  AdamWParams hp;
  hp.step = 0;
  EXPECT_THROW(adamw_update(p.data(), g.data(), m.data(), v.data(), 4, hp), ssiat::Error);
  hp.step = 1;
  hp.beta2 = 1.0;
  EXPECT_THROW(adamw_update(p.data(), g.data(), m.data(), v.data(), 4, hp), ssiat::Error);
  for (float x : p) EXPECT_EQ(x, 1.0f);
}

}  // namespace
