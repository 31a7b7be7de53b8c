// Single-query (decode) attention over a KV cache: the last row of causal attention
// (kernels/attention.h), for generating one token at a time. Grouped-query heads (GQA, Ainslie
// et al. 2023, arXiv:2305.13245); softmax with the max subtracted, as in FlashAttention (Dao et
// al. 2022, arXiv:2205.14135).
//   query head h uses key/value head g = h / (NH / NKV)  (Hugging Face repeat_kv order);
//   out[h,:] = sum_{t < T_ctx} softmax_t(q·k_t[g] / sqrt(HS)) v_t[g],  q = row T_ctx-1's q[h].
// So out equals row T_ctx-1 of attention_forward(B = 1, T = T_ctx) over the same qkv rows.
//
// Shapes: qkv (T_ctx, (NH + 2*NKV) * HS), the cache laid out as the training attention's qkv for
//         B = 1: row t = [q_t heads | k_t heads | v_t heads], rotary already applied; only the
//         q part of the last row is read (the q parts of earlier rows are ignored);
//         out (NH * HS).
// Contract: writes `=` into out. T_ctx >= 1, NH a multiple of NKV; bad sizes or null pointers
// throw ssiat::Error. Deterministic: every output element comes from one task summing in a
// fixed order (no atomics), so the bits do not depend on the thread count or scheduling.
// CPU: OpenMP over heads; scores, exponentials, sums and the weighted V sum in double for both
//      float and double (rounded to T once, at the end).
// CUDA: f32 storage and arithmetic; one block per query head, T_ctx streamed in chunks of keys
//       with an online softmax in base 2 (running max and sum, partial outputs rescaled);
//       HS <= 256, any T_ctx < 2^31.
#pragma once
#include <cstdint>

#include "kernels/backend.h"

namespace ssiat::kernels::cpu {

template <typename T>
void attention_decode(T* out, const T* qkv, int64_t T_ctx, int64_t NH, int64_t NKV, int64_t HS);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cuda {

void attention_decode(float* out, const float* qkv, int64_t T_ctx, int64_t NH, int64_t NKV, int64_t HS, Stream s);

}  // namespace ssiat::kernels::cuda
