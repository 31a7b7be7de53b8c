// Element-wise helpers and reductions over flat buffers.
//
// Contract: add: out = a + b (out may alias a or b). scale_inplace: x *= s. sum returns
// sum_i x[i] and sum_squares sum_i x[i]^2, both accumulated in double in a fixed order that
// does not depend on the thread count: cpu::sum strictly left to right (the loss sum),
// cpu::sum_squares over fixed-size blocks summed in block order (the global gradient norm).
// CUDA: the same values up to the order of a fixed two-level tree (per-block partials in
// scratch, then one block summing them in index order); they synchronize the stream and return
// the value to the host.
#pragma once
#include <cstdint>

#include "kernels/backend.h"

namespace ssiat::kernels::cpu {

template <typename T>
void add(T* out, const T* a, const T* b, int64_t n);

template <typename T>
void add_inplace(T* x, const T* y, int64_t n);

template <typename T>
void scale_inplace(T* x, T s, int64_t n);

template <typename T>
double sum(const T* x, int64_t n);

template <typename T>
double sum_squares(const T* x, int64_t n);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cuda {

void add(float* out, const float* a, const float* b, int64_t n, Stream s);
void scale_inplace(float* x, float scale, int64_t n, Stream s);
int64_t reduce_scratch_bytes(int64_t n);
double sum(const float* x, int64_t n, Scratch scratch, Stream s);
double sum_squares(const float* x, int64_t n, Scratch scratch, Stream s);

}  // namespace ssiat::kernels::cuda
