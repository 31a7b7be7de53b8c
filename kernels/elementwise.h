// Element-wise helpers and reductions over flat buffers.
//
// Contract: add_inplace: x += y. scale_inplace: x *= s. sum_squares returns sum_i x[i]^2
// accumulated in double over fixed-size blocks summed in block order, so the value is the same
// for any thread count (used for the global gradient norm).
#pragma once
#include <cstdint>

namespace ssiat::kernels::cpu {

template <typename T>
void add_inplace(T* x, const T* y, int64_t n);

template <typename T>
void scale_inplace(T* x, T s, int64_t n);

template <typename T>
double sum_squares(const T* x, int64_t n);

}  // namespace ssiat::kernels::cpu
