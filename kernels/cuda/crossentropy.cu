// CUDA softmax + cross-entropy (contract in kernels/crossentropy.h; oracle
// kernels/cpu/crossentropy.cpp). Per row, with M = max_v x[v] and S = sum_v e^(x[v] - M):
//   loss = (M - x[target]) + log(S),   grad[v] = e^(x[v] - M) * (dloss / S) - dloss * [v == target].
// One block per row (grid-striding over rows beyond kMaxBlocks), streamed over V:
//   pass 1: each thread keeps a running (max m, sum s of e^(x - m)) over columns tid, tid +
//           kThreads, ... (the online softmax normaliser of Milakov & Gimelshein 2018,
//           arXiv:1805.02867): a larger x rescales s by e^(m - x), so every element costs one expf;
//           the per-thread pairs are then combined by a fixed tree (warp shuffles down, then warp 0
//           over the per-warp results) with (m1, s1) + (m2, s2) = (M, s1 e^(m1-M) + s2 e^(m2-M)).
//   pass 2 (fused only): each column's gradient overwrites its logit.
// Probabilities are never stored. The order of every sum is fixed by kThreads (a constant) and V,
// never by the grid or the device, so the bits are the same on every run. expf / logf are the
// accurate libdevice functions (no fast intrinsics). All index math is 64-bit: N * V may exceed
// 2^31. Targets live on the device, so the CPU's "target < V" check cannot run on the host: a row
// whose target is >= V gets loss NaN (and, fused, a NaN gradient row) so the error is visible.
#include <cmath>

#include "kernels/crossentropy.h"
#include "kernels/cuda/common.cuh"

namespace ssiat::kernels::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 256;  // part of the summation order: never derive it from the device
constexpr int kWarps = kThreads / kWarp;
constexpr int64_t kMaxBlocks = int64_t{1} << 16;

struct MaxSum {
  float m;  // running max
  float s;  // sum of e^(x - m)
};

// (m1, s1) + (m2, s2); an empty side (m = -inf, s = 0) contributes nothing (no -inf - -inf).
__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.0f};
  const float sa = a.m == -INFINITY ? 0.0f : a.s * expf(a.m - m);
  const float sb = b.m == -INFINITY ? 0.0f : b.s * expf(b.m - m);
  return {m, sa + sb};
}

// Adds one element to a running pair. A NaN x keeps m and makes s NaN (so the loss is NaN).
__device__ __forceinline__ void accumulate(MaxSum& p, float x) {
  if (x > p.m) {
    p.s = p.s * expf(p.m - x) + 1.0f;  // p.m = -inf: e^-inf = 0, s = 1
    p.m = x;
  } else if (x != -INFINITY) {
    p.s += expf(x - p.m);
  }
}

// (M, S) of row x (V) for the whole block; every thread gets the result. `shared` holds kWarps + 1
// pairs. Ends with a barrier, so the caller may then overwrite the row.
__device__ MaxSum row_max_sum(const float* x, int64_t V, MaxSum* shared) {
  MaxSum p{-INFINITY, 0.0f};
  // Columns tid, tid + kThreads, ... in order; four loads issued before their four updates.
  int64_t v = threadIdx.x;
  for (; v + 3 * kThreads < V; v += 4 * kThreads) {
    const float x0 = x[v], x1 = x[v + kThreads], x2 = x[v + 2 * kThreads], x3 = x[v + 3 * kThreads];
    accumulate(p, x0);
    accumulate(p, x1);
    accumulate(p, x2);
    accumulate(p, x3);
  }
  for (; v < V; v += kThreads) accumulate(p, x[v]);
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const MaxSum q{__shfl_down_sync(0xffffffffu, p.m, offset), __shfl_down_sync(0xffffffffu, p.s, offset)};
    p = combine(p, q);
  }
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  if (lane == 0) shared[warp] = p;
  __syncthreads();
  if (warp == 0) {
    p = lane < kWarps ? shared[lane] : MaxSum{-INFINITY, 0.0f};
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      const MaxSum q{__shfl_down_sync(0xffffffffu, p.m, offset), __shfl_down_sync(0xffffffffu, p.s, offset)};
      p = combine(p, q);
    }
    if (lane == 0) shared[kWarps] = p;
  }
  __syncthreads();
  return shared[kWarps];
}

