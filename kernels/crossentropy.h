// Softmax + cross-entropy over the LM head's logits, fused the llm.c way: the backward pass
// overwrites the logits with their gradient, so no second (N, V) buffer is needed.
//   loss[n] = logsumexp(logits[n,:]) - logits[n, target[n]];  a target < 0 is ignored (loss 0).
//
// Shapes: logits (N, V), targets (N) int32, losses (N).
// Contract: crossentropy_forward writes `=` into losses, logits untouched.
// crossentropy_fused writes `=` into losses and replaces logits[n,:] by
//   dloss * (softmax(logits[n,:]) - onehot(target[n]))   (all zeros for an ignored row),
// i.e. the gradient of dloss * sum_n loss[n].
// Precondition (checked by the data loader, not here): every target is < V.
// CUDA: one block per row, streamed over V in chunks (online max and sum, then one pass writing
// the gradient): probabilities are never stored; all indices 64-bit (N*V may exceed 2^31).
#pragma once
#include <cstdint>

#include "kernels/backend.h"

namespace ssiat::kernels::cpu {

template <typename T>
void crossentropy_forward(T* losses, const T* logits, const int32_t* targets, int64_t N, int64_t V);

template <typename T>
void crossentropy_fused(T* losses, T* logits, const int32_t* targets, int64_t N, int64_t V, T dloss);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cuda {

void crossentropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t N, int64_t V, Stream s);
void crossentropy_fused(float* losses, float* logits, const int32_t* targets, int64_t N, int64_t V, float dloss,
                        Stream s);

}  // namespace ssiat::kernels::cuda
