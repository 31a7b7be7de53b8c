// Token embedding lookup.
//
// Shapes: tokens (N) int32 in [0, V), wte (V, C), out (N, C).
// Contract: forward writes `=`; a token outside [0, V) throws ssiat::Error naming its index.
// backward accumulates `+=` into dwte in a fixed order (deterministic for any thread count).
#pragma once
#include <cstdint>

namespace ssiat::kernels::cpu {

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, int64_t N, int64_t C, int64_t V);

template <typename T>
void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t V);

}  // namespace ssiat::kernels::cpu
