// Tests for kernels/crossentropy.h: losses against a logsumexp loop written here, ignored
// targets, stability for huge logits, the fused gradient by finite differences in float64
// (ignored rows included), float32 vs float64, bitwise equality for 1 and 2 OpenMP threads, and a
// target >= V throwing with its row.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "kernels/crossentropy.h"
#include "tests/common/gradcheck.h"

namespace {

using ssiat::kernels::cpu::crossentropy_forward;
using ssiat::kernels::cpu::crossentropy_fused;
using ssiat::testing::gradcheck_relerr;
using ssiat::testing::test_values;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// loss = log(sum_v e^(x_v - m)) + m - x_t, in long double.
double ref_loss(const double* x, int64_t V, int32_t t) {
  if (t < 0) return 0.0;
  long double m = x[0];
  for (int64_t v = 1; v < V; v++) m = std::max<long double>(m, x[v]);
  long double s = 0;
  for (int64_t v = 0; v < V; v++) s += std::exp(static_cast<long double>(x[v]) - m);
  return static_cast<double>(std::log(s) + m - x[t]);
}

TEST(CrossentropyForward, MatchesLogSumExpAndIgnoresNegativeTargets) {
  const int64_t N = 6, V = 53;
  const auto logits = test_values(N * V, 1, -5.0, 5.0);
  const std::vector<int32_t> targets = {3, -1, 52, 0, -100, 17};
  std::vector<double> losses(N, kNaN);
  const std::vector<double> before = logits;
  crossentropy_forward(losses.data(), logits.data(), targets.data(), N, V);
  for (int64_t n = 0; n < N; n++) {
    EXPECT_NEAR(losses[n], ref_loss(logits.data() + n * V, V, targets[n]), 1e-13) << "n=" << n;
  }
  EXPECT_EQ(losses[1], 0.0);
  EXPECT_EQ(losses[4], 0.0);
  EXPECT_EQ(std::memcmp(before.data(), logits.data(), sizeof(double) * before.size()), 0);
}

TEST(CrossentropyForward, StableForHugeLogitsAndUniformRow) {
  const int64_t V = 1000;
  // Uniform logits: loss = log(V) exactly in theory, whatever the offset.
  for (const float offset : {0.0f, 1000.0f, -1000.0f, 80.0f}) {
    std::vector<float> logits(V, offset), losses(1);
    const int32_t t = 7;
    crossentropy_forward(losses.data(), logits.data(), &t, 1, V);
    EXPECT_NEAR(losses[0], std::log(1000.0), 1e-5) << "offset " << offset;
  }
  // Shifting every logit by a constant leaves the loss unchanged (naive exp would overflow).
  const auto base = test_values(V, 2, -3.0, 3.0);
  std::vector<float> a(base.begin(), base.end()), b(V);
  for (int64_t v = 0; v < V; v++) b[v] = a[v] + 500.0f;
  float la = 0, lb = 0;
  const int32_t t = 11;
  crossentropy_forward(&la, a.data(), &t, 1, V);
  crossentropy_forward(&lb, b.data(), &t, 1, V);
  EXPECT_TRUE(std::isfinite(lb));
  EXPECT_NEAR(la, lb, 1e-3);  // b's logits are a's rounded to float spacing near 500 (3e-5)
}

TEST(CrossentropyFused, LossesMatchForwardAndGradientFormula) {
  const int64_t N = 5, V = 37;
  const auto logits = test_values(N * V, 3, -4.0, 4.0);
  const std::vector<int32_t> targets = {0, 36, -1, 12, 5};
  const double dloss = 0.37;
  std::vector<double> lf(N), lfused(N, kNaN), g = logits;
  crossentropy_forward(lf.data(), logits.data(), targets.data(), N, V);
  crossentropy_fused(lfused.data(), g.data(), targets.data(), N, V, dloss);
  for (int64_t n = 0; n < N; n++) {
    EXPECT_NEAR(lfused[n], lf[n], 1e-14);
    const double* x = logits.data() + n * V;
    long double s = 0, m = x[0];
    for (int64_t v = 1; v < V; v++) m = std::max<long double>(m, x[v]);
    for (int64_t v = 0; v < V; v++) s += std::exp(x[v] - m);
    double row_sum = 0;
    for (int64_t v = 0; v < V; v++) {
      const double expect = targets[n] < 0 ? 0.0
                                           : dloss * static_cast<double>(std::exp(x[v] - m) / s) -
                                                 (v == targets[n] ? dloss : 0.0);
      EXPECT_NEAR(g[n * V + v], expect, 1e-15) << "n=" << n << " v=" << v;
      row_sum += g[n * V + v];
    }
    EXPECT_NEAR(row_sum, 0.0, 1e-14);  // softmax sums to one
  }
}

TEST(CrossentropyFused, FiniteDifferencesWithIgnoredTargets) {
  const int64_t N = 4, V = 9;
  auto logits = test_values(N * V, 4, -3.0, 3.0);
  const std::vector<int32_t> targets = {2, -1, 8, 0};
  const double dloss = 0.8;
  std::vector<double> losses(N);
  auto loss = [&] {  // dloss * sum_n loss[n]
    crossentropy_forward(losses.data(), logits.data(), targets.data(), N, V);
    double l = 0;
    for (double v : losses) l += v;
    return dloss * l;
  };
  std::vector<double> grad = logits;
  crossentropy_fused(losses.data(), grad.data(), targets.data(), N, V, dloss);
  for (int64_t v = 0; v < V; v++) EXPECT_EQ(grad[1 * V + v], 0.0);  // the ignored row
  EXPECT_LE(gradcheck_relerr(logits, grad, loss), 1e-6);
}

TEST(CrossentropyForward, Float32AgreesWithFloat64) {
  const int64_t N = 7, V = 5001;
  const auto logits = test_values(N * V, 5, -10.0, 10.0);
  const std::vector<int32_t> targets = {0, 5000, 17, -1, 2500, 99, 4096};
  const std::vector<float> lf(logits.begin(), logits.end());
  std::vector<double> loss(N), gd = logits;
  std::vector<float> lossf(N), gf = lf;
  crossentropy_fused(loss.data(), gd.data(), targets.data(), N, V, 1.0);
  crossentropy_fused(lossf.data(), gf.data(), targets.data(), N, V, 1.0f);
  for (int64_t n = 0; n < N; n++) EXPECT_NEAR(lossf[n], loss[n], 1e-5 * (1 + loss[n]));
  for (int64_t i = 0; i < N * V; i++) EXPECT_NEAR(gf[i], gd[i], 1e-6);
}

TEST(CrossentropyThreads, BitwiseEqualForOneAndTwoThreads) {
  const int64_t N = 64, V = 1000;
  const auto ld = test_values(N * V, 6, -8.0, 8.0);
  const std::vector<float> logits(ld.begin(), ld.end());
  std::vector<int32_t> targets(N);
  for (int64_t n = 0; n < N; n++) targets[n] = n % 7 == 3 ? -1 : static_cast<int32_t>((n * 37) % V);
  auto run = [&](int threads, std::vector<float>& lf, std::vector<float>& lfused, std::vector<float>& g) {
    omp_set_num_threads(threads);
    lf.assign(N, 0.0f);
    lfused.assign(N, 0.0f);
    g = logits;
    crossentropy_forward(lf.data(), logits.data(), targets.data(), N, V);
    crossentropy_fused(lfused.data(), g.data(), targets.data(), N, V, 1.0f / N);
  };
  const int saved = omp_get_max_threads();
  std::vector<float> a1, b1, g1, a2, b2, g2;
  run(1, a1, b1, g1);
  run(2, a2, b2, g2);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(a1.data(), a2.data(), sizeof(float) * N), 0);
  EXPECT_EQ(std::memcmp(b1.data(), b2.data(), sizeof(float) * N), 0);
  EXPECT_EQ(std::memcmp(g1.data(), g2.data(), sizeof(float) * g1.size()), 0);
}

}  // namespace
