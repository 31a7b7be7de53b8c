// CPU SwiGLU (contract in kernels/swiglu.h). With s = sigmoid(g) = 1 / (1 + e^-g):
//   out = g * s * u
//   dg  = dout * u * s * (1 + g * (1 - s))      (d silu / dg = s + g s (1 - s))
//   du  = dout * g * s
// e^-g comes from detail::exp_approx (vectorisable, ~1 ulp), so the row loops have no calls.
// Purely element-wise, parallel over rows: the result does not depend on the thread count.
#include "kernels/swiglu.h"

#include "kernels/check.h"
#include "kernels/cpu/cpu_util.h"

namespace ssiat::kernels::cpu {

template <typename T>
void swiglu_forward(T* out, const T* inp, int64_t N, int64_t F) {
  SSIAT_CHECK(N >= 0 && F >= 0) << "swiglu_forward: negative shape N=" << N << " F=" << F;
#pragma omp parallel for schedule(static) if (N * F >= detail::kParallelMinWork)
  for (int64_t n = 0; n < N; n++) {
    const T* __restrict gate = inp + n * 2 * F;
    const T* __restrict up = gate + F;
    T* __restrict o = out + n * F;
    for (int64_t f = 0; f < F; f++) {
      const T g = gate[f];
      const T s = T(1) / (T(1) + detail::exp_approx(-g));
      o[f] = g * s * up[f];
    }
  }
}

template <typename T>
void swiglu_backward(T* dinp, const T* dout, const T* inp, int64_t N, int64_t F) {
  SSIAT_CHECK(N >= 0 && F >= 0) << "swiglu_backward: negative shape N=" << N << " F=" << F;
#pragma omp parallel for schedule(static) if (N * F >= detail::kParallelMinWork)
  for (int64_t n = 0; n < N; n++) {
    const T* __restrict gate = inp + n * 2 * F;
    const T* __restrict up = gate + F;
    const T* __restrict d = dout + n * F;
    T* __restrict dgate = dinp + n * 2 * F;
    T* __restrict dup = dgate + F;
    for (int64_t f = 0; f < F; f++) {
      const T g = gate[f];
      const T s = T(1) / (T(1) + detail::exp_approx(-g));
      const T gs = g * s;
      dgate[f] = d[f] * up[f] * (s + gs * (T(1) - s));
      dup[f] = d[f] * gs;
    }
  }
}

template void swiglu_forward<float>(float*, const float*, int64_t, int64_t);
template void swiglu_forward<double>(double*, const double*, int64_t, int64_t);
template void swiglu_backward<float>(float*, const float*, const float*, int64_t, int64_t);
template void swiglu_backward<double>(double*, const double*, const double*, int64_t, int64_t);

}  // namespace ssiat::kernels::cpu
