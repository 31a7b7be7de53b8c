// Tests for kernels/attention_decode.h (CPU): against a naive float64 reference written here
// (std::exp softmax over the whole context, per head), against the last row of the training
// kernel cpu::attention_forward on the same qkv (B = 1, T = T_ctx), the GQA head mapping,
// T_ctx = 1 (out = v of row 0), large scores (max subtraction), independence from the q parts
// of earlier rows, bitwise thread-count independence and rejected arguments.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/check.h"
#include "tests/common/gradcheck.h"

namespace {

using ssiat::kernels::cpu::attention_decode;
using ssiat::kernels::cpu::attention_forward;
using ssiat::testing::test_values;

struct DecodeShape {
  int64_t T, NH, NKV, HS;
  int64_t c3() const { return (NH + 2 * NKV) * HS; }
  int64_t nqkv() const { return T * c3(); }
  int64_t nout() const { return NH * HS; }
};

// out[h] = sum_t softmax_t(q·k_t / sqrt(HS)) v_t, q = row T-1's q[h]; all in double with std::exp.
std::vector<double> ref_decode(const std::vector<double>& qkv, const DecodeShape& s) {
  std::vector<double> out(s.nout(), 0.0);
  for (int64_t h = 0; h < s.NH; h++) {
    const int64_t g = h / (s.NH / s.NKV);
    const double* q = qkv.data() + (s.T - 1) * s.c3() + h * s.HS;
    std::vector<double> sc(s.T);
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t t = 0; t < s.T; t++) {
      const double* k = qkv.data() + t * s.c3() + (s.NH + g) * s.HS;
      double acc = 0;
      for (int64_t d = 0; d < s.HS; d++) acc += q[d] * k[d];
      sc[t] = acc / std::sqrt(static_cast<double>(s.HS));
      mx = std::max(mx, sc[t]);
    }
    double sum = 0;
    for (int64_t t = 0; t < s.T; t++) sum += std::exp(sc[t] - mx);
    for (int64_t t = 0; t < s.T; t++) {
      const double p = std::exp(sc[t] - mx) / sum;
      const double* v = qkv.data() + t * s.c3() + (s.NH + s.NKV + g) * s.HS;
      for (int64_t d = 0; d < s.HS; d++) out[h * s.HS + d] += p * v[d];
    }
  }
  return out;
}

