// Vocabulary-parallel embedding and cross-entropy (Megatron-LM, Shoeybi et al. 2019,
// arXiv:1909.08053, section 3): a tensor-parallel rank holds rows [v0, v0 + Vl) of the (V, C)
// embedding and LM head, so its logits are the (N, Vl) columns [v0, v0 + Vl) of the full (N, V)
// ones. No rank ever holds the full logits: the cross-entropy is assembled from per-row
// statistics combined over the tp group (core/tensor_parallel.h does the communication):
//   m_n   = max over ranks of ce_shard_max's local row max            (ce_shard_max_combine)
//   S_n   = sum over ranks (rank order) of sum_{local v} e^(x[n,v] - m_n)   (ce_shard_sums)
//   x_t   = sum over ranks of the target logit (only the owner's is non-zero; ce_shard_sums)
//   loss_n = (m_n - x_t) + log(S_n)                                    (ce_shard_loss)
//   grad[n,v] = dloss * (e^(x[n,v] - m_n) / S_n - [v0 + v == target_n])  (ce_shard_grad)
// the same formulas as kernels/crossentropy.h over the full row. A target < 0 is ignored: loss 0,
// gradient row 0, target logit 0.
//
// Shapes: tokens/targets (N) int32 (global ids in [0, V); precondition, checked by the loader);
// wte (Vl, C); out, dout (N, C); logits (N, Vl); rowmax, sumexp, target_logit, losses (N);
// gathered (R, N): row r is rank r's local row max.
// Contract: `=` writes except embedding_shard_backward, which accumulates `+=` into dwte, each
// row adding its positions in increasing n (deterministic for any thread count).
//   embedding_shard_forward   out[n,:] = wte[tokens[n] - v0, :] if v0 <= tokens[n] < v0 + Vl, else 0
//   embedding_shard_backward  dwte[tokens[n] - v0, :] += dout[n, :] for the tokens in range
//   ce_shard_max              rowmax[n] = max_v logits[n, v]
//   ce_shard_max_combine      rowmax[n] = max_r gathered[r, n]
//   ce_shard_sums             sumexp[n] = sum_v e^(logits[n,v] - rowmax[n]) (rowmax: the global m),
//                             target_logit[n] = logits[n, targets[n] - v0] if in range, else 0
//   ce_shard_loss             losses[n] = (rowmax[n] - target_logit[n]) + log(sumexp[n]), 0 if targets[n] < 0
//   ce_shard_grad             logits[n, v] := dloss * (e^(logits[n,v] - rowmax[n]) / sumexp[n]
//                                                      - [v0 + v == targets[n]]), row 0 if targets[n] < 0
#pragma once
#include <cstdint>

#include "kernels/backend.h"

namespace ssiat::kernels::cpu {

template <typename T>
void embedding_shard_forward(T* out, const int32_t* tokens, const T* wte, int64_t N, int64_t C, int64_t Vl, int64_t v0);
template <typename T>
void embedding_shard_backward(T* dwte, const T* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t Vl,
                              int64_t v0);
template <typename T>
void ce_shard_max(T* rowmax, const T* logits, int64_t N, int64_t Vl);
template <typename T>
void ce_shard_max_combine(T* rowmax, const T* gathered, int64_t R, int64_t N);
template <typename T>
void ce_shard_sums(T* sumexp, T* target_logit, const T* logits, const int32_t* targets, const T* rowmax, int64_t N,
                   int64_t Vl, int64_t v0);
template <typename T>
void ce_shard_loss(T* losses, const T* rowmax, const T* target_logit, const T* sumexp, const int32_t* targets,
                   int64_t N);
template <typename T>
void ce_shard_grad(T* logits, const int32_t* targets, const T* rowmax, const T* sumexp, int64_t N, int64_t Vl,
                   int64_t v0, T dloss);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cuda {

void embedding_shard_forward(float* out, const int32_t* tokens, const float* wte, int64_t N, int64_t C, int64_t Vl,
                             int64_t v0, Stream s);
// Scratch of the sort-based backward (kernels/embedding.h's method, out-of-range positions under a
// sentinel key Vl, so sized as embedding_backward's for N and Vl + 1).
int64_t embedding_shard_backward_scratch_bytes(int64_t N, int64_t Vl);
void embedding_shard_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t Vl,
                              int64_t v0, Scratch scratch, Stream s);
void ce_shard_max(float* rowmax, const float* logits, int64_t N, int64_t Vl, Stream s);
void ce_shard_max_combine(float* rowmax, const float* gathered, int64_t R, int64_t N, Stream s);
void ce_shard_sums(float* sumexp, float* target_logit, const float* logits, const int32_t* targets,
                   const float* rowmax, int64_t N, int64_t Vl, int64_t v0, Stream s);
void ce_shard_loss(float* losses, const float* rowmax, const float* target_logit, const float* sumexp,
                   const int32_t* targets, int64_t N, Stream s);
void ce_shard_grad(float* logits, const int32_t* targets, const float* rowmax, const float* sumexp, int64_t N,
                   int64_t Vl, int64_t v0, float dloss, Stream s);

}  // namespace ssiat::kernels::cuda
