// Causal scaled-dot-product attention with grouped-query heads (GQA, Ainslie et al. 2023,
// arXiv:2305.13245), memory-efficient in the manner of FlashAttention (Dao et al. 2022,
// arXiv:2205.14135): forward saves only the per-row log-sum-exp; backward recomputes the
// probabilities from it.
//   query head h uses key/value head h / (NH / NKV)  (Hugging Face repeat_kv order);
//   out[b,t,h,:] = sum_{s<=t} softmax_s(q[b,t,h]·k[b,s,g] / sqrt(HS)) v[b,s,g].
//
// Shapes: qkv, dqkv (B, T, (NH + 2*NKV) * HS), per token [q heads | k heads | v heads];
//         out, dout (B, T, NH * HS); lse (B, NH, T).
// Contract: forward writes `=` into out and lse. backward writes `=` into all of dqkv
// (q, k and v parts), in a fixed summation order (deterministic for any thread count).
// NH must be a multiple of NKV.
// CUDA: f32 storage and arithmetic, FlashAttention-2 tiling (Dao 2023, arXiv:2307.08691); the
// backward computes dq per query tile and dk, dv per key tile, each a sum in a fixed order
// (no atomics), so its bits do not depend on scheduling.
#pragma once
#include <cstdint>

#include "kernels/backend.h"

namespace ssiat::kernels::cpu {

template <typename T>
void attention_forward(T* out, T* lse, const T* qkv, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                       int64_t HS);

template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* out, const T* lse, const T* qkv, int64_t B,
                        int64_t T_, int64_t NH, int64_t NKV, int64_t HS);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cuda {

void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                       int64_t HS, Stream s);
void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                        int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS, Stream s);

// Tensor-core variant for bf16 precision: the same contract and layouts (f32 in and out, f32
// lse), with q, k, v, P, dout and dS rounded to bf16 as tiles are loaded and every product
// accumulated in f32 (WMMA m16n16k16). Same determinism (fixed orders, no atomics).
// Supports HS in {64, 128} (attention_bf16_supported); ops fall back to the f32 kernel otherwise.
bool attention_bf16_supported(int64_t HS);
void attention_forward_bf16(float* out, float* lse, const float* qkv, int64_t B, int64_t T_, int64_t NH,
                            int64_t NKV, int64_t HS, Stream s);
void attention_backward_bf16(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                             int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS, Stream s);

}  // namespace ssiat::kernels::cuda