template <typename T>
std::vector<T> cast_to(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

template <typename T>
std::vector<T> run_decode(const std::vector<T>& qkv, const DecodeShape& s) {
  std::vector<T> out(s.nout(), std::numeric_limits<T>::quiet_NaN());  // every element must be written
  attention_decode<T>(out.data(), qkv.data(), s.T, s.NH, s.NKV, s.HS);
  return out;
}

// Row T-1 of attention_forward over the same qkv (B = 1).
template <typename T>
std::vector<T> last_row_of_forward(const std::vector<T>& qkv, const DecodeShape& s) {
  std::vector<T> out(s.T * s.nout()), lse(s.NH * s.T);
  attention_forward<T>(out.data(), lse.data(), qkv.data(), 1, s.T, s.NH, s.NKV, s.HS);
  return std::vector<T>(out.end() - s.nout(), out.end());
}

const DecodeShape kShapes[] = {
    {1, 8, 2, 16},     // a single cached row
    {37, 4, 4, 13},    // MHA, HS not a multiple of any SIMD width
    {129, 6, 3, 32},   // GQA groups of 2
    {1000, 8, 2, 64},  // long context, GQA groups of 4
};

// Inputs in [-2, 2] give scores up to several units (probabilities far from uniform).
std::vector<double> make_qkv(const DecodeShape& s, uint64_t seed) { return test_values(s.nqkv(), seed, -2.0, 2.0); }

TEST(AttentionDecode, MatchesNaiveReferenceFloat64) {
  for (const DecodeShape& s : kShapes) {
    const auto qkv = make_qkv(s, 11 + s.T);
    const auto ref = ref_decode(qkv, s);
    const auto got = run_decode<double>(qkv, s);
    for (int64_t i = 0; i < s.nout(); i++) ASSERT_NEAR(got[i], ref[i], 1e-13) << "T=" << s.T << " i=" << i;
  }
}

// The float kernel accumulates in double: only the final rounding to float may differ from the
// float64 reference of the same (float) inputs, i.e. at most half an ulp plus a hair.
TEST(AttentionDecode, Float32IsRoundedFloat64) {
  for (const DecodeShape& s : kShapes) {
    const auto qkv32 = cast_to<float>(make_qkv(s, 23 + s.T));
    const auto ref = ref_decode(std::vector<double>(qkv32.begin(), qkv32.end()), s);
    const auto got = run_decode<float>(qkv32, s);
    for (int64_t i = 0; i < s.nout(); i++) {
      const double ulp = std::nextafter(std::fabs(static_cast<float>(ref[i])), INFINITY) -
                         std::fabs(static_cast<float>(ref[i]));
      ASSERT_LE(std::fabs(got[i] - ref[i]), 0.51 * ulp + 1e-12) << "T=" << s.T << " i=" << i;
    }
  }
}

// Decode is the last row of the training kernel: same qkv, B = 1, T = T_ctx.
TEST(AttentionDecode, EqualsLastRowOfAttentionForward) {
  for (const DecodeShape& s : kShapes) {
    const auto qkv = make_qkv(s, 37 + s.T);
    const auto want64 = last_row_of_forward<double>(qkv, s);
    const auto got64 = run_decode<double>(qkv, s);
    for (int64_t i = 0; i < s.nout(); i++) ASSERT_NEAR(got64[i], want64[i], 1e-13) << "f64 T=" << s.T << " i=" << i;
    const auto qkv32 = cast_to<float>(qkv);
    const auto want32 = last_row_of_forward<float>(qkv32, s);
    const auto got32 = run_decode<float>(qkv32, s);
    for (int64_t i = 0; i < s.nout(); i++) ASSERT_NEAR(got32[i], want32[i], 1e-6) << "f32 T=" << s.T << " i=" << i;
  }
}

// One cached row: every softmax is [1], so each head returns exactly its kv head's v of row 0.
TEST(AttentionDecode, SingleRowReturnsValueOfItsKvHead) {
  const DecodeShape s{1, 8, 2, 16};
  const auto qkv = make_qkv(s, 5);
  const auto got = run_decode<double>(qkv, s);
  for (int64_t h = 0; h < s.NH; h++) {
    const int64_t g = h / 4;  // NH / NKV = 4 query heads per kv head
    for (int64_t d = 0; d < s.HS; d++)
      ASSERT_EQ(got[h * s.HS + d], qkv[(s.NH + s.NKV + g) * s.HS + d]) << "h=" << h << " d=" << d;
  }
}

// Query head h attends with kv head h / (NH / NKV): with one kv head's keys making key 0 dominant
// and the other's making the last key dominant, the output tells the groups apart.
TEST(AttentionDecode, GqaHeadMapping) {
  const DecodeShape s{3, 8, 2, 4};
  std::vector<double> qkv(s.nqkv(), 0.0);
  auto at = [&](int64_t t, int64_t col) -> double& { return qkv[t * s.c3() + col]; };
  for (int64_t h = 0; h < s.NH; h++) at(2, h * s.HS) = 1.0;  // q = e0 for every head
  at(0, (s.NH + 0) * s.HS) = 200.0;                         // kv head 0: key 0 wins
  at(2, (s.NH + 1) * s.HS) = 200.0;                         // kv head 1: key 2 wins
  for (int64_t t = 0; t < s.T; t++)
    for (int64_t g = 0; g < s.NKV; g++) at(t, (s.NH + s.NKV + g) * s.HS) = static_cast<double>(10 * g + t);
  const auto got = run_decode<double>(qkv, s);
  for (int64_t h = 0; h < s.NH; h++) EXPECT_NEAR(got[h * s.HS], h < 4 ? 0.0 : 12.0, 1e-12) << "h=" << h;
}

// Scores of order 1e4 overflow exp() unless the max is subtracted.
TEST(AttentionDecode, LargeScoresAreStable) {
  const DecodeShape s{50, 4, 2, 8};
  auto qkv = make_qkv(s, 7);
  for (int64_t h = 0; h < s.NH; h++)
    for (int64_t d = 0; d < s.HS; d++) qkv[(s.T - 1) * s.c3() + h * s.HS + d] *= 3000.0;
  const auto ref = ref_decode(qkv, s);
  const auto got64 = run_decode<double>(qkv, s);
  const auto got32 = run_decode<float>(cast_to<float>(qkv), s);
  for (int64_t i = 0; i < s.nout(); i++) {
    ASSERT_TRUE(std::isfinite(got32[i])) << i;
    ASSERT_NEAR(got64[i], ref[i], 1e-9) << i;
  }
}

// Only the last row's q is the query: the q parts of earlier rows never change a bit.
TEST(AttentionDecode, IgnoresQueriesOfEarlierRows) {
  const DecodeShape s{40, 4, 2, 8};
  auto qkv = cast_to<float>(make_qkv(s, 9));
  const auto before = run_decode<float>(qkv, s);
  for (int64_t t = 0; t + 1 < s.T; t++)
    for (int64_t i = 0; i < s.NH * s.HS; i++) qkv[t * s.c3() + i] = std::numeric_limits<float>::quiet_NaN();
  const auto after = run_decode<float>(qkv, s);
  for (int64_t i = 0; i < s.nout(); i++) ASSERT_EQ(before[i], after[i]) << i;
}

TEST(AttentionDecode, SameBitsForOneAndTwoThreads) {
  const DecodeShape s{1000, 8, 2, 64};  // above the parallel threshold
  const auto qkv = cast_to<float>(make_qkv(s, 13));
  std::vector<float> out[2];
  const int saved = omp_get_max_threads();
  for (int run = 0; run < 2; run++) {
    omp_set_num_threads(run + 1);
    out[run] = run_decode<float>(qkv, s);
  }
  omp_set_num_threads(saved);
  for (int64_t i = 0; i < s.nout(); i++) ASSERT_EQ(out[0][i], out[1][i]) << i;
}

TEST(AttentionDecode, RejectsBadArguments) {
  std::vector<float> qkv(64 * 64, 0.0f), out(64, 0.0f);
  EXPECT_THROW(attention_decode<float>(out.data(), qkv.data(), 0, 2, 1, 4), ssiat::Error);   // T_ctx = 0
  EXPECT_THROW(attention_decode<float>(out.data(), qkv.data(), -3, 2, 1, 4), ssiat::Error);  // T_ctx < 0
  EXPECT_THROW(attention_decode<float>(out.data(), qkv.data(), 2, 6, 4, 4), ssiat::Error);   // NH % NKV != 0
  EXPECT_THROW(attention_decode<float>(out.data(), qkv.data(), 2, 0, 1, 4), ssiat::Error);   // NH = 0
  EXPECT_THROW(attention_decode<float>(out.data(), qkv.data(), 2, 2, 0, 4), ssiat::Error);   // NKV = 0
  EXPECT_THROW(attention_decode<float>(out.data(), qkv.data(), 2, 2, 1, 0), ssiat::Error);   // HS = 0
  EXPECT_THROW(attention_decode<float>(nullptr, qkv.data(), 2, 2, 1, 4), ssiat::Error);
  EXPECT_THROW(attention_decode<float>(out.data(), nullptr, 2, 2, 1, 4), ssiat::Error);
  try {
    attention_decode<double>(nullptr, nullptr, 1, 6, 4, 8);
    ADD_FAILURE() << "NH=6, NKV=4 accepted";
  } catch (const ssiat::Error& e) {
    EXPECT_NE(std::string(e.what()).find("NH=6"), std::string::npos) << e.what();
  }
}

}  // namespace
