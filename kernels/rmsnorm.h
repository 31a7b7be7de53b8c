// RMSNorm (Zhang & Sennrich 2019, arXiv:1910.07467), as in Llama:
//   rstd[n] = 1 / sqrt(mean_c(inp[n,c]^2) + eps);  out[n,c] = inp[n,c] * rstd[n] * weight[c].
//
// Shapes: inp, out, dout, dinp (N, C); weight, dweight (C); rstd (N).
// Contract: forward writes `=` into out and rstd (saved for backward).
// backward accumulates `+=` into dinp (the residual stream's gradient) and `+=` into dweight,
// each in a fixed summation order (deterministic for any thread count).
#pragma once
#include <cstdint>

namespace ssiat::kernels::cpu {

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int64_t N, int64_t C, T eps);

template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd,
                      int64_t N, int64_t C);

}  // namespace ssiat::kernels::cpu
