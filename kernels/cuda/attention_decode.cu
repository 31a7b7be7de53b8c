// CUDA single-query attention over a KV cache, f32 storage and arithmetic (contract in
// kernels/attention_decode.h; the oracle is kernels/cpu/attention_decode.cpp).
// One block of 256 threads per query head h (kv head g = h / (NH / NKV)); the keys are taken in
// chunks of kChunk in increasing order, each chunk in three phases:
//   scores  — warp w takes keys w, w + 8, ... of the chunk; lane i sums q[d] k[d] for
//             d = i, i + 32, ... (in order), a fixed xor-shuffle tree completes the dot;
//             s = dot * log2(e) / sqrt(HS) (base-2 logits) into shared memory;
//   softmax — chunk max (exact), m_new = max(m, chunk max), alpha = 2^(m - m_new),
//             p = 2^(s - m_new), l = l * alpha + (sum of p: per thread in order, xor tree per
//             warp, warps in order);
//   values  — threads form kThreads / D groups of D >= HS lanes (D a power of two); group j
//             takes keys j, j + groups, ... in order: c[d] = sum p v[d]; o[d] = o[d] alpha + c[d].
// At the end the groups' o are added in group order and divided by l. Every sum has a fixed
// order (no atomics), so two runs give the same bits. The chunked online softmax (Milakov and
// Gimelshein 2018, arXiv:1805.02867) keeps shared memory fixed for any T_ctx.
#include "kernels/attention_decode.h"

#include <cmath>
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace ssiat::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 1024;  // keys per chunk (4 KiB of scores in shared memory)
constexpr int kMaxHs = 256;
constexpr double kLog2e = 1.4426950408889634074;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Sum (or max) over the block, the same value in every thread: warp trees, then the kWarps
// partials in warp order. Ends with a barrier, so `red` may be reused and every shared write made
// before the call is visible after it.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* red) {
  v = kMax ? warp_max(v) : warp_sum(v);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  float r = red[0];
#pragma unroll
  for (int w = 1; w < kWarps; w++) r = kMax ? fmaxf(r, red[w]) : r + red[w];
  __syncthreads();
  return r;
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_decode_kernel(float* __restrict__ out,        // (NH * hs)
                            const float* __restrict__ qkv,  // (T, (NH + 2*NKV) * hs)
                            int T, int NH, int NKV, int hs, float c2) {
  constexpr int kGroups = kThreads / D;  // key groups of the values phase
  constexpr int kPerLane = D / 32;       // query elements per lane in the scores phase
  __shared__ float sc[kChunk];           // (kChunk) scores, then probabilities, of one chunk
  __shared__ float part[kThreads];       // (kGroups, D) the groups' outputs at the end
  __shared__ float red[kWarps];

  const int h = blockIdx.x, g = h / (NH / NKV);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int d = threadIdx.x % D, grp = threadIdx.x / D;
  const int64_t C3 = static_cast<int64_t>(NH + 2 * NKV) * hs;
  const float* qrow = qkv + static_cast<int64_t>(T - 1) * C3 + static_cast<int64_t>(h) * hs;
  const float* kcol = qkv + static_cast<int64_t>(NH + g) * hs;  // row t at + t*C3
  const float* vcol = qkv + static_cast<int64_t>(NH + NKV + g) * hs;

  float q[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; i++) q[i] = lane + 32 * i < hs ? qrow[lane + 32 * i] : 0.0f;

  float m = -INFINITY, l = 0.0f, o = 0.0f;  // m and l are the same in every thread
  for (int c0 = 0; c0 < T; c0 += kChunk) {
    const int n = min(kChunk, T - c0);
    for (int j = warp; j < n; j += kWarps) {
      const float* k = kcol + static_cast<int64_t>(c0 + j) * C3;
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < kPerLane; i++)
        if (lane + 32 * i < hs) s = fmaf(q[i], k[lane + 32 * i], s);
      s = warp_sum(s);
      if (lane == 0) sc[j] = s * c2;
    }
    __syncthreads();

    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += kThreads) mx = fmaxf(mx, sc[j]);
    const float m_new = fmaxf(m, block_reduce<true>(mx, red));
    const float alpha = exp2f(m - m_new);  // 0 on the first chunk (m = -inf)
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n; j += kThreads) {
      const float p = exp2f(sc[j] - m_new);
      sc[j] = p;
      sum += p;
    }
    l = l * alpha + block_reduce<false>(sum, red);  // its barriers publish the p in sc
    m = m_new;

    float c = 0.0f;
    if (d < hs)
      for (int j = grp; j < n; j += kGroups) c = fmaf(sc[j], vcol[static_cast<int64_t>(c0 + j) * C3 + d], c);
    o = fmaf(o, alpha, c);
    __syncthreads();  // sc is consumed before the next chunk's scores overwrite it
  }

  part[threadIdx.x] = o;
  __syncthreads();
  if (threadIdx.x < hs) {  // group 0's threads, d = threadIdx.x
    float r = part[threadIdx.x];
#pragma unroll
    for (int j = 1; j < kGroups; j++) r += part[j * D + threadIdx.x];
    out[static_cast<int64_t>(h) * hs + threadIdx.x] = r / l;
  }
}

template <int D>
void launch_decode(float* out, const float* qkv, int T, int NH, int NKV, int hs, cudaStream_t s) {
  const float c2 = static_cast<float>(kLog2e / std::sqrt(static_cast<double>(hs)));
  attention_decode_kernel<D><<<static_cast<unsigned int>(NH), kThreads, 0, s>>>(out, qkv, T, NH, NKV, hs, c2);
  SSIAT_LAUNCH_CHECK();
}

}  // namespace

void attention_decode(float* out, const float* qkv, int64_t T_ctx, int64_t NH, int64_t NKV, int64_t HS, Stream s) {
  SSIAT_CHECK(T_ctx >= 1 && NH > 0 && NKV > 0 && HS > 0)
      << "attention_decode: bad shape T_ctx=" << T_ctx << " NH=" << NH << " NKV=" << NKV << " HS=" << HS
      << " (T_ctx >= 1: the query is row T_ctx-1)";
  SSIAT_CHECK(NH % NKV == 0) << "attention_decode: NH=" << NH << " is not a multiple of NKV=" << NKV;
  SSIAT_CHECK(HS <= kMaxHs) << "attention_decode: HS=" << HS << " exceeds the CUDA kernel's maximum head size "
                            << kMaxHs;
  SSIAT_CHECK(T_ctx < (int64_t{1} << 31) && NH + 2 * NKV < (int64_t{1} << 31))
      << "attention_decode: T_ctx=" << T_ctx << " NH=" << NH << " NKV=" << NKV << " exceed the 32-bit index range";
  SSIAT_CHECK(out != nullptr && qkv != nullptr) << "attention_decode: null pointer";
  const int T = static_cast<int>(T_ctx), nh = static_cast<int>(NH), nkv = static_cast<int>(NKV),
            hs = static_cast<int>(HS);
  if (hs <= 32)
    launch_decode<32>(out, qkv, T, nh, nkv, hs, s);
  else if (hs <= 64)
    launch_decode<64>(out, qkv, T, nh, nkv, hs, s);
  else if (hs <= 128)
    launch_decode<128>(out, qkv, T, nh, nkv, hs, s);
  else
    launch_decode<256>(out, qkv, T, nh, nkv, hs, s);
}

}  // namespace ssiat::kernels::cuda
