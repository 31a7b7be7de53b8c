// Megatron-style tensor parallelism applied to the one-rank model (Shoeybi et al. 2019,
// arXiv:1909.08053, section 3; ../shared/DESIGN.md "Parallelism"): the column- and row-parallel
// linear layers, the vocabulary-parallel embedding and cross-entropy, each a GEMM or kernel
// (core/ops.h) plus a region primitive (distributed/tp_regions.h) over the tp group.
//
//   column_forward   Y (N, OUTl) = X · W_lᵀ            X replicated (copy: forward identity)
//   column_backward  dW_l += dYᵀ X;  dX = Σ_ranks dY · W_l   (copy backward: all-reduce of dX)
//   row_forward      Y (N, OUT) = Σ_ranks X_l · W_lᵀ   (reduce: all-reduce of the partial Y)
//   row_backward     dW_l += dYᵀ X_l;  dX_l = dY · W_l  (reduce backward: identity)
//   embedding        out = Σ_ranks (rows of this rank's vocabulary slice, zero elsewhere)
//   cross_entropy    kernels/vocab_parallel.h: the row max gathered and combined in rank
//                    order, Σ exp and the target logit all-reduced in rank order; no rank holds
//                    the full logits. With `grad`, logits are replaced by dloss·dloss_n/dlogits.
// With one rank (comm == nullptr or size 1) every function is exactly the one-rank op (the same
// calls, so the same bits as a model without tensor parallelism).
//
// Buffers are the model's (its device); `comm` must move them (MPI: host, NCCL: CUDA).
#pragma once

#include <cstdint>

#include "core/device.h"
#include "distributed/comm.h"
#include "kernels/backend.h"

namespace ssiat {

struct TensorParallel {
  distributed::Communicator* comm = nullptr;  // the tp group; nullptr: one rank
  int size = 1;
  int rank = 0;
  bool active() const { return size > 1; }
};

namespace tp {

using kernels::bf16;

template <typename T>
void column_forward(const Backend& be, const TensorParallel& tp, T* out, const T* inp, const T* w, const bf16* w_lp,
                    int64_t N, int64_t IN, int64_t OUTl);
template <typename T>
void column_backward(const Backend& be, const TensorParallel& tp, T* dinp, T* dweight, const T* dout, const T* inp,
                     const T* w, const bf16* w_lp, int64_t N, int64_t IN, int64_t OUTl);
template <typename T>
void row_forward(const Backend& be, const TensorParallel& tp, T* out, const T* inp, const T* w, const bf16* w_lp,
                 int64_t N, int64_t INl, int64_t OUT);
template <typename T>
void row_backward(const Backend& be, const TensorParallel& tp, T* dinp, T* dweight, const T* dout, const T* inp,
                  const T* w, const bf16* w_lp, int64_t N, int64_t INl, int64_t OUT);

// wte: this rank's rows [v0, v0 + Vl) of the (V, C) table; tokens are global ids.
template <typename T>
void embedding_forward(const Backend& be, const TensorParallel& tp, T* out, const int32_t* tokens, const T* wte,
                       int64_t N, int64_t C, int64_t Vl, int64_t v0);
template <typename T>
void embedding_backward(const Backend& be, const TensorParallel& tp, T* dwte, const T* dout, const int32_t* tokens,
                        int64_t N, int64_t C, int64_t Vl, int64_t v0);

// Scratch of the vocabulary-parallel cross-entropy, on the model's device: rowmax (N),
// gathered (size · N), sums (2N: Σ exp, then the target logits).
template <typename T>
struct CeScratch {
  T* rowmax = nullptr;
  T* gathered = nullptr;
  T* sums = nullptr;
};
// losses (N) `=`; with grad, logits (N, Vl) := dloss · (softmax − onehot) restricted to this
// rank's columns; without, logits unchanged.
template <typename T>
void cross_entropy(const Backend& be, const TensorParallel& tp, T* losses, T* logits, const int32_t* targets,
                   int64_t N, int64_t Vl, int64_t v0, bool grad, T dloss, const CeScratch<T>& scratch);

}  // namespace tp
}  // namespace ssiat
