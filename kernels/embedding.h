// Token embedding lookup.
//
// Shapes: tokens (N) int32 in [0, V), wte (V, C), out (N, C).
// Precondition (checked by the data loader, not here): every token is in [0, V).
// Contract: forward writes `=`; backward accumulates `+=` into dwte in a fixed order
// (deterministic for any thread count).
// CUDA backward: no atomics. A stable counting sort of the positions by token (in scratch)
// gives each vocabulary row its positions in increasing n; each row then sums its positions'
// gradients in that order, so the bits are the CPU order's and never depend on scheduling.
#pragma once
#include <cstdint>

#include "kernels/backend.h"

namespace ssiat::kernels::cpu {

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, int64_t N, int64_t C, int64_t V);

template <typename T>
void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t V);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cuda {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int64_t N, int64_t C, int64_t V, Stream s);
int64_t embedding_backward_scratch_bytes(int64_t N, int64_t V);
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t V,
                        Scratch scratch, Stream s);

}  // namespace ssiat::kernels::cuda