// losses (N); logits (N, V) read only; targets (N).
__global__ void __launch_bounds__(kThreads)
    crossentropy_forward_kernel(float* __restrict__ losses, const float* __restrict__ logits,
                                const int32_t* __restrict__ targets, int64_t N, int64_t V) {
  __shared__ MaxSum shared[kWarps + 1];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const int32_t t = targets[n];  // the same for the whole block: uniform branches below
    if (t < 0 || t >= V) {
      if (threadIdx.x == 0) losses[n] = t < 0 ? 0.0f : NAN;
      continue;
    }
    const float* x = logits + n * V;
    const MaxSum r = row_max_sum(x, V, shared);
    if (threadIdx.x == 0) losses[n] = (r.m - x[t]) + logf(r.s);
    __syncthreads();  // shared is reused by the next row
  }
}

// losses (N); logits (N, V) replaced by their gradient; targets (N).
__global__ void __launch_bounds__(kThreads)
    crossentropy_fused_kernel(float* __restrict__ losses, float* __restrict__ logits,
                              const int32_t* __restrict__ targets, int64_t N, int64_t V, float dloss) {
  __shared__ MaxSum shared[kWarps + 1];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    float* x = logits + n * V;
    const int32_t t = targets[n];  // the same for the whole block: uniform branches below
    if (t < 0 || t >= V) {
      const float fill = t < 0 ? 0.0f : NAN;
      if (threadIdx.x == 0) losses[n] = fill;
      for (int64_t v = threadIdx.x; v < V; v += kThreads) x[v] = fill;
      continue;
    }
    const float xt = x[t];  // read by every thread before row_max_sum's barriers; the row is written after
    const MaxSum r = row_max_sum(x, V, shared);
    if (threadIdx.x == 0) losses[n] = (r.m - xt) + logf(r.s);
    const float scale = dloss / r.s;
    for (int64_t v = threadIdx.x; v < V; v += kThreads) {
      float g = expf(x[v] - r.m) * scale;
      if (v == t) g -= dloss;
      x[v] = g;
    }
    __syncthreads();  // shared is reused by the next row
  }
}

unsigned int row_blocks(int64_t N) { return static_cast<unsigned int>(N < kMaxBlocks ? N : kMaxBlocks); }

void launch_forward(float* losses, const float* logits, const int32_t* targets, int64_t N, int64_t V, Stream s) {
  crossentropy_forward_kernel<<<row_blocks(N), kThreads, 0, s>>>(losses, logits, targets, N, V);
  SSIAT_LAUNCH_CHECK();
}

void launch_fused(float* losses, float* logits, const int32_t* targets, int64_t N, int64_t V, float dloss,
                  Stream s) {
  crossentropy_fused_kernel<<<row_blocks(N), kThreads, 0, s>>>(losses, logits, targets, N, V, dloss);
  SSIAT_LAUNCH_CHECK();
}

}  // namespace

void crossentropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t N, int64_t V,
                          Stream s) {
  SSIAT_CHECK(N >= 0 && V > 0) << "crossentropy_forward: bad shape N=" << N << " V=" << V;
  if (N == 0) return;
  SSIAT_CHECK(losses && logits && targets) << "crossentropy_forward: null pointer (N=" << N << " V=" << V << ")";
  launch_forward(losses, logits, targets, N, V, s);
}

void crossentropy_fused(float* losses, float* logits, const int32_t* targets, int64_t N, int64_t V, float dloss,
                        Stream s) {
  SSIAT_CHECK(N >= 0 && V > 0) << "crossentropy_fused: bad shape N=" << N << " V=" << V;
  if (N == 0) return;
  SSIAT_CHECK(losses && logits && targets) << "crossentropy_fused: null pointer (N=" << N << " V=" << V << ")";
  launch_fused(losses, logits, targets, N, V, dloss, s);
}

}  // namespace ssiat::kernels::cuda
