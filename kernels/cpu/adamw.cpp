// CPU AdamW step (formula and contract in kernels/adamw.h), PyTorch's order of operations
// (torch.optim.AdamW, foreach=False): decoupled weight decay first, then the moments, then
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc1 = 1 - b1^step, bc2 = 1 - b2^step.
// The hyper-parameter scalars are formed in double once and rounded to T; the element loop is
// branch-free and vectorised. Element-wise, so independent of the thread count.
#include "kernels/adamw.h"

#include <cmath>

#include "kernels/check.h"
#include "kernels/cpu/cpu_util.h"

namespace ssiat::kernels::cpu {

template <typename T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, const AdamWParams& hp, int32_t* changed) {
  SSIAT_CHECK(n >= 0) << "adamw_update: negative size n=" << n;
  SSIAT_CHECK(hp.step >= 1) << "adamw_update: step must be >= 1, got " << hp.step;
  SSIAT_CHECK(hp.beta1 >= 0 && hp.beta1 < 1 && hp.beta2 >= 0 && hp.beta2 < 1)
      << "adamw_update: betas must lie in [0, 1), got beta1=" << hp.beta1 << " beta2=" << hp.beta2;
  const double step = static_cast<double>(hp.step);
  const T decay = static_cast<T>(1.0 - hp.lr * hp.weight_decay);
  const T b1 = static_cast<T>(hp.beta1), one_minus_b1 = static_cast<T>(1.0 - hp.beta1);
  const T b2 = static_cast<T>(hp.beta2), one_minus_b2 = static_cast<T>(1.0 - hp.beta2);
  const T step_size = static_cast<T>(hp.lr / (1.0 - std::pow(hp.beta1, step)));
  const T bc2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(hp.beta2, step)));
  const T eps = static_cast<T>(hp.eps);
  T* __restrict p = param;
  const T* __restrict g = grad;
  T* __restrict mm = m;
  T* __restrict vv = v;
  int32_t any = 0;
#pragma omp parallel for simd schedule(static) reduction(| : any) if (n >= detail::kParallelMinWork)
  for (int64_t i = 0; i < n; i++) {
    const T gi = g[i];
    const T mi = b1 * mm[i] + one_minus_b1 * gi;
    const T vi = b2 * vv[i] + one_minus_b2 * gi * gi;
    mm[i] = mi;
    vv[i] = vi;
    const T old = p[i];
    const T pn = old * decay - step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps);
    p[i] = pn;
    any |= static_cast<int32_t>(pn != old);
  }
  if (changed != nullptr && any != 0) *changed = 1;
}

template void adamw_update<float>(float*, const float*, float*, float*, int64_t, const AdamWParams&, int32_t*);
template void adamw_update<double>(double*, const double*, double*, double*, int64_t,
                                   const AdamWParams&, int32_t*);

}  // namespace ssiat::kernels::cpu
