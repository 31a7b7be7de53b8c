// CUDA element-wise helpers and deterministic reductions (contract in kernels/elementwise.h).
//
// add / scale_inplace: one grid-stride loop, one element per thread step; `out` may alias `a` or
// `b` (no __restrict__ on them), each element is read and written by the same thread.
//
// sum / sum_squares: a fixed two-level tree in double.
//   level 1: reduce_blocks(n) blocks (a function of n only, never of the device's SM count) of
//     kReduceThreads threads; thread t of block b accumulates the elements
//     i = b*kReduceThreads + t + k*(blocks*kReduceThreads), k = 0, 1, ..., in increasing k; the
//     block then combines its threads by a fixed tree (shfl_down by 16, 8, 4, 2, 1 inside each
//     warp, then the warp sums by the same tree in warp 0) into partial[b].
//   level 2: one block sums partial[0..blocks) the same way (thread t takes t, t+T, ... in order)
//     and writes the result; the host copies that one double back (synchronous).
// Every addition therefore happens in an order fixed by n alone: the same bits on every run and
// on every GPU of the same build (fma contraction is fixed at compile time). The value differs
// from cpu::sum / cpu::sum_squares only by that summation order.
// Scratch (double): partial[0..blocks) then result at [blocks]; reduce_scratch_bytes(n) bytes.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/device.h"
#include "kernels/elementwise.h"

