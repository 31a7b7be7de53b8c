// CPU RMSNorm (contract and formula in kernels/rmsnorm.h).
// With r = rstd[n], x = inp[n, :], g = dout[n, :], w = weight:
//   dinp[n, c] += r * w[c] * g[c] - (r^3 / C) * x[c] * sum_j g[j] w[j] x[j]
//   dweight[c] += sum_n g[n, c] * x[n, c] * rstd[n]
// forward and the dinp pass are parallel over rows (each row is one thread's work, reduced over
// kLanes accumulators in a fixed order). The dweight pass is parallel over columns with the rows
// summed in order n = 0..N-1 into dweight, so both results are the same for any thread count.
#include "kernels/rmsnorm.h"

#include <omp.h>

#include <cmath>

#include "kernels/check.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/elementwise.h"

namespace ssiat::kernels::cpu {
namespace {

using detail::kLanes;

// sum_c x[c]^2
template <typename T>
T sum_sq(const T* __restrict x, int64_t C) {
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= C; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += x[i + j] * x[i + j];
  for (int j = 0; i + j < C; j++) acc[j] += x[i + j] * x[i + j];
  return detail::combine_lanes_sum(acc);
}

// sum_c g[c] * w[c] * x[c]
template <typename T>
T dot3(const T* __restrict g, const T* __restrict w, const T* __restrict x, int64_t C) {
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= C; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += g[i + j] * w[i + j] * x[i + j];
  for (int j = 0; i + j < C; j++) acc[j] += g[i + j] * w[i + j] * x[i + j];
  return detail::combine_lanes_sum(acc);
}

}  // namespace

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int64_t N, int64_t C, T eps) {
  SSIAT_CHECK(N >= 0 && C > 0) << "rmsnorm_forward: bad shape N=" << N << " C=" << C;
  const T inv_c = T(1) / static_cast<T>(C);
#pragma omp parallel for schedule(static) if (N * C >= detail::kParallelMinWork)
  for (int64_t n = 0; n < N; n++) {
    const T* __restrict x = inp + n * C;
    T* __restrict o = out + n * C;
    const T* __restrict w = weight;
    const T r = T(1) / std::sqrt(sum_sq(x, C) * inv_c + eps);
    rstd[n] = r;
    for (int64_t c = 0; c < C; c++) o[c] = x[c] * r * w[c];
  }
}

template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd,
                      int64_t N, int64_t C) {
  SSIAT_CHECK(N >= 0 && C > 0) << "rmsnorm_backward: bad shape N=" << N << " C=" << C;
  const T inv_c = T(1) / static_cast<T>(C);
  constexpr int64_t kAlign = 16;  // one 64-byte line of float per column unit
#pragma omp parallel if (N * C >= detail::kParallelMinWork)
  {
    // dinp: parallel over rows.
#pragma omp for schedule(static) nowait
    for (int64_t n = 0; n < N; n++) {
      const T* __restrict g = dout + n * C;
      const T* __restrict x = inp + n * C;
      const T* __restrict w = weight;
      T* __restrict dx = dinp + n * C;
      const T r = rstd[n];
      const T b = r * r * r * inv_c * dot3(g, w, x, C);
      for (int64_t c = 0; c < C; c++) dx[c] += r * w[c] * g[c] - b * x[c];
    }  // nowait: the dweight pass reads only inputs

    // dweight: parallel over columns, rows in order.
    const auto [c0, c1] = detail::split_range(C, kAlign, omp_get_num_threads(), omp_get_thread_num());
    const int64_t width = c1 - c0;
    T* __restrict dw = dweight + c0;
    for (int64_t n = 0; n < N; n++) {
      const T* __restrict g = dout + n * C + c0;
      const T* __restrict x = inp + n * C + c0;
      const T r = rstd[n];
      for (int64_t c = 0; c < width; c++) dw[c] += g[c] * x[c] * r;
    }
  }
}

template <typename T>
void rmsnorm_residual_forward(T* res, T* out, T* rstd, const T* a, const T* b, const T* weight, int64_t N,
                              int64_t C, T eps) {
  SSIAT_CHECK(N >= 0 && C > 0) << "rmsnorm_residual_forward: bad shape N=" << N << " C=" << C;
  SSIAT_CHECK(N <= INT64_MAX / C) << "rmsnorm_residual_forward: N*C overflows, N=" << N << " C=" << C;
  add(res, a, b, N * C);
  rmsnorm_forward(out, rstd, res, weight, N, C, eps);
}

template void rmsnorm_residual_forward<float>(float*, float*, float*, const float*, const float*, const float*,
                                              int64_t, int64_t, float);
template void rmsnorm_residual_forward<double>(double*, double*, double*, const double*, const double*,
                                               const double*, int64_t, int64_t, double);
template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, float);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int64_t, int64_t,
                                      double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, int64_t, int64_t);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*,
                                       const double*, int64_t, int64_t);

}  // namespace ssiat::kernels::cpu
