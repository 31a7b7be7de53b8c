// Tests for kernels/elementwise.h: add/scale against loops written here, sum_squares against a
// closed form (sum of k^2 = n(n+1)(2n+1)/6, exact in double) and a long double loop, float input
// squared in double, bitwise equality for 1 and 2 OpenMP threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/check.h"
#include "kernels/elementwise.h"
#include "tests/common/gradcheck.h"

namespace {

using ssiat::kernels::cpu::add_inplace;
using ssiat::kernels::cpu::scale_inplace;
using ssiat::kernels::cpu::sum_squares;
using ssiat::testing::test_values;

TEST(Elementwise, AddAndScaleMatchLoops) {
  for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{37}, int64_t{70001}}) {
    const auto x0 = test_values(n, 1), y = test_values(n, 2);
    std::vector<double> x = x0;
    add_inplace(x.data(), y.data(), n);
    for (int64_t i = 0; i < n; i++) ASSERT_EQ(x[i], x0[i] + y[i]);
    scale_inplace(x.data(), -0.75, n);
    for (int64_t i = 0; i < n; i++) ASSERT_EQ(x[i], (x0[i] + y[i]) * -0.75);
    std::vector<float> xf(x0.begin(), x0.end());
    const std::vector<float> yf(y.begin(), y.end());
    add_inplace(xf.data(), yf.data(), n);
    for (int64_t i = 0; i < n; i++) ASSERT_EQ(xf[i], static_cast<float>(x0[i]) + yf[i]);
  }
}

TEST(SumSquares, ClosedFormForIntegers) {
  // Every partial sum is an integer below 2^53, so any summation order gives the exact value.
  for (const int64_t n : {int64_t{1}, int64_t{16}, int64_t{17}, int64_t{16384}, int64_t{100003}}) {
    std::vector<double> x(n);
    for (int64_t i = 0; i < n; i++) x[i] = static_cast<double>(i + 1);
    const double expect = static_cast<double>(n) * (n + 1) * (2 * n + 1) / 6;
    EXPECT_EQ(sum_squares(x.data(), n), expect) << "n=" << n;
    std::vector<float> xf(x.begin(), x.end());  // integers up to 1e5 are exact in float
    EXPECT_EQ(sum_squares(xf.data(), n), expect) << "n=" << n;
  }
  EXPECT_EQ(sum_squares<double>(nullptr, 0), 0.0);
}

TEST(SumSquares, MatchesLongDoubleLoopAndSquaresFloatInDouble) {
  const int64_t n = 54321;
  const auto x = test_values(n, 3, -3.0, 3.0);
  long double ref = 0;
  for (double v : x) ref += static_cast<long double>(v) * v;
  EXPECT_NEAR(sum_squares(x.data(), n), static_cast<double>(ref), 1e-13 * static_cast<double>(ref));
  // float input: the result is the double sum of the float values' squares, not a float sum.
  const std::vector<float> xf(x.begin(), x.end());
  long double reff = 0;
  for (float v : xf) reff += static_cast<long double>(v) * v;
  EXPECT_NEAR(sum_squares(xf.data(), n), static_cast<double>(reff), 1e-13 * static_cast<double>(reff));
}

TEST(SumSquares, BitwiseEqualForOneAndTwoThreads) {
  const int64_t n = 1000003;
  const auto xd = test_values(n, 4);
  const std::vector<float> xf(xd.begin(), xd.end());
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double a = sum_squares(xd.data(), n), af = sum_squares(xf.data(), n);
  omp_set_num_threads(2);
  const double b = sum_squares(xd.data(), n), bf = sum_squares(xf.data(), n);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(&a, &b, sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(&af, &bf, sizeof(double)), 0);
}

TEST(ElementwiseErrors, NegativeSizeThrows) {
  std::vector<float> x(2);
  EXPECT_THROW(add_inplace(x.data(), x.data(), -1), ssiat::Error);
  EXPECT_THROW(scale_inplace(x.data(), 2.0f, -1), ssiat::Error);
  EXPECT_THROW(sum_squares(x.data(), -5), ssiat::Error);
}

}  // namespace
