// Tests for kernels/rmsnorm.h: forward against the formula written out here (junk-filled
// outputs), backward by finite differences in float64, `+=` into dinp and dweight, float32 vs
// float64, bitwise equality for 1 and 2 OpenMP threads, bad shapes.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/check.h"
#include "kernels/rmsnorm.h"
#include "tests/common/gradcheck.h"

namespace {

using ssiat::kernels::cpu::rmsnorm_backward;
using ssiat::kernels::cpu::rmsnorm_forward;
using ssiat::testing::gradcheck_relerr;
using ssiat::testing::test_values;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(RmsnormForward, MatchesFormula) {
  const int64_t N = 5, C = 37;
  const double eps = 1e-5;
  const auto inp = test_values(N * C, 1, -3.0, 3.0), w = test_values(C, 2, 0.5, 1.5);
  std::vector<double> out(N * C, kNaN), rstd(N, kNaN);
  rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), N, C, eps);
  for (int64_t n = 0; n < N; n++) {
    double ms = 0;
    for (int64_t c = 0; c < C; c++) ms += inp[n * C + c] * inp[n * C + c];
    const double r = 1.0 / std::sqrt(ms / C + eps);
    EXPECT_NEAR(rstd[n], r, 1e-14 * r);
    for (int64_t c = 0; c < C; c++) EXPECT_NEAR(out[n * C + c], inp[n * C + c] * r * w[c], 1e-13);
  }
}

TEST(RmsnormForward, Float32AgreesWithFloat64) {
  const int64_t N = 11, C = 300;
  const auto inp = test_values(N * C, 3, -2.0, 2.0), w = test_values(C, 4, 0.5, 1.5);
  std::vector<double> out(N * C), rstd(N);
  rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), N, C, 1e-6);
  const std::vector<float> inpf(inp.begin(), inp.end()), wf(w.begin(), w.end());
  std::vector<float> outf(N * C), rstdf(N);
  rmsnorm_forward(outf.data(), rstdf.data(), inpf.data(), wf.data(), N, C, 1e-6f);
  for (int64_t n = 0; n < N; n++) EXPECT_NEAR(rstdf[n], rstd[n], 1e-6 * rstd[n]);
  for (int64_t i = 0; i < N * C; i++) EXPECT_NEAR(outf[i], out[i], 2e-6 * (1 + std::abs(out[i])));
}

TEST(RmsnormBackward, FiniteDifferences) {
  const int64_t N = 4, C = 21;
  const double eps = 1e-5;
  auto inp = test_values(N * C, 5, -2.0, 2.0), w = test_values(C, 6, 0.5, 1.5);
  const auto R = test_values(N * C, 7);  // loss = sum(out * R), dout = R
  std::vector<double> out(N * C), rstd(N);
  auto loss = [&] {
    rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), N, C, eps);
    double l = 0;
    for (int64_t i = 0; i < N * C; i++) l += out[i] * R[i];
    return l;
  };
  loss();  // fills rstd for the analytic backward
  std::vector<double> dinp(N * C, 0.0), dw(C, 0.0);
  rmsnorm_backward(dinp.data(), dw.data(), R.data(), inp.data(), w.data(), rstd.data(), N, C);
  EXPECT_LE(gradcheck_relerr(inp, dinp, loss), 1e-6);
  EXPECT_LE(gradcheck_relerr(w, dw, loss), 1e-6);
}

TEST(RmsnormBackward, AccumulatesIntoBothGradients) {
  const int64_t N = 6, C = 19;
  const auto inp = test_values(N * C, 8), w = test_values(C, 9), dout = test_values(N * C, 10);
  std::vector<double> out(N * C), rstd(N);
  rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), N, C, 1e-5);
  std::vector<double> dinp0(N * C, 0.0), dw0(C, 0.0), dinp1(N * C, 1.0), dw1(C, -2.0);
  rmsnorm_backward(dinp0.data(), dw0.data(), dout.data(), inp.data(), w.data(), rstd.data(), N, C);
  rmsnorm_backward(dinp1.data(), dw1.data(), dout.data(), inp.data(), w.data(), rstd.data(), N, C);
  for (int64_t i = 0; i < N * C; i++) EXPECT_NEAR(dinp1[i], 1.0 + dinp0[i], 1e-14);
  for (int64_t c = 0; c < C; c++) EXPECT_NEAR(dw1[c], -2.0 + dw0[c], 1e-14);
  double nonzero = 0;
  for (double v : dinp0) nonzero += std::abs(v);
  EXPECT_GT(nonzero, 0.0);
}

TEST(RmsnormThreads, BitwiseEqualForOneAndTwoThreads) {
  const int64_t N = 300, C = 203;
  const auto id = test_values(N * C, 11), wd = test_values(C, 12, 0.5, 1.5), dd = test_values(N * C, 13);
  const std::vector<float> inp(id.begin(), id.end()), w(wd.begin(), wd.end()), dout(dd.begin(), dd.end());
  struct Result {
    std::vector<float> out, rstd, dinp, dw;
  };
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Result r{std::vector<float>(N * C), std::vector<float>(N), std::vector<float>(N * C, 0.125f),
             std::vector<float>(C, 0.25f)};
    rmsnorm_forward(r.out.data(), r.rstd.data(), inp.data(), w.data(), N, C, 1e-5f);
    rmsnorm_backward(r.dinp.data(), r.dw.data(), dout.data(), inp.data(), w.data(), r.rstd.data(), N, C);
    return r;
  };
  const int saved = omp_get_max_threads();
  const Result a = run(1), b = run(2);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(a.out.data(), b.out.data(), sizeof(float) * a.out.size()), 0);
  EXPECT_EQ(std::memcmp(a.rstd.data(), b.rstd.data(), sizeof(float) * a.rstd.size()), 0);
  EXPECT_EQ(std::memcmp(a.dinp.data(), b.dinp.data(), sizeof(float) * a.dinp.size()), 0);
  EXPECT_EQ(std::memcmp(a.dw.data(), b.dw.data(), sizeof(float) * a.dw.size()), 0);
}

TEST(RmsnormErrors, BadShapeThrows) {
  std::vector<float> buf(8);
  EXPECT_THROW(rmsnorm_forward(buf.data(), buf.data(), buf.data(), buf.data(), 2, 0, 1e-5f), ssiat::Error);
  EXPECT_THROW(rmsnorm_backward(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), -1, 4),
               ssiat::Error);
}

}  // namespace
