// RMSNorm (Zhang & Sennrich 2019, arXiv:1910.07467), as in Llama:
//   rstd[n] = 1 / sqrt(mean_c(inp[n,c]^2) + eps);  out[n,c] = inp[n,c] * rstd[n] * weight[c].
//
// Shapes: inp, out, dout, dinp (N, C); weight, dweight (C); rstd (N).
// Contract: forward writes `=` into out and rstd (saved for backward).
// backward accumulates `+=` into dinp (the residual stream's gradient) and `+=` into dweight,
// each in a fixed summation order (deterministic for any thread count).
// rmsnorm_residual_forward fuses the residual add before a norm: res = a + b, then
// out, rstd = rmsnorm(res) (bits equal to add() followed by rmsnorm_forward()).
// CUDA: one warp-group per row; dweight as per-chunk partial sums (chunks of rows, in scratch)
// added in chunk order, so no atomics and fixed bits.
#pragma once
#include <cstdint>

#include "kernels/backend.h"

namespace ssiat::kernels::cpu {

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int64_t N, int64_t C, T eps);

template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd,
                      int64_t N, int64_t C);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cpu {

template <typename T>
void rmsnorm_residual_forward(T* res, T* out, T* rstd, const T* a, const T* b, const T* weight, int64_t N,
                              int64_t C, T eps);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cuda {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps,
                     Stream s);
void rmsnorm_residual_forward(float* res, float* out, float* rstd, const float* a, const float* b, const float* weight,
                              int64_t N, int64_t C, float eps, Stream s);
int64_t rmsnorm_backward_scratch_bytes(int64_t N, int64_t C);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C, Scratch scratch, Stream s);

}  // namespace ssiat::kernels::cuda
