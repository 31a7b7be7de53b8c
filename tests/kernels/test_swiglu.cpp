// Tests for kernels/swiglu.h: forward against silu(g) * u written with std::exp, backward by
// finite differences in float64 (every element of both halves written over junk), float32 vs
// float64, extreme inputs stay finite, bitwise equality for 1 and 2 OpenMP threads; plus the
// accuracy of the kernels' internal vectorisable exp against std::exp.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/check.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/swiglu.h"
#include "tests/common/gradcheck.h"

namespace {

using ssiat::kernels::cpu::swiglu_backward;
using ssiat::kernels::cpu::swiglu_forward;
using ssiat::testing::gradcheck_relerr;
using ssiat::testing::test_values;

double silu_ref(double x) { return x / (1.0 + std::exp(-x)); }

TEST(SwigluForward, MatchesSiluTimesUp) {
  const int64_t N = 6, F = 29;
  const auto inp = test_values(N * 2 * F, 1, -6.0, 6.0);
  std::vector<double> out(N * F, std::numeric_limits<double>::quiet_NaN());
  swiglu_forward(out.data(), inp.data(), N, F);
  for (int64_t n = 0; n < N; n++)
    for (int64_t f = 0; f < F; f++) {
      const double ref = silu_ref(inp[n * 2 * F + f]) * inp[n * 2 * F + F + f];
      EXPECT_NEAR(out[n * F + f], ref, 1e-14 * (1 + std::abs(ref))) << "n=" << n << " f=" << f;
    }
}

TEST(SwigluForward, Float32AgreesWithFloat64AndExtremesStayFinite) {
  const int64_t N = 3, F = 40;
  auto inp = test_values(N * 2 * F, 2, -8.0, 8.0);
  inp[0] = -200.0;  // gate far in the negative tail: silu -> -0
  inp[1] = 200.0;   // far positive: silu -> x
  inp[2] = -30.0;
  const std::vector<float> inpf(inp.begin(), inp.end());
  std::vector<double> out(N * F);
  std::vector<float> outf(N * F);
  swiglu_forward(out.data(), inp.data(), N, F);
  swiglu_forward(outf.data(), inpf.data(), N, F);
  for (int64_t i = 0; i < N * F; i++) {
    ASSERT_TRUE(std::isfinite(outf[i])) << i;
    EXPECT_NEAR(outf[i], out[i], 1e-6 * (1 + std::abs(out[i]))) << "i=" << i;
  }
  EXPECT_NEAR(out[0], 0.0, 1e-30);
  EXPECT_EQ(out[1], 200.0 * inp[F + 1]);  // silu(200) = 200 to double precision
}

TEST(SwigluBackward, FiniteDifferencesAndOverwrites) {
  const int64_t N = 3, F = 7;
  auto inp = test_values(N * 2 * F, 3, -4.0, 4.0);
  const auto R = test_values(N * F, 4);  // loss = sum(out * R), dout = R
  std::vector<double> out(N * F);
  auto loss = [&] {
    swiglu_forward(out.data(), inp.data(), N, F);
    double l = 0;
    for (int64_t i = 0; i < N * F; i++) l += out[i] * R[i];
    return l;
  };
  std::vector<double> dinp(N * 2 * F, std::numeric_limits<double>::quiet_NaN());
  swiglu_backward(dinp.data(), R.data(), inp.data(), N, F);
  for (double v : dinp) ASSERT_TRUE(std::isfinite(v));
  EXPECT_LE(gradcheck_relerr(inp, dinp, loss), 1e-6);
}

TEST(SwigluThreads, BitwiseEqualForOneAndTwoThreads) {
  const int64_t N = 130, F = 301;
  const auto id = test_values(N * 2 * F, 5, -6.0, 6.0), dd = test_values(N * F, 6);
  const std::vector<float> inp(id.begin(), id.end()), dout(dd.begin(), dd.end());
  auto run = [&](int threads, std::vector<float>& out, std::vector<float>& dinp) {
    omp_set_num_threads(threads);
    out.assign(N * F, 0.0f);
    dinp.assign(N * 2 * F, 0.0f);
    swiglu_forward(out.data(), inp.data(), N, F);
    swiglu_backward(dinp.data(), dout.data(), inp.data(), N, F);
  };
  const int saved = omp_get_max_threads();
  std::vector<float> o1, d1, o2, d2;
  run(1, o1, d1);
  run(2, o2, d2);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(o1.data(), o2.data(), sizeof(float) * o1.size()), 0);
  EXPECT_EQ(std::memcmp(d1.data(), d2.data(), sizeof(float) * d1.size()), 0);
}

TEST(SwigluErrors, NegativeShapeThrows) {
  std::vector<float> buf(4);
  EXPECT_THROW(swiglu_forward(buf.data(), buf.data(), -1, 2), ssiat::Error);
  EXPECT_THROW(swiglu_backward(buf.data(), buf.data(), buf.data(), 2, -2), ssiat::Error);
}

// Relative error of detail::exp_approx against std::exp in units of the type's epsilon, over a
// dense grid of the whole unclamped range.
template <typename T>
double max_exp_error_eps(T lo, T hi) {
  double worst = 0;
  const int kSteps = 200001;
  for (int i = 0; i < kSteps; i++) {
    const T x = lo + (hi - lo) * static_cast<T>(i) / static_cast<T>(kSteps - 1);
    const long double ref = std::exp(static_cast<long double>(x));
    const long double got = ssiat::kernels::cpu::detail::exp_approx(x);
    const double rel = static_cast<double>(std::fabs((got - ref) / ref));
    worst = std::max(worst, rel / std::numeric_limits<T>::epsilon());
  }
  return worst;
}

TEST(SwigluExp, VectorisableExpIsAccurate) {
  EXPECT_LE(max_exp_error_eps<float>(-87.0f, 88.0f), 2.0);
  EXPECT_LE(max_exp_error_eps<double>(-708.0, 709.0), 2.0);
  using ssiat::kernels::cpu::detail::exp_approx;
  EXPECT_EQ(exp_approx(0.0), 1.0);
  EXPECT_EQ(exp_approx(0.0f), 1.0f);
  EXPECT_GT(exp_approx(-1e4f), 0.0f);  // clamped: tiny, positive, finite
  EXPECT_TRUE(std::isfinite(exp_approx(1e4)));
  EXPECT_TRUE(std::isnan(exp_approx(std::numeric_limits<double>::quiet_NaN())));
}

}  // namespace
