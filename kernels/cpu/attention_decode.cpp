// CPU single-query attention over a KV cache (contract in kernels/attention_decode.h).
// Per query head h (one OpenMP task each), with g = h / (NH / NKV), all in double:
//   s_t = (q · k_t[g]) / sqrt(HS)           q·k in kLanes-style partial sums over d (fixed tree)
//   m = max_t s_t;  p_t = e^(s_t - m);  l = sum_t p_t (fixed lanes, then a fixed tree)
//   out[h, d] = (sum_t p_t v_t[g, d]) / l   t in increasing order for each d
// Every output element is produced by one task in a fixed order, so the bits do not depend on
// the thread count. The exponential is detail::exp_approx (no libm; ~1-2 ulp in double).
#include "kernels/attention_decode.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/check.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/cpu/softmax_rows.h"

namespace ssiat::kernels::cpu {
namespace {

constexpr int kDotLanes = 8;  // partial sums of a dot product (d = i*8 + j goes to lane j)

// sum_d a[d] * b[d] in double, lanes combined by a fixed halving tree.
template <typename T>
inline double dot_lanes(const double* __restrict a, const T* __restrict b, int64_t n) {
  double acc[kDotLanes] = {};
  int64_t d = 0;
  for (; d + kDotLanes <= n; d += kDotLanes)
    for (int j = 0; j < kDotLanes; j++) acc[j] += a[d + j] * static_cast<double>(b[d + j]);
  for (int j = 0; d + j < n; j++) acc[j] += a[d + j] * static_cast<double>(b[d + j]);
  for (int w = kDotLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; j++) acc[j] += acc[j + w];
  return acc[0];
}

// sum_t x[t] in double with detail::kLanes accumulators and their fixed combining tree.
inline double sum_lanes(const double* __restrict x, int64_t n) {
  double acc[detail::kLanes] = {};
  int64_t i = 0;
  for (; i + detail::kLanes <= n; i += detail::kLanes)
    for (int j = 0; j < detail::kLanes; j++) acc[j] += x[i + j];
  for (int j = 0; i + j < n; j++) acc[j] += x[i + j];
  return detail::combine_lanes_sum(acc);
}

}  // namespace

template <typename T>
void attention_decode(T* out, const T* qkv, int64_t T_ctx, int64_t NH, int64_t NKV, int64_t HS) {
  SSIAT_CHECK(T_ctx >= 1 && NH > 0 && NKV > 0 && HS > 0)
      << "attention_decode: bad shape T_ctx=" << T_ctx << " NH=" << NH << " NKV=" << NKV << " HS=" << HS
      << " (T_ctx >= 1: the query is row T_ctx-1)";
  SSIAT_CHECK(NH % NKV == 0) << "attention_decode: NH=" << NH << " is not a multiple of NKV=" << NKV;
  SSIAT_CHECK(out != nullptr && qkv != nullptr) << "attention_decode: null pointer";
  const int64_t C3 = (NH + 2 * NKV) * HS;
  const int64_t group = NH / NKV;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  const int64_t work = 2 * NH * T_ctx * HS;

#pragma omp parallel if (NH > 1 && work >= detail::kParallelMinWork)
  {
    std::vector<double> q(HS);      // (HS) query of head h
    std::vector<double> p(T_ctx);   // (T_ctx) scores, then unnormalised probabilities
    std::vector<double> acc(HS);    // (HS) sum_t p_t v_t

#pragma omp for schedule(static)
    for (int64_t h = 0; h < NH; h++) {
      const int64_t g = h / group;
      const T* qrow = qkv + (T_ctx - 1) * C3 + h * HS;
      const T* krow = qkv + (NH + g) * HS;  // row t at + t*C3
      const T* vrow = krow + NKV * HS;
      for (int64_t d = 0; d < HS; d++) q[d] = static_cast<double>(qrow[d]);
      for (int64_t t = 0; t < T_ctx; t++) p[t] = dot_lanes(q.data(), krow + t * C3, HS) * scale;
      const double m = detail::row_max(p.data(), T_ctx);
      for (int64_t t = 0; t < T_ctx; t++) p[t] = detail::exp_approx(p[t] - m);
      const double l = sum_lanes(p.data(), T_ctx);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t t = 0; t < T_ctx; t++) {
        const double pt = p[t];
        const T* __restrict v = vrow + t * C3;
        double* __restrict a = acc.data();
        for (int64_t d = 0; d < HS; d++) a[d] += pt * static_cast<double>(v[d]);
      }
      T* o = out + h * HS;
      for (int64_t d = 0; d < HS; d++) o[d] = static_cast<T>(acc[d] / l);
    }
  }
}

template void attention_decode<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t);
template void attention_decode<double>(double*, const double*, int64_t, int64_t, int64_t, int64_t);

}  // namespace ssiat::kernels::cpu
