// Tests for kernels/attention.h: forward and backward against a naive reference that
// materialises the full masked (T, T) softmax per (b, h) (written here, independently of the
// tiled kernel), float64 finite differences, float32 vs float64, the causal property, and
// bitwise thread-count independence. Shapes include GQA (NH != NKV), NKV == NH, T that is not
// a multiple of any tile size, and head sizes that are not a multiple of the SIMD width.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/check.h"
#include "tests/common/gradcheck.h"

namespace {

using ssiat::kernels::cpu::attention_backward;
using ssiat::kernels::cpu::attention_forward;
using ssiat::testing::gradcheck_relerr;
using ssiat::testing::test_values;

struct AttnShape {
  int64_t B, T, NH, NKV, HS;
  int64_t c3() const { return (NH + 2 * NKV) * HS; }
  int64_t nqkv() const { return B * T * c3(); }
  int64_t nout() const { return B * T * NH * HS; }
  int64_t nlse() const { return B * NH * T; }
};

// Pointers into the fused qkv buffer (B, T, (NH + 2*NKV) * HS).
const double* qptr(const std::vector<double>& x, const AttnShape& s, int64_t b, int64_t t, int64_t h) {
  return x.data() + (b * s.T + t) * s.c3() + h * s.HS;
}
const double* kptr(const std::vector<double>& x, const AttnShape& s, int64_t b, int64_t t, int64_t g) {
  return x.data() + (b * s.T + t) * s.c3() + (s.NH + g) * s.HS;
}
const double* vptr(const std::vector<double>& x, const AttnShape& s, int64_t b, int64_t t, int64_t g) {
  return x.data() + (b * s.T + t) * s.c3() + (s.NH + s.NKV + g) * s.HS;
}

double dot(const double* a, const double* b, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; i++) acc += a[i] * b[i];
  return acc;
}

// Full masked probabilities P (T, T) for (b, h), row-major; also the natural-log lse per row.
std::vector<double> ref_probs(const std::vector<double>& qkv, const AttnShape& s, int64_t b, int64_t h,
                              std::vector<double>* lse_row) {
  const int64_t g = h / (s.NH / s.NKV);
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.HS));
  std::vector<double> P(s.T * s.T);
  lse_row->assign(s.T, 0.0);
  for (int64_t t = 0; t < s.T; t++) {
    std::vector<double> row(s.T, -std::numeric_limits<double>::infinity());
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j <= t; j++) {
      row[j] = dot(qptr(qkv, s, b, t, h), kptr(qkv, s, b, j, g), s.HS) * scale;
      mx = std::max(mx, row[j]);
    }
    double sum = 0;
    for (int64_t j = 0; j < s.T; j++) sum += std::exp(row[j] - mx);  // exp(-inf) = 0 beyond t
    (*lse_row)[t] = mx + std::log(sum);
    for (int64_t j = 0; j < s.T; j++) P[t * s.T + j] = std::exp(row[j] - mx) / sum;
  }
  return P;
}

void ref_forward(const std::vector<double>& qkv, const AttnShape& s, std::vector<double>* out,
                 std::vector<double>* lse) {
  out->assign(s.nout(), 0.0);
  lse->assign(s.nlse(), 0.0);
  for (int64_t b = 0; b < s.B; b++)
    for (int64_t h = 0; h < s.NH; h++) {
      std::vector<double> lrow;
      const std::vector<double> P = ref_probs(qkv, s, b, h, &lrow);
      const int64_t g = h / (s.NH / s.NKV);
      for (int64_t t = 0; t < s.T; t++) {
        (*lse)[(b * s.NH + h) * s.T + t] = lrow[t];
        double* o = out->data() + (b * s.T + t) * s.NH * s.HS + h * s.HS;
        for (int64_t j = 0; j < s.T; j++)
          for (int64_t d = 0; d < s.HS; d++) o[d] += P[t * s.T + j] * vptr(qkv, s, b, j, g)[d];
      }
    }
}

// Textbook softmax backward: dP = dO V^T, dS = P * (dP - rowsum(P * dP)), dQ = dS K / sqrt(HS),
// dK = dS^T Q / sqrt(HS), dV = P^T dO (summed over the query heads of each kv head).
std::vector<double> ref_backward(const std::vector<double>& qkv, const std::vector<double>& dout,
                                 const AttnShape& s) {
  std::vector<double> dqkv(s.nqkv(), 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.HS));
  for (int64_t b = 0; b < s.B; b++)
    for (int64_t h = 0; h < s.NH; h++) {
      std::vector<double> lrow;
      const std::vector<double> P = ref_probs(qkv, s, b, h, &lrow);
      const int64_t g = h / (s.NH / s.NKV);
      for (int64_t t = 0; t < s.T; t++) {
        const double* dO = dout.data() + (b * s.T + t) * s.NH * s.HS + h * s.HS;
        std::vector<double> dP(s.T);
        double rowsum = 0;
        for (int64_t j = 0; j < s.T; j++) {
          dP[j] = dot(dO, vptr(qkv, s, b, j, g), s.HS);
          rowsum += P[t * s.T + j] * dP[j];
        }
        for (int64_t j = 0; j < s.T; j++) {
          const double pj = P[t * s.T + j];
          const double dS = pj * (dP[j] - rowsum) * scale;
          double* dq = dqkv.data() + (b * s.T + t) * s.c3() + h * s.HS;
          double* dk = dqkv.data() + (b * s.T + j) * s.c3() + (s.NH + g) * s.HS;
          double* dv = dqkv.data() + (b * s.T + j) * s.c3() + (s.NH + s.NKV + g) * s.HS;
          for (int64_t d = 0; d < s.HS; d++) {
            dq[d] += dS * kptr(qkv, s, b, j, g)[d];
            dk[d] += dS * qptr(qkv, s, b, t, h)[d];
            dv[d] += pj * dO[d];
          }
        }
      }
    }
  return dqkv;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

