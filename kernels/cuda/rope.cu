// CUDA rotary position embedding (contract in kernels/rope.h; oracle kernels/cpu/rope.cpp):
// Hugging Face Llama rotate_half pairing (j, j + HS/2), in place on the first NH + NKV heads
// (q then k) of every token of the fused qkv buffer; v is never touched. The cos/sin tables are
// the CPU's rope_tables output, uploaded, so both backends rotate by the same angles.
//   forward:  lo' = lo * c - hi * s,  hi' = hi * c + lo * s
//   backward: lo' = lo * c + hi * s,  hi' = hi * c - lo * s   (the transposed = inverse rotation)
// One thread per (token, head, j) pair, consecutive j in consecutive threads (coalesced). Each
// output depends on its own pair only (no reduction), so the bits are those of the CPU formula
// evaluated in f32 and never depend on the grid. All indices are 64-bit.
#include "kernels/cuda/common.cuh"
#include "kernels/rope.h"

namespace ssiat::kernels::cuda {
namespace {

constexpr int kThreads = 256;

enum class Rotation { kForward, kInverse };

// x (B*T, (NH + 2*NKV) * HS); cos, sin (T, HS/2). pairs = B*T * (NH + NKV) * HS/2.
template <Rotation kDir>
__global__ void rope_kernel(float* __restrict__ x, const float* __restrict__ cos, const float* __restrict__ sin,
                            int64_t pairs, int64_t T_, int64_t nheads, int64_t half, int64_t row_stride) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= pairs) return;
  const int64_t j = i % half;
  const int64_t head_tok = i / half;    // bt * nheads + h
  const int64_t h = head_tok % nheads;
  const int64_t bt = head_tok / nheads;
  const int64_t t = bt % T_;
  float* lo = x + bt * row_stride + h * 2 * half + j;
  float* hi = lo + half;
  const float c = cos[t * half + j];
  const float s = sin[t * half + j];
  const float a = *lo, b = *hi;
  if constexpr (kDir == Rotation::kForward) {
    *lo = a * c - b * s;
    *hi = b * c + a * s;
  } else {
    *lo = a * c + b * s;
    *hi = b * c - a * s;
  }
}

template <Rotation kDir>
void launch_rope(float* x, const float* cos, const float* sin, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                 int64_t HS, Stream s) {
  const int64_t half = HS / 2;
  const int64_t nheads = NH + NKV;
  const int64_t pairs = B * T_ * nheads * half;
  const int64_t row_stride = (NH + 2 * NKV) * HS;
  rope_kernel<kDir><<<detail::grid_1d(pairs, kThreads), kThreads, 0, s>>>(x, cos, sin, pairs, T_, nheads, half,
                                                                          row_stride);
  SSIAT_LAUNCH_CHECK();
}

// Validates as the CPU does; returns false when there is nothing to rotate.
bool check_args(const char* op, const void* x, const float* cos, const float* sin, int64_t B, int64_t T_,
                int64_t NH, int64_t NKV, int64_t HS) {
  SSIAT_CHECK(B >= 0 && T_ >= 0 && NH > 0 && NKV > 0 && HS > 0)
      << op << ": bad shape B=" << B << " T=" << T_ << " NH=" << NH << " NKV=" << NKV << " HS=" << HS;
  SSIAT_CHECK(HS % 2 == 0) << op << ": head size must be even, got HS=" << HS;
  if (B == 0 || T_ == 0) return false;
  SSIAT_CHECK(x && cos && sin) << op << ": null pointer (B=" << B << " T=" << T_ << " HS=" << HS << ")";
  return true;
}

}  // namespace

void rope_forward(float* qkv, const float* cos, const float* sin, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                  int64_t HS, Stream s) {
  if (!check_args("rope_forward", qkv, cos, sin, B, T_, NH, NKV, HS)) return;
  launch_rope<Rotation::kForward>(qkv, cos, sin, B, T_, NH, NKV, HS, s);
}

void rope_backward(float* dqkv, const float* cos, const float* sin, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                   int64_t HS, Stream s) {
  if (!check_args("rope_backward", dqkv, cos, sin, B, T_, NH, NKV, HS)) return;
  launch_rope<Rotation::kInverse>(dqkv, cos, sin, B, T_, NH, NKV, HS, s);
}

}  // namespace ssiat::kernels::cuda
