// CPU softmax + cross-entropy (contract in kernels/crossentropy.h).
// Per row, numerically stable: m = max_v x[v], S = sum_v e^(x[v] - m) (every term in (0, 1]),
//   loss = (m - x[target]) + log(S),   grad[v] = dloss * e^(x[v] - m) / S - dloss * [v == target].
// Targets < V are a precondition (the data loader checks them). Rows are independent and each is
// reduced over kLanes accumulators in a fixed order, so results do not depend on the thread count.
// The fused pass stores e^(x - m) into the logits while summing, then scales in place: two reads
// of the row after the max pass and one exp per element.
#include "kernels/crossentropy.h"

#include <cmath>
#include <limits>

#include "kernels/check.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/cpu/softmax_rows.h"

namespace ssiat::kernels::cpu {
namespace {

using detail::kLanes;
using detail::row_max;
using detail::row_sum_exp;

// Overwrites x[v] by e^(x[v] - m) and returns their sum (same order as row_sum_exp).
template <typename T>
T row_exp_inplace(T* __restrict x, T m, int64_t V) {
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= V; i += kLanes)
    for (int j = 0; j < kLanes; j++) {
      const T e = detail::exp_approx(x[i + j] - m);
      x[i + j] = e;
      acc[j] += e;
    }
  for (int j = 0; i + j < V; j++) {
    const T e = detail::exp_approx(x[i + j] - m);
    x[i + j] = e;
    acc[j] += e;
  }
  return detail::combine_lanes_sum(acc);
}

}  // namespace

template <typename T>
void crossentropy_forward(T* losses, const T* logits, const int32_t* targets, int64_t N, int64_t V) {
  SSIAT_CHECK(N >= 0 && V > 0) << "crossentropy_forward: bad shape N=" << N << " V=" << V;
#pragma omp parallel for schedule(static) if (N * V >= detail::kParallelMinWork)
  for (int64_t n = 0; n < N; n++) {
    const int32_t t = targets[n];
    if (t < 0) {
      losses[n] = T(0);
      continue;
    }
    const T* x = logits + n * V;
    const T m = row_max(x, V);
    const T s = row_sum_exp(x, m, V);
    losses[n] = (m - x[t]) + std::log(s);
  }
}

template <typename T>
void crossentropy_fused(T* losses, T* logits, const int32_t* targets, int64_t N, int64_t V, T dloss) {
  SSIAT_CHECK(N >= 0 && V > 0) << "crossentropy_fused: bad shape N=" << N << " V=" << V;
#pragma omp parallel for schedule(static) if (N * V >= detail::kParallelMinWork)
  for (int64_t n = 0; n < N; n++) {
    T* __restrict x = logits + n * V;
    const int32_t t = targets[n];
    if (t < 0) {
      losses[n] = T(0);
      for (int64_t v = 0; v < V; v++) x[v] = T(0);
      continue;
    }
    const T m = row_max(x, V);
    const T xt = x[t];
    const T s = row_exp_inplace(x, m, V);
    losses[n] = (m - xt) + std::log(s);
    const T scale = dloss / s;
    for (int64_t v = 0; v < V; v++) x[v] *= scale;
    x[t] -= dloss;
  }
}

template void crossentropy_forward<float>(float*, const float*, const int32_t*, int64_t, int64_t);
template void crossentropy_forward<double>(double*, const double*, const int32_t*, int64_t, int64_t);
template void crossentropy_fused<float>(float*, float*, const int32_t*, int64_t, int64_t, float);
template void crossentropy_fused<double>(double*, double*, const int32_t*, int64_t, int64_t, double);

}  // namespace ssiat::kernels::cpu
