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
#pragma once
#include <cstdint>

namespace ssiat::kernels::cpu {

template <typename T>
void attention_forward(T* out, T* lse, const T* qkv, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                       int64_t HS);

template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* out, const T* lse, const T* qkv, int64_t B,
                        int64_t T_, int64_t NH, int64_t NKV, int64_t HS);

}  // namespace ssiat::kernels::cpu
