// Tests for kernels/matmul.h: forward and backward against triple loops written here, the `=` /
// `+=` contract (outputs pre-filled with junk or ones), finite-difference gradients in float64,
// float32 vs float64, many-tile shapes, bitwise equality for 1-4 threads, degenerate shapes, bad shapes.
#include <cblas.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/check.h"
#include "kernels/matmul.h"
#include "tests/common/gradcheck.h"

namespace {

using ssiat::kernels::cpu::matmul_backward;
using ssiat::kernels::cpu::matmul_forward;
using ssiat::testing::gradcheck_relerr;
using ssiat::testing::test_values;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// out[n, o] = sum_c inp[n, c] * weight[o, c]
std::vector<double> naive_forward(const std::vector<double>& inp, const std::vector<double>& w, int64_t N,
                                  int64_t C, int64_t OC) {
  std::vector<double> out(N * OC, 0.0);
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OC; o++) {
      double s = 0;
      for (int64_t c = 0; c < C; c++) s += inp[n * C + c] * w[o * C + c];
      out[n * OC + o] = s;
    }
  return out;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

TEST(MatmulForward, MatchesTripleLoopAndOverwrites) {
  const int64_t N = 7, C = 13, OC = 5;
  const auto inp = test_values(N * C, 1), w = test_values(OC * C, 2);
  std::vector<double> out(N * OC, kNaN);  // junk: forward must write every element
  matmul_forward(out.data(), inp.data(), w.data(), N, C, OC);
  const auto ref = naive_forward(inp, w, N, C, OC);
  for (int64_t i = 0; i < N * OC; i++) EXPECT_NEAR(out[i], ref[i], 1e-13) << "i=" << i;
}

TEST(MatmulForward, Float32AgreesWithFloat64) {
  const int64_t N = 33, C = 70, OC = 19;
  const auto inp = test_values(N * C, 3), w = test_values(OC * C, 4);
  std::vector<double> out(N * OC);
  std::vector<float> outf(N * OC, 1e30f);
  matmul_forward(out.data(), inp.data(), w.data(), N, C, OC);
  const auto inpf = to_float(inp), wf = to_float(w);
  matmul_forward(outf.data(), inpf.data(), wf.data(), N, C, OC);
  for (int64_t i = 0; i < N * OC; i++) EXPECT_NEAR(outf[i], out[i], 2e-5) << "i=" << i;
}

TEST(MatmulBackward, MatchesTripleLoopWithWriteAndAccumulate) {
  const int64_t N = 6, C = 9, OC = 4;
  const auto inp = test_values(N * C, 5), w = test_values(OC * C, 6), dout = test_values(N * OC, 7);
  std::vector<double> dinp(N * C, kNaN);  // `=`: junk must disappear
  std::vector<double> dw(OC * C, 1.0);    // `+=`: the ones must stay
  matmul_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      double s = 0;
      for (int64_t o = 0; o < OC; o++) s += dout[n * OC + o] * w[o * C + c];
      EXPECT_NEAR(dinp[n * C + c], s, 1e-13);
    }
  for (int64_t o = 0; o < OC; o++)
    for (int64_t c = 0; c < C; c++) {
      double s = 0;
      for (int64_t n = 0; n < N; n++) s += dout[n * OC + o] * inp[n * C + c];
      EXPECT_NEAR(dw[o * C + c], 1.0 + s, 1e-13);
    }
  // A second call adds the same gradient again (micro-batch accumulation).
  std::vector<double> dw2 = dw;
  matmul_backward(dinp.data(), dw2.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  for (int64_t i = 0; i < OC * C; i++) EXPECT_NEAR(dw2[i] - dw[i], dw[i] - 1.0, 1e-13);
}

TEST(MatmulBackward, NullDinpSkipsInputGradient) {
  const int64_t N = 5, C = 8, OC = 3;
  const auto inp = test_values(N * C, 8), w = test_values(OC * C, 9), dout = test_values(N * OC, 10);
  std::vector<double> dw_a(OC * C, 0.5), dw_b(OC * C, 0.5), dinp(N * C);
  matmul_backward(dinp.data(), dw_a.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  matmul_backward<double>(nullptr, dw_b.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  EXPECT_EQ(std::memcmp(dw_a.data(), dw_b.data(), sizeof(double) * dw_a.size()), 0);
}

TEST(MatmulBackward, FiniteDifferences) {
  const int64_t N = 4, C = 6, OC = 5;
  auto inp = test_values(N * C, 11), w = test_values(OC * C, 12);
  const auto R = test_values(N * OC, 13);  // loss = sum(out * R), so dout = R
  std::vector<double> out(N * OC);
  auto loss = [&] {
    matmul_forward(out.data(), inp.data(), w.data(), N, C, OC);
    double l = 0;
    for (int64_t i = 0; i < N * OC; i++) l += out[i] * R[i];
    return l;
  };
  std::vector<double> dinp(N * C), dw(OC * C, 0.0);
  matmul_backward(dinp.data(), dw.data(), R.data(), inp.data(), w.data(), N, C, OC);
  EXPECT_LE(gradcheck_relerr(inp, dinp, loss), 1e-6);
  EXPECT_LE(gradcheck_relerr(w, dw, loss), 1e-6);
}

// Shapes spanning several output tiles in every GEMM (forward (N, OC), dinp (N, C), dweight
// (OC, C)) with ragged last tiles, so a wrong tile offset or transpose is caught.
TEST(MatmulTiles, ManyTilesMatchNaiveLoops) {
  const int64_t N = 300, C = 290, OC = 530;
  const auto inp = test_values(N * C, 17), w = test_values(OC * C, 18), dout = test_values(N * OC, 19);
  std::vector<double> out(N * OC, kNaN), dinp(N * C, kNaN), dw(OC * C, 0.5);
  matmul_forward(out.data(), inp.data(), w.data(), N, C, OC);
  matmul_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  const auto ref = naive_forward(inp, w, N, C, OC);
  for (int64_t i = 0; i < N * OC; i++) ASSERT_NEAR(out[i], ref[i], 1e-9) << "out " << i;
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      double s = 0;
      for (int64_t o = 0; o < OC; o++) s += dout[n * OC + o] * w[o * C + c];
      ASSERT_NEAR(dinp[n * C + c], s, 1e-9) << "dinp " << n << "," << c;
    }
  for (int64_t o = 0; o < OC; o++)
    for (int64_t c = 0; c < C; c++) {
      double s = 0.5;
      for (int64_t n = 0; n < N; n++) s += dout[n * OC + o] * inp[n * C + c];
      ASSERT_NEAR(dw[o * C + c], s, 1e-9) << "dweight " << o << "," << c;
    }
}

// Bits must not depend on the OpenMP team size nor on OpenBLAS's thread setting, on whatever core
// type OpenBLAS runs (ctest repeats this under each OPENBLAS_CORETYPE the CPU supports). The shape
// gives several tiles, ragged edges and BLAS calls big enough that a threaded OpenBLAS would
// split them. openblas_set_num_threads(k) also sets OpenMP's thread count in the OpenMP build.
TEST(MatmulThreads, BitwiseEqualForOneAndTwoBlasThreads) {
  const int64_t N = 600, C = 192, OC = 520;
  const auto inp = to_float(test_values(N * C, 14)), w = to_float(test_values(OC * C, 15)),
             dout = to_float(test_values(N * OC, 16));
  struct Result {
    std::vector<float> out, dinp, dw;
  };
  auto run = [&](int threads) {
    openblas_set_num_threads(threads);
    Result r{std::vector<float>(N * OC), std::vector<float>(N * C), std::vector<float>(OC * C, 0.25f)};
    matmul_forward(r.out.data(), inp.data(), w.data(), N, C, OC);
    matmul_backward(r.dinp.data(), r.dw.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    return r;
  };
  const int saved = omp_get_max_threads();
  const Result a = run(1);
  for (int threads : {2, 3, 4}) {
    const Result b = run(threads);
    EXPECT_EQ(std::memcmp(a.out.data(), b.out.data(), sizeof(float) * a.out.size()), 0) << threads << " threads";
    EXPECT_EQ(std::memcmp(a.dinp.data(), b.dinp.data(), sizeof(float) * a.dinp.size()), 0) << threads << " threads";
    EXPECT_EQ(std::memcmp(a.dw.data(), b.dw.data(), sizeof(float) * a.dw.size()), 0) << threads << " threads";
  }
  openblas_set_num_threads(saved);
  omp_set_num_threads(saved);
  EXPECT_EQ(omp_get_max_threads(), saved);
}

// Under ctest's core-type runs (tests/kernels/with_coretype.sh) OpenBLAS must really run the forced
// core's kernels, or those runs test nothing new.
TEST(MatmulThreads, RunsTheCoreTypeTheEnvironmentForces) {
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  std::printf("OpenBLAS core type: %s\n", ssiat::kernels::cpu::blas_core_name());
  if (forced == nullptr || *forced == '\0') GTEST_SKIP() << "OPENBLAS_CORETYPE is not set";
  EXPECT_STRCASEEQ(ssiat::kernels::cpu::blas_core_name(), forced);
}

// The kernel leaves the caller's OpenMP thread count as it was (it sets 1 only inside its team).
TEST(MatmulThreads, CallerThreadCountUnchanged) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  std::vector<float> a(512 * 64, 1.0f), w(300 * 64, 1.0f), out(512 * 300);
  matmul_forward(out.data(), a.data(), w.data(), 512, 64, 300);
  EXPECT_EQ(omp_get_max_threads(), 3);
  EXPECT_EQ(out[0], 64.0f);
  omp_set_num_threads(saved);
}

TEST(MatmulShapes, DegenerateDimensions) {
  // C == 0: every output is an empty sum.
  std::vector<double> out(6, kNaN);
  matmul_forward<double>(out.data(), nullptr, nullptr, 2, 0, 3);
  for (double v : out) EXPECT_EQ(v, 0.0);
  // OC == 0: dinp is an empty sum, dweight has no elements.
  std::vector<double> dinp(6, kNaN), inp(6, 1.0);
  matmul_backward<double>(dinp.data(), nullptr, nullptr, inp.data(), nullptr, 2, 3, 0);
  for (double v : dinp) EXPECT_EQ(v, 0.0);
  // N == 0: nothing to compute, dweight unchanged.
  std::vector<double> dw(6, 2.0);
  matmul_backward<double>(nullptr, dw.data(), nullptr, nullptr, nullptr, 0, 3, 2);
  for (double v : dw) EXPECT_EQ(v, 2.0);
}

TEST(MatmulShapes, NegativeShapeThrows) {
  std::vector<float> buf(4);
  EXPECT_THROW(matmul_forward(buf.data(), buf.data(), buf.data(), -1, 2, 2), ssiat::Error);
  EXPECT_THROW(matmul_backward(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), 2, -2, 2),
               ssiat::Error);
  EXPECT_THROW(matmul_forward(buf.data(), buf.data(), buf.data(), int64_t{1} << 32, 2, 2), ssiat::Error);
}

}  // namespace