template <typename T>
std::vector<T> cast(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

std::vector<double> to_double(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

const AttnShape kShapes[] = {
    {2, 37, 4, 2, 8},   // GQA, one partial tile
    {1, 130, 2, 2, 32}, // NKV == NH, three query/key blocks, last one partial
    {1, 70, 6, 3, 20},  // head size with a vector and a scalar tail
    {2, 65, 4, 1, 5},   // multi-query, odd head size
    {1, 1, 2, 1, 4},    // a single token
    {1, 200, 2, 1, 64},
};

TEST(AttentionForward, MatchesNaiveReferenceFloat64) {
  for (const AttnShape& s : kShapes) {
    const std::vector<double> qkv = test_values(s.nqkv(), 21 + s.T, -2.0, 2.0);
    std::vector<double> out(s.nout()), lse(s.nlse()), out_ref, lse_ref;
    attention_forward(out.data(), lse.data(), qkv.data(), s.B, s.T, s.NH, s.NKV, s.HS);
    ref_forward(qkv, s, &out_ref, &lse_ref);
    EXPECT_LE(max_abs_diff(out, out_ref), 1e-13) << "T=" << s.T << " HS=" << s.HS;
    EXPECT_LE(max_abs_diff(lse, lse_ref), 1e-13) << "T=" << s.T << " HS=" << s.HS;
  }
}

TEST(AttentionForward, Float32AgreesWithFloat64) {
  for (const AttnShape& s : kShapes) {
    const std::vector<double> qkv = test_values(s.nqkv(), 31 + s.T, -2.0, 2.0);
    std::vector<double> out_ref, lse_ref;
    ref_forward(qkv, s, &out_ref, &lse_ref);
    const std::vector<float> qkvf = cast<float>(qkv);
    std::vector<float> out(s.nout()), lse(s.nlse());
    attention_forward(out.data(), lse.data(), qkvf.data(), s.B, s.T, s.NH, s.NKV, s.HS);
    EXPECT_LE(max_abs_diff(to_double(out), out_ref), 2e-6)
        << "T=" << s.T;
    EXPECT_LE(max_abs_diff(to_double(lse), lse_ref), 2e-6) << "T=" << s.T;
  }
}

TEST(AttentionBackward, MatchesNaiveReferenceFloat64) {
  for (const AttnShape& s : kShapes) {
    const std::vector<double> qkv = test_values(s.nqkv(), 41 + s.T, -2.0, 2.0);
    const std::vector<double> dout = test_values(s.nout(), 51 + s.T);
    std::vector<double> out(s.nout()), lse(s.nlse());
    attention_forward(out.data(), lse.data(), qkv.data(), s.B, s.T, s.NH, s.NKV, s.HS);
    std::vector<double> dqkv(s.nqkv(), 12345.0);  // garbage: the kernel must write `=` everywhere
    attention_backward(dqkv.data(), dout.data(), out.data(), lse.data(), qkv.data(), s.B, s.T, s.NH, s.NKV,
                       s.HS);
    const std::vector<double> ref = ref_backward(qkv, dout, s);
    EXPECT_LE(max_abs_diff(dqkv, ref), 1e-12 * std::max(1.0, max_abs(ref))) << "T=" << s.T << " HS=" << s.HS;
  }
}

TEST(AttentionBackward, Float32AgreesWithFloat64) {
  for (const AttnShape& s : kShapes) {
    const std::vector<double> qkv = test_values(s.nqkv(), 61 + s.T, -2.0, 2.0);
    const std::vector<double> dout = test_values(s.nout(), 71 + s.T);
    const std::vector<double> ref = ref_backward(qkv, dout, s);
    const std::vector<float> qkvf = cast<float>(qkv), doutf = cast<float>(dout);
    std::vector<float> out(s.nout()), lse(s.nlse()), dqkv(s.nqkv());
    attention_forward(out.data(), lse.data(), qkvf.data(), s.B, s.T, s.NH, s.NKV, s.HS);
    attention_backward(dqkv.data(), doutf.data(), out.data(), lse.data(), qkvf.data(), s.B, s.T, s.NH, s.NKV,
                       s.HS);
    EXPECT_LE(max_abs_diff(to_double(dqkv), ref), 1e-5 * std::max(1.0, max_abs(ref)))
        << "T=" << s.T;
  }
}

// Runs the enclosing scope with one OpenMP thread (finite differences call the forward thousands
// of times; thread-count independence is tested on its own below).
class OneThread {
 public:
  OneThread() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int saved_;
};

// loss = sum(out * R); its gradient w.r.t. qkv is attention_backward with dout = R.
void gradcheck_shape(const AttnShape& s, uint64_t seed) {
  const OneThread one_thread;
  std::vector<double> qkv = test_values(s.nqkv(), seed, -1.5, 1.5);
  const std::vector<double> R = test_values(s.nout(), seed + 1);
  std::vector<double> out(s.nout()), lse(s.nlse());
  auto loss = [&] {
    attention_forward(out.data(), lse.data(), qkv.data(), s.B, s.T, s.NH, s.NKV, s.HS);
    double acc = 0;
    for (int64_t i = 0; i < s.nout(); i++) acc += out[i] * R[i];
    return acc;
  };
  loss();
  std::vector<double> grad(s.nqkv());
  attention_backward(grad.data(), R.data(), out.data(), lse.data(), qkv.data(), s.B, s.T, s.NH, s.NKV, s.HS);
  EXPECT_LE(gradcheck_relerr(qkv, grad, loss), 1e-6) << "T=" << s.T << " NH=" << s.NH << " NKV=" << s.NKV;
}

TEST(AttentionBackward, GradcheckGqaFloat64) { gradcheck_shape({1, 67, 4, 2, 4}, 81); }

TEST(AttentionBackward, GradcheckMhaFloat64) { gradcheck_shape({2, 19, 2, 2, 6}, 83); }

TEST(AttentionForward, IsCausal) {
  const AttnShape s{2, 100, 4, 2, 16};
  const int64_t t0 = 70;
  std::vector<double> qkvd = test_values(s.nqkv(), 91);
  const std::vector<float> qkv = cast<float>(qkvd);
  std::vector<float> changed = qkv;
  for (int64_t b = 0; b < s.B; b++)  // new q, k and v for token t0 (and nothing else)
    for (int64_t i = 0; i < s.c3(); i++) changed[(b * s.T + t0) * s.c3() + i] += 0.5f;
  std::vector<float> out1(s.nout()), lse1(s.nlse()), out2(s.nout()), lse2(s.nlse());
  attention_forward(out1.data(), lse1.data(), qkv.data(), s.B, s.T, s.NH, s.NKV, s.HS);
  attention_forward(out2.data(), lse2.data(), changed.data(), s.B, s.T, s.NH, s.NKV, s.HS);
  const int64_t row = s.NH * s.HS;
  for (int64_t b = 0; b < s.B; b++) {
    for (int64_t t = 0; t < s.T; t++) {
      const bool same = std::equal(out1.begin() + (b * s.T + t) * row, out1.begin() + (b * s.T + t + 1) * row,
                                   out2.begin() + (b * s.T + t) * row);
      if (t < t0) {
        EXPECT_TRUE(same) << "b=" << b << " t=" << t;
      } else {
        EXPECT_FALSE(same) << "b=" << b << " t=" << t;
      }
    }
    for (int64_t h = 0; h < s.NH; h++)
      for (int64_t t = 0; t < t0; t++)
        EXPECT_EQ(lse1[(b * s.NH + h) * s.T + t], lse2[(b * s.NH + h) * s.T + t]);
  }
}

TEST(Attention, SameBitsForOneAndTwoThreads) {
  for (const AttnShape& s : {AttnShape{2, 150, 4, 2, 32}, AttnShape{1, 129, 4, 4, 16}}) {
    const std::vector<float> qkv = cast<float>(test_values(s.nqkv(), 101));
    const std::vector<float> dout = cast<float>(test_values(s.nout(), 102));
    std::vector<float> out[2], lse[2], dqkv[2];
    const int saved = omp_get_max_threads();
    for (int run = 0; run < 2; run++) {
      omp_set_num_threads(run + 1);
      out[run].assign(s.nout(), 0.f);
      lse[run].assign(s.nlse(), 0.f);
      dqkv[run].assign(s.nqkv(), 0.f);
      attention_forward(out[run].data(), lse[run].data(), qkv.data(), s.B, s.T, s.NH, s.NKV, s.HS);
      attention_backward(dqkv[run].data(), dout.data(), out[run].data(), lse[run].data(), qkv.data(), s.B,
                         s.T, s.NH, s.NKV, s.HS);
    }
    omp_set_num_threads(saved);
    EXPECT_EQ(out[0], out[1]);
    EXPECT_EQ(lse[0], lse[1]);
    EXPECT_EQ(dqkv[0], dqkv[1]);
  }
}

TEST(Attention, RejectsHeadsNotMultipleOfKvHeads) {
  std::vector<double> qkv(1 * 2 * (3 + 4) * 4), out(1 * 2 * 3 * 4), lse(3 * 2);
  EXPECT_THROW(attention_forward(out.data(), lse.data(), qkv.data(), 1, 2, 3, 2, 4), ssiat::Error);
}

}  // namespace
