// Rotary position embedding (Su et al. 2021, arXiv:2104.09864) in the Hugging Face Llama
// "rotate_half" convention: within each head, element j pairs with element j + HS/2 and
//   x'[j]        = x[j] * cos[t,j] - x[j+HS/2] * sin[t,j]
//   x'[j+HS/2]   = x[j+HS/2] * cos[t,j] + x[j] * sin[t,j],   j in [0, HS/2),
// with angle(t, j) = t * theta^(-2j/HS) and t the position inside the sequence (0..T-1).
//
// Shapes: qkv (B, T, (NH + 2*NKV) * HS), laid out per token as [q heads | k heads | v heads];
//         cos, sin (T, HS/2).
// Contract: forward rotates the NH query heads and NKV key heads in place (v untouched).
// backward applies the inverse rotation in place to dqkv (gradient w.r.t. rotated q, k becomes
// gradient w.r.t. the unrotated q, k); v's gradient is untouched. rope_tables writes `=`.
// CUDA takes the tables the CPU's rope_tables computed (uploaded once), so both backends rotate
// by the same angles.
#pragma once
#include <cstdint>

#include "kernels/backend.h"

namespace ssiat::kernels::cpu {

template <typename T>
void rope_tables(T* cos, T* sin, int64_t T_, int64_t HS, double theta);

template <typename T>
void rope_forward(T* qkv, const T* cos, const T* sin, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                  int64_t HS);

template <typename T>
void rope_backward(T* dqkv, const T* cos, const T* sin, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                   int64_t HS);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cuda {

void rope_forward(float* qkv, const float* cos, const float* sin, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                  int64_t HS, Stream s);
void rope_backward(float* dqkv, const float* cos, const float* sin, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                   int64_t HS, Stream s);

}  // namespace ssiat::kernels::cuda
