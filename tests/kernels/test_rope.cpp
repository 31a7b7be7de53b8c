// Tests for kernels/rope.h: tables against the closed form, forward against the Hugging Face
// rotate_half formula written out here, backward by finite differences and as the inverse,
// float32 vs float64, and thread-count independence.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/check.h"
#include "kernels/rope.h"
#include "tests/common/gradcheck.h"

namespace {

using ssiat::kernels::cpu::rope_backward;
using ssiat::kernels::cpu::rope_forward;
using ssiat::kernels::cpu::rope_tables;
using ssiat::testing::gradcheck_relerr;
using ssiat::testing::test_values;

struct RopeShape {
  int64_t B, T, NH, NKV, HS;
  int64_t c3() const { return (NH + 2 * NKV) * HS; }
  int64_t n() const { return B * T * c3(); }
};

TEST(RopeTables, MatchClosedForm) {
  const int64_t T = 37, HS = 16;
  const double theta = 10000.0;
  std::vector<double> c(T * HS / 2), s(T * HS / 2);
  std::vector<float> cf(T * HS / 2), sf(T * HS / 2);
  rope_tables(c.data(), s.data(), T, HS, theta);
  rope_tables(cf.data(), sf.data(), T, HS, theta);
  for (int64_t t = 0; t < T; t++)
    for (int64_t j = 0; j < HS / 2; j++) {
      // angle(t, j) = t * theta^(-2j/HS), the formula in the header (written with exp/log here).
      const double angle = static_cast<double>(t) * std::exp(-2.0 * j / HS * std::log(theta));
      EXPECT_NEAR(c[t * HS / 2 + j], std::cos(angle), 1e-12) << "t=" << t << " j=" << j;
      EXPECT_NEAR(s[t * HS / 2 + j], std::sin(angle), 1e-12) << "t=" << t << " j=" << j;
      EXPECT_EQ(cf[t * HS / 2 + j], static_cast<float>(c[t * HS / 2 + j]));
      EXPECT_EQ(sf[t * HS / 2 + j], static_cast<float>(s[t * HS / 2 + j]));
    }
  // Position 0 is the identity rotation.
  for (int64_t j = 0; j < HS / 2; j++) {
    EXPECT_EQ(c[j], 1.0);
    EXPECT_EQ(s[j], 0.0);
  }
}

TEST(RopeForward, MatchesHfRotateHalf) {
  const RopeShape sh{2, 9, 4, 2, 8};
  const int64_t half = sh.HS / 2;
  std::vector<double> x = test_values(sh.n(), 11);
  std::vector<double> c(sh.T * half), s(sh.T * half);
  rope_tables(c.data(), s.data(), sh.T, sh.HS, 500000.0);
  std::vector<double> y = x;
  rope_forward(y.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  for (int64_t b = 0; b < sh.B; b++)
    for (int64_t t = 0; t < sh.T; t++)
      for (int64_t h = 0; h < sh.NH + 2 * sh.NKV; h++) {
        const int64_t base = (b * sh.T + t) * sh.c3() + h * sh.HS;
        for (int64_t i = 0; i < sh.HS; i++) {
          if (h >= sh.NH + sh.NKV) {  // v heads are untouched
            EXPECT_EQ(y[base + i], x[base + i]);
            continue;
          }
          // HF: x * cat(cos, cos) + rotate_half(x) * cat(sin, sin), rotate_half(x) = cat(-x2, x1).
          const double cos_full = c[t * half + i % half];
          const double sin_full = s[t * half + i % half];
          const double rot = i < half ? -x[base + i + half] : x[base + i - half];
          EXPECT_NEAR(y[base + i], x[base + i] * cos_full + rot * sin_full, 1e-14);
        }
      }
}

TEST(RopeBackward, InvertsForward) {
  const RopeShape sh{2, 13, 3, 3, 12};
  std::vector<double> x = test_values(sh.n(), 12);
  std::vector<double> c(sh.T * sh.HS / 2), s(sh.T * sh.HS / 2);
  rope_tables(c.data(), s.data(), sh.T, sh.HS, 10000.0);
  std::vector<double> y = x;
  rope_forward(y.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  double moved = 0;
  for (int64_t i = 0; i < sh.n(); i++) moved = std::max(moved, std::abs(y[i] - x[i]));
  EXPECT_GT(moved, 0.1);  // the rotation did something
  rope_backward(y.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  for (int64_t i = 0; i < sh.n(); i++) EXPECT_NEAR(y[i], x[i], 1e-14) << i;
}

TEST(RopeBackward, GradcheckFloat64) {
  const RopeShape sh{2, 7, 4, 2, 6};
  std::vector<double> x = test_values(sh.n(), 13);
  const std::vector<double> R = test_values(sh.n(), 14);
  std::vector<double> c(sh.T * sh.HS / 2), s(sh.T * sh.HS / 2);
  rope_tables(c.data(), s.data(), sh.T, sh.HS, 10000.0);
  auto loss = [&] {
    std::vector<double> y = x;
    rope_forward(y.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
    double acc = 0;
    for (int64_t i = 0; i < sh.n(); i++) acc += y[i] * R[i];
    return acc;
  };
  std::vector<double> g = R;  // dL/dy = R
  rope_backward(g.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  EXPECT_LE(gradcheck_relerr(x, g, loss), 1e-6);
}

TEST(RopeForward, Float32AgreesWithFloat64) {
  const RopeShape sh{2, 33, 2, 1, 16};
  const std::vector<double> x = test_values(sh.n(), 15);
  std::vector<double> c(sh.T * sh.HS / 2), s(sh.T * sh.HS / 2);
  std::vector<float> cf(c.size()), sf(s.size());
  rope_tables(c.data(), s.data(), sh.T, sh.HS, 10000.0);
  rope_tables(cf.data(), sf.data(), sh.T, sh.HS, 10000.0);
  std::vector<double> y = x;
  std::vector<float> yf(x.begin(), x.end());
  rope_forward(y.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  rope_forward(yf.data(), cf.data(), sf.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  for (int64_t i = 0; i < sh.n(); i++) EXPECT_NEAR(yf[i], y[i], 1e-6) << i;
  rope_backward(y.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  rope_backward(yf.data(), cf.data(), sf.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  for (int64_t i = 0; i < sh.n(); i++) EXPECT_NEAR(yf[i], y[i], 1e-6) << i;
}

TEST(RopeForward, SameBitsForOneAndTwoThreads) {
  const RopeShape sh{3, 150, 4, 2, 64};  // large enough for the kernel to use threads
  const std::vector<double> xd = test_values(sh.n(), 16);
  const std::vector<float> x(xd.begin(), xd.end());
  std::vector<float> c(sh.T * sh.HS / 2), s(sh.T * sh.HS / 2);
  rope_tables(c.data(), s.data(), sh.T, sh.HS, 10000.0);
  const int saved = omp_get_max_threads();
  std::vector<float> y1 = x, y2 = x;
  omp_set_num_threads(1);
  rope_forward(y1.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  rope_backward(y1.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  omp_set_num_threads(2);
  rope_forward(y2.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  rope_backward(y2.data(), c.data(), s.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.HS);
  omp_set_num_threads(saved);
  EXPECT_EQ(y1, y2);
}

TEST(RopeForward, RejectsOddHeadSize) {
  std::vector<double> x(2 * 5 * 3), c(2), s(2);
  EXPECT_THROW(rope_forward(x.data(), c.data(), s.data(), 1, 2, 1, 1, 5), ssiat::Error);
}

}  // namespace