namespace ssiat::kernels::cuda {
namespace {

constexpr int kThreads = 256;                        // element-wise kernels
constexpr unsigned int kMaxGridStrideBlocks = 8192;  // enough to fill any GPU
constexpr int kReduceThreads = 256;                  // both reduction levels
constexpr int64_t kReduceMaxBlocks = 1024;
constexpr int64_t kReducePerThread = 16;  // below this many elements per thread, fewer blocks
constexpr unsigned int kFullMask = 0xffffffffu;

// Level-1 blocks for n elements: depends on n only.
int64_t reduce_blocks(int64_t n) {
  const int64_t per_block = int64_t{kReduceThreads} * kReducePerThread;
  return std::clamp<int64_t>((n + per_block - 1) / per_block, 1, kReduceMaxBlocks);
}

// Sum of v over the block (blockDim.x == kReduceThreads) in a fixed tree; valid in thread 0.
__device__ double block_sum(double v) {
  static_assert(kReduceThreads % 32 == 0 && kReduceThreads <= 1024, "whole warps, at most 32");
  __shared__ double warp_sums[kReduceThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(kFullMask, v, offset);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kReduceThreads / 32 ? warp_sums[lane] : 0.0;
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(kFullMask, v, offset);
  }
  return v;
}

template <bool kSquare>
__device__ __forceinline__ double term(float x) {
  const double e = static_cast<double>(x);
  return kSquare ? e * e : e;
}

__global__ void add_kernel(float* out, const float* a, const float* b, int64_t n) {  // (n) each
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = a[i] + b[i];
}

__global__ void scale_kernel(float* __restrict__ x, float scale, int64_t n) {  // x (n)
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    x[i] *= scale;
}

// partial[blockIdx.x] = sum over this block's elements (see the file comment for the order).
template <bool kSquare>
__global__ void __launch_bounds__(kReduceThreads)
    reduce_partials_kernel(double* __restrict__ partial,  // (gridDim.x)
                           const float* __restrict__ x,   // (n)
                           int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kReduceThreads;
  int64_t i = static_cast<int64_t>(blockIdx.x) * kReduceThreads + threadIdx.x;
  double acc = 0.0;
  // Four loads in flight, added strictly in index order (same bits as the plain loop).
  for (; i + 3 * stride < n; i += 4 * stride) {
    const float x0 = x[i], x1 = x[i + stride], x2 = x[i + 2 * stride], x3 = x[i + 3 * stride];
    acc += term<kSquare>(x0);
    acc += term<kSquare>(x1);
    acc += term<kSquare>(x2);
    acc += term<kSquare>(x3);
  }
  for (; i < n; i += stride) acc += term<kSquare>(x[i]);
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// *result = sum of partial[0..count) in a fixed order; one block.
__global__ void __launch_bounds__(kReduceThreads)
    reduce_final_kernel(double* __restrict__ result,         // (1)
                        const double* __restrict__ partial,  // (count)
                        int count) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += kReduceThreads) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *result = acc;
}

void launch_add(float* out, const float* a, const float* b, int64_t n, Stream s) {
  const unsigned int blocks = std::min(detail::grid_1d(n, kThreads), kMaxGridStrideBlocks);
  add_kernel<<<blocks, kThreads, 0, s>>>(out, a, b, n);
  SSIAT_LAUNCH_CHECK();
}

void launch_scale(float* x, float scale, int64_t n, Stream s) {
  const unsigned int blocks = std::min(detail::grid_1d(n, kThreads), kMaxGridStrideBlocks);
  scale_kernel<<<blocks, kThreads, 0, s>>>(x, scale, n);
  SSIAT_LAUNCH_CHECK();
}

template <bool kSquare>
double launch_reduce(const float* x, int64_t n, Scratch scratch, Stream s) {
  const int64_t blocks = reduce_blocks(n);
  double* partial = static_cast<double*>(scratch.ptr);  // (blocks)
  double* result = partial + blocks;                    // (1)
  reduce_partials_kernel<kSquare><<<static_cast<unsigned int>(blocks), kReduceThreads, 0, s>>>(partial, x, n);
  SSIAT_LAUNCH_CHECK();
  reduce_final_kernel<<<1, kReduceThreads, 0, s>>>(result, partial, static_cast<int>(blocks));
  SSIAT_LAUNCH_CHECK();
  double value = 0.0;
  copy_bytes(&value, result, sizeof(double), Copy::kDeviceToHost, s);  // synchronizes s
  return value;
}

template <bool kSquare>
double reduce(const char* op, const float* x, int64_t n, Scratch scratch, Stream s) {
  SSIAT_CHECK(n >= 0) << op << ": negative size n=" << n;
  if (n == 0) return 0.0;
  SSIAT_CHECK(x != nullptr) << op << ": null input for n=" << n;
  const int64_t need = reduce_scratch_bytes(n);
  SSIAT_CHECK(scratch.ptr != nullptr && scratch.bytes >= need)
      << op << ": scratch of " << scratch.bytes << " bytes at " << scratch.ptr << " is too small, need " << need
      << " bytes (reduce_scratch_bytes(" << n << "))";
  SSIAT_CHECK(reinterpret_cast<uintptr_t>(scratch.ptr) % alignof(double) == 0)
      << op << ": scratch pointer " << scratch.ptr << " is not " << alignof(double) << "-byte aligned";
  return launch_reduce<kSquare>(x, n, scratch, s);
}

}  // namespace

void add(float* out, const float* a, const float* b, int64_t n, Stream s) {
  SSIAT_CHECK(n >= 0) << "add: negative size n=" << n;
  if (n == 0) return;
  SSIAT_CHECK(out != nullptr && a != nullptr && b != nullptr) << "add: null pointer for n=" << n;
  launch_add(out, a, b, n, s);
}

void scale_inplace(float* x, float scale, int64_t n, Stream s) {
  SSIAT_CHECK(n >= 0) << "scale_inplace: negative size n=" << n;
  if (n == 0) return;
  SSIAT_CHECK(x != nullptr) << "scale_inplace: null pointer for n=" << n;
  launch_scale(x, scale, n, s);
}

int64_t reduce_scratch_bytes(int64_t n) {
  SSIAT_CHECK(n >= 0) << "reduce_scratch_bytes: negative size n=" << n;
  if (n == 0) return 0;
  return (reduce_blocks(n) + 1) * static_cast<int64_t>(sizeof(double));
}

double sum(const float* x, int64_t n, Scratch scratch, Stream s) {
  return reduce<false>("sum", x, n, scratch, s);
}

double sum_squares(const float* x, int64_t n, Scratch scratch, Stream s) {
  return reduce<true>("sum_squares", x, n, scratch, s);
}

}  // namespace ssiat::kernels::cuda
