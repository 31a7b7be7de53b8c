// Column/row-parallel linears, vocabulary-parallel embedding and cross-entropy (contract in
// core/tensor_parallel.h).
#include "core/tensor_parallel.h"

#include <type_traits>

#include "core/error.h"
#include "core/ops.h"
#include "distributed/tp_regions.h"

namespace ssiat::tp {

namespace dist = distributed;

namespace {
template <typename T>
constexpr dist::DType dtype() {
  return std::is_same_v<T, double> ? dist::DType::kF64 : dist::DType::kF32;
}
}  // namespace

template <typename T>
void column_forward(const Backend& be, const TensorParallel& tp, T* out, const T* inp, const T* w, const bf16* w_lp,
                    int64_t N, int64_t IN, int64_t OUTl) {
  // copy region forward: the identity on the replicated input
  ops::matmul_forward(be, out, inp, w, w_lp, N, IN, OUTl);
  (void)tp;
}

template <typename T>
void column_backward(const Backend& be, const TensorParallel& tp, T* dinp, T* dweight, const T* dout, const T* inp,
                     const T* w, const bf16* w_lp, int64_t N, int64_t IN, int64_t OUTl) {
  ops::matmul_backward(be, dinp, dweight, dout, inp, w, w_lp, N, IN, OUTl);
  if (tp.active()) dist::tp_region::copy_backward(*tp.comm, dinp, static_cast<size_t>(N * IN), dtype<T>());
}

template <typename T>
void row_forward(const Backend& be, const TensorParallel& tp, T* out, const T* inp, const T* w, const bf16* w_lp,
                 int64_t N, int64_t INl, int64_t OUT) {
  ops::matmul_forward(be, out, inp, w, w_lp, N, INl, OUT);
  if (tp.active()) dist::tp_region::reduce_forward(*tp.comm, out, static_cast<size_t>(N * OUT), dtype<T>());
}

template <typename T>
void row_backward(const Backend& be, const TensorParallel& tp, T* dinp, T* dweight, const T* dout, const T* inp,
                  const T* w, const bf16* w_lp, int64_t N, int64_t INl, int64_t OUT) {
  // reduce region backward: the identity on the replicated dout
  ops::matmul_backward(be, dinp, dweight, dout, inp, w, w_lp, N, INl, OUT);
  (void)tp;
}

template <typename T>
void embedding_forward(const Backend& be, const TensorParallel& tp, T* out, const int32_t* tokens, const T* wte,
                       int64_t N, int64_t C, int64_t Vl, int64_t v0) {
  if (!tp.active()) return ops::embedding_forward(be, out, tokens, wte, N, C, Vl);
  ops::embedding_shard_forward(be, out, tokens, wte, N, C, Vl, v0);
  dist::tp_region::reduce_forward(*tp.comm, out, static_cast<size_t>(N * C), dtype<T>());
}

template <typename T>
void embedding_backward(const Backend& be, const TensorParallel& tp, T* dwte, const T* dout, const int32_t* tokens,
                        int64_t N, int64_t C, int64_t Vl, int64_t v0) {
  if (!tp.active()) return ops::embedding_backward(be, dwte, dout, tokens, N, C, Vl);
  ops::embedding_shard_backward(be, dwte, dout, tokens, N, C, Vl, v0);
}

template <typename T>
void cross_entropy(const Backend& be, const TensorParallel& tp, T* losses, T* logits, const int32_t* targets,
                   int64_t N, int64_t Vl, int64_t v0, bool grad, T dloss, const CeScratch<T>& s) {
  if (!tp.active()) {
    if (grad) return ops::crossentropy_fused(be, losses, logits, targets, N, Vl, dloss);
    return ops::crossentropy_forward(be, losses, logits, targets, N, Vl);
  }
  const auto R = static_cast<size_t>(tp.size);
  SSIAT_CHECK(s.rowmax && s.gathered && s.sums) << "vocab-parallel cross-entropy: no scratch";
  // m_n: every rank's local row max, gathered (R, N), combined in rank order.
  ops::ce_shard_max(be, s.gathered + static_cast<int64_t>(tp.rank) * N, logits, N, Vl);
  tp.comm->all_gather(s.gathered + static_cast<int64_t>(tp.rank) * N, s.gathered, R * static_cast<size_t>(N),
                      dtype<T>());
  ops::ce_shard_max_combine(be, s.rowmax, s.gathered, static_cast<int64_t>(R), N);
  // Σ exp(x - m_n) and the target logit, summed over ranks in rank order (one all-reduce).
  ops::ce_shard_sums(be, s.sums, s.sums + N, logits, targets, s.rowmax, N, Vl, v0);
  tp.comm->allreduce_sum(s.sums, 2 * static_cast<size_t>(N), dtype<T>());
  ops::ce_shard_loss(be, losses, s.rowmax, s.sums + N, s.sums, targets, N);
  if (grad) ops::ce_shard_grad(be, logits, targets, s.rowmax, s.sums, N, Vl, v0, dloss);
}

#define SSIAT_TP(T)                                                                                                 \
  template void column_forward<T>(const Backend&, const TensorParallel&, T*, const T*, const T*, const bf16*,       \
                                  int64_t, int64_t, int64_t);                                                       \
  template void column_backward<T>(const Backend&, const TensorParallel&, T*, T*, const T*, const T*, const T*,     \
                                   const bf16*, int64_t, int64_t, int64_t);                                         \
  template void row_forward<T>(const Backend&, const TensorParallel&, T*, const T*, const T*, const bf16*, int64_t, \
                               int64_t, int64_t);                                                                   \
  template void row_backward<T>(const Backend&, const TensorParallel&, T*, T*, const T*, const T*, const T*,        \
                                const bf16*, int64_t, int64_t, int64_t);                                            \
  template void embedding_forward<T>(const Backend&, const TensorParallel&, T*, const int32_t*, const T*, int64_t,  \
                                     int64_t, int64_t, int64_t);                                                    \
  template void embedding_backward<T>(const Backend&, const TensorParallel&, T*, const T*, const int32_t*, int64_t, \
                                      int64_t, int64_t, int64_t);                                                   \
  template void cross_entropy<T>(const Backend&, const TensorParallel&, T*, T*, const int32_t*, int64_t, int64_t,   \
                                 int64_t, bool, T, const CeScratch<T>&);
SSIAT_TP(float)
SSIAT_TP(double)
#undef SSIAT_TP

}  // namespace ssiat::tp
