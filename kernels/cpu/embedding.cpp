// CPU token embedding (contract in kernels/embedding.h):
//   forward   out[n, :] = wte[tokens[n], :]                       (writes `=`)
//   backward  dwte[tokens[n], :] += dout[n, :]  for n = 0..N-1     (accumulates, rows in order)
// Tokens in [0, V) are a precondition (the data loader checks them; kernels/embedding.h).
// backward is parallel over columns: each thread owns a slice of every dwte row and walks the
// tokens in row order, so every dwte element receives its additions in the order n = 0..N-1
// whatever the thread count, and no two threads write the same element.
#include "kernels/embedding.h"

#include <omp.h>

#include <cstring>

#include "kernels/check.h"
#include "kernels/cpu/cpu_util.h"

namespace ssiat::kernels::cpu {

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, int64_t N, int64_t C, int64_t V) {
  SSIAT_CHECK(N >= 0 && C >= 0 && V >= 0)
      << "embedding_forward: negative shape N=" << N << " C=" << C << " V=" << V;
#pragma omp parallel for schedule(static) if (N * C >= detail::kParallelMinWork)
  for (int64_t n = 0; n < N; n++) {
    std::memcpy(out + n * C, wte + static_cast<int64_t>(tokens[n]) * C, sizeof(T) * C);
  }
}

template <typename T>
void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t V) {
  SSIAT_CHECK(N >= 0 && C >= 0 && V >= 0)
      << "embedding_backward: negative shape N=" << N << " C=" << C << " V=" << V;
  // 16 elements = one 64-byte cache line of float: threads never share a line of a dwte row
  // (for 64-byte aligned rows).
  constexpr int64_t kAlign = 16;
#pragma omp parallel if (N * C >= detail::kParallelMinWork)
  {
    const auto [c0, c1] = detail::split_range(C, kAlign, omp_get_num_threads(), omp_get_thread_num());
    const int64_t width = c1 - c0;
    for (int64_t n = 0; n < N; n++) {
      T* __restrict dst = dwte + static_cast<int64_t>(tokens[n]) * C + c0;
      const T* __restrict src = dout + n * C + c0;
      for (int64_t c = 0; c < width; c++) dst[c] += src[c];
    }
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int64_t, int64_t, int64_t);
template void embedding_forward<double>(double*, const int32_t*, const double*, int64_t, int64_t,
                                        int64_t);
template void embedding_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t, int64_t);
template void embedding_backward<double>(double*, const double*, const int32_t*, int64_t, int64_t,
                                         int64_t);

}  // namespace ssiat::kernels::cpu
