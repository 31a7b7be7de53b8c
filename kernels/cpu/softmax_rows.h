// Row reductions shared by the CPU cross-entropy kernels (kernels/cpu/crossentropy.cpp and
// vocab_parallel.cpp): the max and the sum of e^(x - m) of one row, each in a fixed order
// (kLanes accumulators combined by detail::combine_lanes_sum), so results never depend on the
// thread count.
#pragma once

#include <cstdint>
#include <limits>

#include "kernels/cpu/cpu_util.h"

namespace ssiat::kernels::cpu::detail {

// max_v x[v]. Max is exact, so the reduction order cannot change the value; `omp simd` lets GCC
// use vmaxps (a plain `?:` reduction stays scalar under -ftrapping-math).
template <typename T>
inline T row_max(const T* __restrict x, int64_t V) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t v = 0; v < V; v++) m = x[v] > m ? x[v] : m;
  return m;
}

// sum_v e^(x[v] - m)
template <typename T>
inline T row_sum_exp(const T* __restrict x, T m, int64_t V) {
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= V; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += detail::exp_approx(x[i + j] - m);
  for (int j = 0; i + j < V; j++) acc[j] += detail::exp_approx(x[i + j] - m);
  return detail::combine_lanes_sum(acc);
}

}  // namespace ssiat::kernels::cpu::detail
