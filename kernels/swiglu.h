// SwiGLU activation (Shazeer 2020, arXiv:2002.05202) as in the Llama MLP:
//   out[n,f] = silu(gate[n,f]) * up[n,f],  silu(x) = x / (1 + exp(-x)),
// where the input row holds the fused gate_proj and up_proj outputs: inp[n] = [gate (F) | up (F)].
//
// Shapes: inp, dinp (N, 2F); out, dout (N, F).
// Contract: forward writes `=` into out; backward writes `=` into dinp (both halves).
#pragma once
#include <cstdint>

#include "kernels/backend.h"

namespace ssiat::kernels::cpu {

template <typename T>
void swiglu_forward(T* out, const T* inp, int64_t N, int64_t F);

template <typename T>
void swiglu_backward(T* dinp, const T* dout, const T* inp, int64_t N, int64_t F);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cuda {

void swiglu_forward(float* out, const float* inp, int64_t N, int64_t F, Stream s);
void swiglu_backward(float* dinp, const float* dout, const float* inp, int64_t N, int64_t F, Stream s);

}  // namespace ssiat::kernels::cuda
