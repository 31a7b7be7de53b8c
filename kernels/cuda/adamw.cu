// CUDA AdamW step (formula and contract in kernels/adamw.h; Loshchilov & Hutter 2019,
// arXiv:1711.05101, in PyTorch's order of operations), the twin of kernels/cpu/adamw.cpp:
//   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
//   p = p*decay - (step_size*m) / (sqrt(v)/bc2_sqrt + eps),
//   decay = 1 - lr*wd, step_size = lr / (1 - b1^step), bc2_sqrt = sqrt(1 - b2^step).
// The scalars are formed on the host in double exactly as the CPU code forms them and rounded to
// f32 once. The element formula is written with explicit round-to-nearest intrinsics so that
// nvcc's FMA contraction cannot pick its own grouping; it uses the three fmas GCC 12 emits for
// the CPU float path in the project's Release flags (x86-64-v3, -ffp-contract=fast, vector and
// scalar loops alike):
//   m = fma(b1, m, (1-b1)*g);  v = fma(b2, v, ((1-b2)*g)*g);
//   p = fma(p, decay, -((step_size*m) / (sqrt(v)/bc2_sqrt + eps))).
// sqrt and division are IEEE correctly rounded on both sides, so the backends agree to the bit
// where the CPU compiler contracts this way (checked on the host by emulating this formula
// against the CPU object: 0 of 2^20 mismatches) and to about an ulp per operation where it
// does not (a build without FMA, another compiler).
// One grid-stride element-wise kernel; element i is touched by one thread only, so the result
// is independent of the launch shape. With param_lp, the same pass writes the bf16 working copy
// param_lp[i] = __float2bfloat16_rn(new param[i]) (= bf16_from_float on the host).
#include <algorithm>
#include <cmath>

#include "kernels/adamw.h"
#include "kernels/cuda/common.cuh"

namespace ssiat::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned int kMaxGridStrideBlocks = 8192;  // enough to fill any GPU

// The f32 hyper-parameter scalars of one step, formed as kernels/cpu/adamw.cpp forms them.
struct AdamWScalars {
  float decay, b1, one_minus_b1, b2, one_minus_b2, step_size, bc2_sqrt, eps;
};

AdamWScalars make_scalars(const AdamWParams& hp) {
  const double step = static_cast<double>(hp.step);
  AdamWScalars k{};
  k.decay = static_cast<float>(1.0 - hp.lr * hp.weight_decay);
  k.b1 = static_cast<float>(hp.beta1);
  k.one_minus_b1 = static_cast<float>(1.0 - hp.beta1);
  k.b2 = static_cast<float>(hp.beta2);
  k.one_minus_b2 = static_cast<float>(1.0 - hp.beta2);
  k.step_size = static_cast<float>(hp.lr / (1.0 - std::pow(hp.beta1, step)));
  k.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(hp.beta2, step)));
  k.eps = static_cast<float>(hp.eps);
  return k;
}

template <bool kWriteLowPrecision>
__global__ void adamw_kernel(float* __restrict__ param,             // (n)
                             __nv_bfloat16* __restrict__ param_lp,  // (n) or unused
                             const float* __restrict__ grad,        // (n)
                             float* __restrict__ m,                 // (n)
                             float* __restrict__ v,                 // (n)
                             int64_t n, AdamWScalars k,
                             int32_t* __restrict__ changed) {  // (1) or nullptr
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int any = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float gi = grad[i];
    const float mi = __fmaf_rn(k.b1, m[i], __fmul_rn(k.one_minus_b1, gi));
    const float vi = __fmaf_rn(k.b2, v[i], __fmul_rn(__fmul_rn(k.one_minus_b2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), k.bc2_sqrt), k.eps);
    const float old = param[i];
    const float p = __fmaf_rn(old, k.decay, -__fdiv_rn(__fmul_rn(k.step_size, mi), denom));
    param[i] = p;
    any |= p != old;
    if constexpr (kWriteLowPrecision) param_lp[i] = __float2bfloat16_rn(p);
  }
  // One store per block that changed something (every thread of the block reaches this).
  if (__syncthreads_or(any) && changed != nullptr && threadIdx.x == 0) *changed = 1;
}

void launch_adamw(float* param, bf16* param_lp, const float* grad, float* m, float* v, int64_t n,
                  const AdamWScalars& k, Stream s, int32_t* changed) {
  const unsigned int blocks = std::min(detail::grid_1d(n, kThreads), kMaxGridStrideBlocks);
  if (param_lp != nullptr)
    adamw_kernel<true><<<blocks, kThreads, 0, s>>>(param, detail::as_nv(param_lp), grad, m, v, n, k, changed);
  else
    adamw_kernel<false><<<blocks, kThreads, 0, s>>>(param, nullptr, grad, m, v, n, k, changed);
  SSIAT_LAUNCH_CHECK();
}

}  // namespace

void adamw_update(float* param, bf16* param_lp, const float* grad, float* m, float* v, int64_t n,
                  const AdamWParams& hp, Stream s, int32_t* changed) {
  SSIAT_CHECK(n >= 0) << "adamw_update: negative size n=" << n;
  SSIAT_CHECK(hp.step >= 1) << "adamw_update: step must be >= 1, got " << hp.step;
  SSIAT_CHECK(hp.beta1 >= 0 && hp.beta1 < 1 && hp.beta2 >= 0 && hp.beta2 < 1)
      << "adamw_update: betas must lie in [0, 1), got beta1=" << hp.beta1 << " beta2=" << hp.beta2;
  if (n == 0) return;
  SSIAT_CHECK(param != nullptr && grad != nullptr && m != nullptr && v != nullptr)
      << "adamw_update: null pointer (param=" << param << ", grad=" << grad << ", m=" << m << ", v=" << v
      << ") for n=" << n;
  launch_adamw(param, param_lp, grad, m, v, n, make_scalars(hp), s, changed);
}

}  // namespace ssiat::kernels::cuda
