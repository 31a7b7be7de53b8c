// CPU vocabulary-parallel embedding and cross-entropy (contract in kernels/vocab_parallel.h).
// The same per-row arithmetic as kernels/cpu/crossentropy.cpp (detail::row_max, row_sum_exp,
// exp_approx) restricted to this rank's Vl columns; rows are independent, so results never
// depend on the thread count. The embedding backward is parallel over columns as
// kernels/cpu/embedding.cpp's: each dwte element receives its additions in the order n = 0..N-1.
#include "kernels/vocab_parallel.h"

#include <omp.h>

#include <cmath>
#include <cstring>

#include "kernels/check.h"
#include "kernels/cpu/cpu_util.h"
#include "kernels/cpu/softmax_rows.h"

namespace ssiat::kernels::cpu {
namespace {

// tokens[n] - v0 if it is a row of this shard, else -1.
inline int64_t local_row(int32_t token, int64_t Vl, int64_t v0) {
  const int64_t r = static_cast<int64_t>(token) - v0;
  return (token >= 0 && r >= 0 && r < Vl) ? r : -1;
}

void check_shape(const char* op, int64_t N, int64_t W, int64_t Vl, int64_t v0) {
  SSIAT_CHECK(N >= 0 && W >= 0 && Vl >= 1 && v0 >= 0)
      << op << ": bad shape N=" << N << " C/Vl=" << W << " Vl=" << Vl << " v0=" << v0;
}

}  // namespace

template <typename T>
void embedding_shard_forward(T* out, const int32_t* tokens, const T* wte, int64_t N, int64_t C, int64_t Vl,
                             int64_t v0) {
  check_shape("embedding_shard_forward", N, C, Vl, v0);
#pragma omp parallel for schedule(static) if (N * C >= detail::kParallelMinWork)
  for (int64_t n = 0; n < N; n++) {
    const int64_t r = local_row(tokens[n], Vl, v0);
    if (r >= 0) std::memcpy(out + n * C, wte + r * C, sizeof(T) * C);
    else std::memset(out + n * C, 0, sizeof(T) * C);
  }
}

template <typename T>
void embedding_shard_backward(T* dwte, const T* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t Vl,
                              int64_t v0) {
  check_shape("embedding_shard_backward", N, C, Vl, v0);
  constexpr int64_t kAlign = 16;  // one 64-byte line of float per thread boundary
#pragma omp parallel if (N * C >= detail::kParallelMinWork)
  {
    const auto [c0, c1] = detail::split_range(C, kAlign, omp_get_num_threads(), omp_get_thread_num());
    const int64_t width = c1 - c0;
    for (int64_t n = 0; n < N; n++) {
      const int64_t r = local_row(tokens[n], Vl, v0);
      if (r < 0) continue;
      T* __restrict dst = dwte + r * C + c0;
      const T* __restrict src = dout + n * C + c0;
      for (int64_t c = 0; c < width; c++) dst[c] += src[c];
    }
  }
}

template <typename T>
void ce_shard_max(T* rowmax, const T* logits, int64_t N, int64_t Vl) {
  check_shape("ce_shard_max", N, Vl, Vl, 0);
#pragma omp parallel for schedule(static) if (N * Vl >= detail::kParallelMinWork)
  for (int64_t n = 0; n < N; n++) rowmax[n] = detail::row_max(logits + n * Vl, Vl);
}

template <typename T>
void ce_shard_max_combine(T* rowmax, const T* gathered, int64_t R, int64_t N) {
  SSIAT_CHECK(R >= 1 && N >= 0) << "ce_shard_max_combine: bad shape R=" << R << " N=" << N;
  for (int64_t n = 0; n < N; n++) {
    T m = gathered[n];
    for (int64_t r = 1; r < R; r++) m = gathered[r * N + n] > m ? gathered[r * N + n] : m;
    rowmax[n] = m;
  }
}

template <typename T>
void ce_shard_sums(T* sumexp, T* target_logit, const T* logits, const int32_t* targets, const T* rowmax, int64_t N,
                   int64_t Vl, int64_t v0) {
  check_shape("ce_shard_sums", N, Vl, Vl, v0);
#pragma omp parallel for schedule(static) if (N * Vl >= detail::kParallelMinWork)
  for (int64_t n = 0; n < N; n++) {
    const T* x = logits + n * Vl;
    sumexp[n] = detail::row_sum_exp(x, rowmax[n], Vl);
    const int64_t t = local_row(targets[n], Vl, v0);
    target_logit[n] = t >= 0 ? x[t] : T(0);
  }
}

template <typename T>
void ce_shard_loss(T* losses, const T* rowmax, const T* target_logit, const T* sumexp, const int32_t* targets,
                   int64_t N) {
  SSIAT_CHECK(N >= 0) << "ce_shard_loss: bad shape N=" << N;
  for (int64_t n = 0; n < N; n++)
    losses[n] = targets[n] < 0 ? T(0) : (rowmax[n] - target_logit[n]) + std::log(sumexp[n]);
}

template <typename T>
void ce_shard_grad(T* logits, const int32_t* targets, const T* rowmax, const T* sumexp, int64_t N, int64_t Vl,
                   int64_t v0, T dloss) {
  check_shape("ce_shard_grad", N, Vl, Vl, v0);
#pragma omp parallel for schedule(static) if (N * Vl >= detail::kParallelMinWork)
  for (int64_t n = 0; n < N; n++) {
    T* __restrict x = logits + n * Vl;
    if (targets[n] < 0) {
      for (int64_t v = 0; v < Vl; v++) x[v] = T(0);
      continue;
    }
    const T m = rowmax[n];
    const T scale = dloss / sumexp[n];
    for (int64_t v = 0; v < Vl; v++) x[v] = detail::exp_approx(x[v] - m) * scale;
    const int64_t t = local_row(targets[n], Vl, v0);
    if (t >= 0) x[t] -= dloss;
  }
}

#define SSIAT_VOCAB_PARALLEL(T)                                                                                  \
  template void embedding_shard_forward<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t, int64_t);    \
  template void embedding_shard_backward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t);   \
  template void ce_shard_max<T>(T*, const T*, int64_t, int64_t);                                                 \
  template void ce_shard_max_combine<T>(T*, const T*, int64_t, int64_t);                                         \
  template void ce_shard_sums<T>(T*, T*, const T*, const int32_t*, const T*, int64_t, int64_t, int64_t);         \
  template void ce_shard_loss<T>(T*, const T*, const T*, const T*, const int32_t*, int64_t);                     \
  template void ce_shard_grad<T>(T*, const int32_t*, const T*, const T*, int64_t, int64_t, int64_t, T);
SSIAT_VOCAB_PARALLEL(float)
SSIAT_VOCAB_PARALLEL(double)
#undef SSIAT_VOCAB_PARALLEL

}  // namespace ssiat::kernels::cpu
