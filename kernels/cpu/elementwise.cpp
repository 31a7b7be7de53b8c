// CPU element-wise helpers and the deterministic sum of squares (contract in
// kernels/elementwise.h). sum_squares: the input is cut into blocks of kBlock elements; each block
// is summed in double over kLanes accumulators combined in a fixed order, and the block sums are
// added in block order on the calling thread, so the value depends on n only, never on the
// thread count or the schedule.
#include "kernels/elementwise.h"

#include <vector>

#include "kernels/check.h"
#include "kernels/cpu/cpu_util.h"

namespace ssiat::kernels::cpu {
namespace {

using detail::kLanes;

constexpr int64_t kBlock = 1 << 14;

template <typename T>
double block_sum_squares(const T* __restrict x, int64_t n) {
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) {
      const double e = static_cast<double>(x[i + j]);
      acc[j] += e * e;
    }
  for (int j = 0; i + j < n; j++) {
    const double e = static_cast<double>(x[i + j]);
    acc[j] += e * e;
  }
  return detail::combine_lanes_sum(acc);
}

}  // namespace

template <typename T>
void add(T* out, const T* a, const T* b, int64_t n) {
  SSIAT_CHECK(n >= 0) << "add: negative size n=" << n;
  // No __restrict: out may alias a or b (element i reads a[i], b[i] before writing out[i]).
#pragma omp parallel for simd schedule(static) if (n >= detail::kParallelMinWork)
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

template <typename T>
double sum(const T* x, int64_t n) {
  SSIAT_CHECK(n >= 0) << "sum: negative size n=" << n;
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(x[i]);
  return s;
}

template <typename T>
void add_inplace(T* x, const T* y, int64_t n) {
  SSIAT_CHECK(n >= 0) << "add_inplace: negative size n=" << n;
  T* __restrict xr = x;
  const T* __restrict yr = y;
#pragma omp parallel for simd schedule(static) if (n >= detail::kParallelMinWork)
  for (int64_t i = 0; i < n; i++) xr[i] += yr[i];
}

template <typename T>
void scale_inplace(T* x, T s, int64_t n) {
  SSIAT_CHECK(n >= 0) << "scale_inplace: negative size n=" << n;
  T* __restrict xr = x;
#pragma omp parallel for simd schedule(static) if (n >= detail::kParallelMinWork)
  for (int64_t i = 0; i < n; i++) xr[i] *= s;
}

template <typename T>
double sum_squares(const T* x, int64_t n) {
  SSIAT_CHECK(n >= 0) << "sum_squares: negative size n=" << n;
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
  if (nblocks <= 1) return block_sum_squares(x, n);
  std::vector<double> partial(nblocks);  // one allocation per call, n / 16384 doubles
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMinWork)
  for (int64_t b = 0; b < nblocks; b++) {
    const int64_t lo = b * kBlock;
    const int64_t len = n - lo < kBlock ? n - lo : kBlock;
    partial[b] = block_sum_squares(x + lo, len);
  }
  double total = 0.0;
  for (int64_t b = 0; b < nblocks; b++) total += partial[b];
  return total;
}

template void add<float>(float*, const float*, const float*, int64_t);
template void add<double>(double*, const double*, const double*, int64_t);
template double sum<float>(const float*, int64_t);
template double sum<double>(const double*, int64_t);
template void add_inplace<float>(float*, const float*, int64_t);
template void add_inplace<double>(double*, const double*, int64_t);
template void scale_inplace<float>(float*, float, int64_t);
template void scale_inplace<double>(double*, double, int64_t);
template double sum_squares<float>(const float*, int64_t);
template double sum_squares<double>(const double*, int64_t);

}  // namespace ssiat::kernels::cpu
