// CUDA SwiGLU (contract in kernels/swiglu.h; oracle kernels/cpu/swiglu.cpp, whose formulas and
// operation order are followed). With g = gate, u = up, s = sigmoid(g) = 1 / (1 + e^-g):
//   out = g * s * u;   dgate = dout * u * (s + g s (1 - s));   dup = dout * g * s.
// e^-g is expf (the accurate libdevice exp, not __expf) so the values stay within ~1 ulp of the
// CPU's exp_approx. One thread per (n, f), 64-bit indices; purely element-wise, so the bits never
// depend on the grid.
#include "kernels/cuda/common.cuh"
#include "kernels/swiglu.h"

namespace ssiat::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// out (N, F); inp (N, 2F) = [gate | up] per row. count = N * F.
__global__ void swiglu_forward_kernel(float* __restrict__ out, const float* __restrict__ inp, int64_t count,
                                      int64_t F) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const int64_t n = i / F;
  const int64_t f = i - n * F;
  const float* gate = inp + n * 2 * F;
  const float g = gate[f];
  const float s = 1.0f / (1.0f + expf(-g));
  out[i] = g * s * gate[F + f];
}

// dinp (N, 2F) = [dgate | dup]; dout (N, F); inp (N, 2F). count = N * F.
__global__ void swiglu_backward_kernel(float* __restrict__ dinp, const float* __restrict__ dout,
                                       const float* __restrict__ inp, int64_t count, int64_t F) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const int64_t n = i / F;
  const int64_t f = i - n * F;
  const int64_t row = n * 2 * F;
  const float g = inp[row + f];
  const float u = inp[row + F + f];
  const float d = dout[i];
  const float s = 1.0f / (1.0f + expf(-g));
  const float gs = g * s;
  dinp[row + f] = d * u * (s + gs * (1.0f - s));
  dinp[row + F + f] = d * gs;
}

void launch_forward(float* out, const float* inp, int64_t N, int64_t F, Stream s) {
  const int64_t count = N * F;
  swiglu_forward_kernel<<<detail::grid_1d(count, kThreads), kThreads, 0, s>>>(out, inp, count, F);
  SSIAT_LAUNCH_CHECK();
}

void launch_backward(float* dinp, const float* dout, const float* inp, int64_t N, int64_t F, Stream s) {
  const int64_t count = N * F;
  swiglu_backward_kernel<<<detail::grid_1d(count, kThreads), kThreads, 0, s>>>(dinp, dout, inp, count, F);
  SSIAT_LAUNCH_CHECK();
}

}  // namespace

void swiglu_forward(float* out, const float* inp, int64_t N, int64_t F, Stream s) {
  SSIAT_CHECK(N >= 0 && F >= 0) << "swiglu_forward: negative shape N=" << N << " F=" << F;
  if (N == 0 || F == 0) return;
  SSIAT_CHECK(out && inp) << "swiglu_forward: null pointer (N=" << N << " F=" << F << ")";
  launch_forward(out, inp, N, F, s);
}

void swiglu_backward(float* dinp, const float* dout, const float* inp, int64_t N, int64_t F, Stream s) {
  SSIAT_CHECK(N >= 0 && F >= 0) << "swiglu_backward: negative shape N=" << N << " F=" << F;
  if (N == 0 || F == 0) return;
  SSIAT_CHECK(dinp && dout && inp) << "swiglu_backward: null pointer (N=" << N << " F=" << F << ")";
  launch_backward(dinp, dout, inp, N, F, s);
}

}  // namespace ssiat::kernels::cuda
