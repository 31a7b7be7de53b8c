// CUDA causal GQA attention, f32 storage and arithmetic (contract in kernels/attention.h; the
// oracle is kernels/cpu/attention.cpp). FlashAttention-2 tiling (Dao 2023, arXiv:2307.08691),
// shared-memory tiles and f32 FMA micro-tiles (no tensor cores):
//   forward — one block per (b, h, tile of BR queries); key/value tiles of BC keys stream
//             through shared memory up to the causal limit; online softmax in base 2 (running
//             max m, sum l, O rescaled by 2^(m_old - m_new)); out = O / l,
//             lse = (m + log2 l) * ln 2, the natural-log log-sum-exp of the scaled scores.
//   dq      — one block per (b, h, query tile): for key tiles in increasing order recompute
//             P = exp2(S log2e/sqrt(HS) - lse log2e), dP = dO V^T, dS = P (dP - D) / sqrt(HS)
//             with D_t = dout_t · out_t, and dQ += dS K.
//   dkdv    — one block per (b, kv head g, key tile): for the query heads of group g in
//             increasing order, and query tiles from the causal limit upwards, dV += P^T dO,
//             dK += dS^T Q.
// Determinism: every element of out, lse and dqkv is owned by one thread that sums in a fixed
// order (reductions across threads are fixed shuffle trees); no atomics, so the bits do not
// depend on scheduling. Both backward kernels compute D_t with the same code, hence same bits.
// Invariants: 256 threads = 16 (ty) x 16 (tx); a thread owns tile rows ty + 16 i and columns
// tx + 16 j (scores) or tx + 16 k (head dimension), so a score row lives in one half-warp and
// its max/sum are half-warp shuffles. hs is bucketed up to D in {32, 64, 128, 256}; columns
// [hs, D) and rows past T of every shared tile are zero; masked scores are exact zeros in P, dS.
#include "kernels/attention.h"

#include <cmath>
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace ssiat::kernels::cuda {
namespace {

constexpr int kThreads = 256;  // 16 x 16
constexpr int kPad = 4;        // shared row padding (floats): keeps float4 alignment, spreads banks
constexpr int kMaxHs = 256;
constexpr double kLog2eD = 1.4426950408889634074;
constexpr double kLn2 = 0.69314718055994530942;
constexpr float kLog2e = static_cast<float>(kLog2eD);

// Tile sizes per head-size bucket D: kBr queries x kBc keys for forward and dq; kKvBr queries x
// kKvBc keys for dkdv. Chosen so that two blocks fit in an H100/H200 SM where possible.
template <int D>
struct Tiles;
template <>
struct Tiles<32> {
  static constexpr int kBr = 64, kBc = 64, kKvBr = 64, kKvBc = 64;
};
template <>
struct Tiles<64> {
  static constexpr int kBr = 64, kBc = 64, kKvBr = 64, kKvBc = 64;
};
template <>
struct Tiles<128> {
  static constexpr int kBr = 64, kBc = 32, kKvBr = 32, kKvBc = 32;
};
template <>
struct Tiles<256> {
  static constexpr int kBr = 32, kBc = 32, kKvBr = 32, kKvBc = 32;
};

__device__ __forceinline__ float half_warp_max(float v) {
#pragma unroll
  for (int off = 8; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

__device__ __forceinline__ float half_warp_sum(float v) {
#pragma unroll
  for (int off = 8; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Rows [row0, row0 + ROWS) of a matrix with row stride ld (row t at src + t*ld), columns
// [0, hs), into a (ROWS, D + kPad) shared tile; rows >= T and columns in [hs, D) become 0.
template <int ROWS, int D>
__device__ __forceinline__ void load_tile(float* __restrict__ dst, const float* __restrict__ src, int64_t ld,
                                          int row0, int T, int hs) {
#pragma unroll 4
  for (int idx = threadIdx.x; idx < ROWS * D; idx += kThreads) {
    const int r = idx / D, d = idx % D;
    const int t = row0 + r;
    dst[r * (D + kPad) + d] = (t < T && d < hs) ? src[static_cast<int64_t>(t) * ld + d] : 0.0f;
  }
}

// acc[i][j] += sum_{d < n} a[(ar + 16 i) * LD + d] * b[(br + 16 j) * LD + d]; n is a multiple of 4.
template <int RA, int RB, int LD>
__device__ __forceinline__ void dot_tile(float (&acc)[RA][RB], const float* a, int ar, const float* b, int br, int n) {
#pragma unroll 1  // unrolling further spills at the 128-register budget
  for (int d = 0; d < n; d += 4) {
    float4 av[RA], bv[RB];
#pragma unroll
    for (int i = 0; i < RA; i++) av[i] = *reinterpret_cast<const float4*>(a + (ar + 16 * i) * LD + d);
#pragma unroll
    for (int j = 0; j < RB; j++) bv[j] = *reinterpret_cast<const float4*>(b + (br + 16 * j) * LD + d);
#pragma unroll
    for (int i = 0; i < RA; i++)
#pragma unroll
      for (int j = 0; j < RB; j++) {
        float x = acc[i][j];
        x = fmaf(av[i].x, bv[j].x, x);
        x = fmaf(av[i].y, bv[j].y, x);
        x = fmaf(av[i].z, bv[j].z, x);
        acc[i][j] = fmaf(av[i].w, bv[j].w, x);
      }
  }
}

// acc[i][k] += sum_{c < n} p[(pr + 16 i) * LP + c] * v[c * LD + vc + 16 k]; n is a multiple of 4.
template <int RA, int RD, int LP, int LD>
__device__ __forceinline__ void pv_tile(float (&acc)[RA][RD], const float* p, int pr, const float* v, int vc, int n) {
#pragma unroll 2
  for (int c = 0; c < n; c += 4) {
    float4 pv[RA];
#pragma unroll
    for (int i = 0; i < RA; i++) pv[i] = *reinterpret_cast<const float4*>(p + (pr + 16 * i) * LP + c);
#pragma unroll
    for (int cc = 0; cc < 4; cc++) {
      float vv[RD];
#pragma unroll
      for (int k = 0; k < RD; k++) vv[k] = v[(c + cc) * LD + vc + 16 * k];
#pragma unroll
      for (int i = 0; i < RA; i++) {
        const float pc = cc == 0 ? pv[i].x : cc == 1 ? pv[i].y : cc == 2 ? pv[i].z : pv[i].w;
#pragma unroll
        for (int k = 0; k < RD; k++) acc[i][k] = fmaf(pc, vv[k], acc[i][k]);
      }
    }
  }
}

// D_t = sum_{d < hs} dout[t, d] * out[t, d] for one row, by the 16 threads of a half-warp
// (thread tx sums d = tx, tx + 16, ... in order, then a fixed shuffle tree); 0 for rows >= T.
// do_row is the row in shared memory, out_row the row in global memory.
__device__ __forceinline__ float row_delta(const float* do_row, const float* __restrict__ out_row, bool valid,
                                           int hs, int tx) {
  float acc = 0.0f;
  if (valid)
    for (int d = tx; d < hs; d += 16) acc = fmaf(do_row[d], out_row[d], acc);
  return half_warp_sum(acc);
}

// ---------------------------------------------------------------------------------------------

template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads, 2)
    attention_forward_kernel(float* __restrict__ out,        // (B, T, NH*hs)
                             float* __restrict__ lse,        // (B, NH, T)
                             const float* __restrict__ qkv,  // (B, T, (NH + 2*NKV)*hs)
                             int T, int NH, int NKV, int hs, float c2) {
  constexpr int RM = BR / 16, RN = BC / 16, RD = D / 16, LD = D + kPad, LP = BC + kPad;
  extern __shared__ float4 smem_f4[];
  float* qs = reinterpret_cast<float*>(smem_f4);  // (BR, LD) Q tile
  float* ks = qs + BR * LD;                       // (BC, LD) K tile
  float* vs = ks + BC * LD;                       // (BC, LD) V tile
  float* ps = vs + BC * LD;                       // (BR, LP) P tile

  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int i0 = static_cast<int>(gridDim.z - 1 - blockIdx.z) * BR;  // longest query tiles first
  const int h = blockIdx.x, b = blockIdx.y, g = h / (NH / NKV);
  const int64_t C3 = static_cast<int64_t>(NH + 2 * NKV) * hs;
  const float* base = qkv + static_cast<int64_t>(b) * T * C3;  // row t at + t*C3
  const int hs4 = (hs + 3) & ~3;
  const int i_end = min(i0 + BR, T);  // keys >= i_end are masked for every real query

  load_tile<BR, D>(qs, base + static_cast<int64_t>(h) * hs, C3, i0, T, hs);
  float m[RM], l[RM], o[RM][RD];
#pragma unroll
  for (int i = 0; i < RM; i++) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int k = 0; k < RD; k++) o[i][k] = 0.0f;
  }

  for (int s0 = 0; s0 < i_end; s0 += BC) {
    __syncthreads();  // the previous K, V, P tiles are consumed
    load_tile<BC, D>(ks, base + static_cast<int64_t>(NH + g) * hs, C3, s0, T, hs);
    load_tile<BC, D>(vs, base + static_cast<int64_t>(NH + NKV + g) * hs, C3, s0, T, hs);
    __syncthreads();
    float s[RM][RN] = {};
    dot_tile<RM, RN, LD>(s, qs, ty, ks, tx, hs4);  // S = Q K^T
#pragma unroll
    for (int i = 0; i < RM; i++) {
      // Key 0 is visible to every row (real or padding), so m is finite after the first tile.
      const int t = i0 + ty + 16 * i;
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < RN; j++) {
        s[i][j] = s0 + tx + 16 * j <= t ? s[i][j] * c2 : -INFINITY;  // base-2 logits, causal mask
        mx = fmaxf(mx, s[i][j]);
      }
      const float m_new = fmaxf(m[i], half_warp_max(mx));
      const float alpha = exp2f(m[i] - m_new);  // 0 on the first tile (m = -inf)
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < RN; j++) {
        const float p = exp2f(s[i][j] - m_new);
        sum += p;
        ps[(ty + 16 * i) * LP + tx + 16 * j] = p;
      }
      l[i] = l[i] * alpha + half_warp_sum(sum);
      m[i] = m_new;
#pragma unroll
      for (int k = 0; k < RD; k++) o[i][k] *= alpha;
    }
    __syncwarp();  // P rows ty + 16 i are written and read by the same half-warp
    pv_tile<RM, RD, LP, LD>(o, ps, ty, vs, tx, min(BC, (i_end - s0 + 3) & ~3));  // O += P V
  }

  const int64_t CO = static_cast<int64_t>(NH) * hs;
#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int t = i0 + ty + 16 * i;
    if (t >= T) continue;
    const float inv = 1.0f / l[i];
    float* orow = out + (static_cast<int64_t>(b) * T + t) * CO + static_cast<int64_t>(h) * hs;
#pragma unroll
    for (int k = 0; k < RD; k++)
      if (tx + 16 * k < hs) orow[tx + 16 * k] = o[i][k] * inv;
    if (tx == 0)
      lse[(static_cast<int64_t>(b) * NH + h) * T + t] =
          static_cast<float>((static_cast<double>(m[i]) + log2(static_cast<double>(l[i]))) * kLn2);
  }
}

template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads, 2)
    attention_backward_dq_kernel(float* __restrict__ dqkv,        // (B, T, (NH + 2*NKV)*hs), q part
                                 const float* __restrict__ dout,  // (B, T, NH*hs)
                                 const float* __restrict__ out,   // (B, T, NH*hs)
                                 const float* __restrict__ lse,   // (B, NH, T)
                                 const float* __restrict__ qkv,   // (B, T, (NH + 2*NKV)*hs)
                                 int T, int NH, int NKV, int hs, float c2, float scale) {
  constexpr int RM = BR / 16, RN = BC / 16, RD = D / 16, LD = D + kPad, LP = BC + kPad;
  extern __shared__ float4 smem_f4[];
  float* qs = reinterpret_cast<float*>(smem_f4);  // (BR, LD) Q tile
  float* dos = qs + BR * LD;                      // (BR, LD) dO tile
  float* ks = dos + BR * LD;                      // (BC, LD) K tile
  float* vs = ks + BC * LD;                       // (BC, LD) V tile
  float* dss = vs + BC * LD;                      // (BR, LP) dS tile

  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int i0 = static_cast<int>(gridDim.z - 1 - blockIdx.z) * BR;  // longest query tiles first
  const int h = blockIdx.x, b = blockIdx.y, g = h / (NH / NKV);
  const int64_t C3 = static_cast<int64_t>(NH + 2 * NKV) * hs;
  const int64_t CO = static_cast<int64_t>(NH) * hs;
  const float* base = qkv + static_cast<int64_t>(b) * T * C3;           // row t at + t*C3
  const float* obase = out + static_cast<int64_t>(b) * T * CO + static_cast<int64_t>(h) * hs;  // + t*CO
  const int hs4 = (hs + 3) & ~3;
  const int i_end = min(i0 + BR, T);

  load_tile<BR, D>(qs, base + static_cast<int64_t>(h) * hs, C3, i0, T, hs);
  load_tile<BR, D>(dos, dout + static_cast<int64_t>(b) * T * CO + static_cast<int64_t>(h) * hs, CO, i0, T, hs);
  __syncthreads();
  float dsum[RM], l2[RM], dq[RM][RD];
#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int t = i0 + ty + 16 * i;
    dsum[i] = row_delta(dos + (ty + 16 * i) * LD, obase + static_cast<int64_t>(t) * CO, t < T, hs, tx);
    l2[i] = t < T ? lse[(static_cast<int64_t>(b) * NH + h) * T + t] * kLog2e : 0.0f;
#pragma unroll
    for (int k = 0; k < RD; k++) dq[i][k] = 0.0f;
  }

  for (int s0 = 0; s0 < i_end; s0 += BC) {
    __syncthreads();  // the previous K, V, dS tiles are consumed
    load_tile<BC, D>(ks, base + static_cast<int64_t>(NH + g) * hs, C3, s0, T, hs);
    load_tile<BC, D>(vs, base + static_cast<int64_t>(NH + NKV + g) * hs, C3, s0, T, hs);
    __syncthreads();
    float s[RM][RN] = {}, dp[RM][RN] = {};
    dot_tile<RM, RN, LD>(s, qs, ty, ks, tx, hs4);    // S = Q K^T
    dot_tile<RM, RN, LD>(dp, dos, ty, vs, tx, hs4);  // dP = dO V^T
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const int t = i0 + ty + 16 * i;
#pragma unroll
      for (int j = 0; j < RN; j++) {
        const bool visible = s0 + tx + 16 * j <= t && t < T;
        const float p = visible ? exp2f(s[i][j] * c2 - l2[i]) : 0.0f;
        dss[(ty + 16 * i) * LP + tx + 16 * j] = visible ? p * (dp[i][j] - dsum[i]) * scale : 0.0f;
      }
    }
    __syncwarp();
    pv_tile<RM, RD, LP, LD>(dq, dss, ty, ks, tx, min(BC, (i_end - s0 + 3) & ~3));  // dQ += dS K
  }

#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int t = i0 + ty + 16 * i;
    if (t >= T) continue;
    float* dqrow = dqkv + (static_cast<int64_t>(b) * T + t) * C3 + static_cast<int64_t>(h) * hs;
#pragma unroll
    for (int k = 0; k < RD; k++)
      if (tx + 16 * k < hs) dqrow[tx + 16 * k] = dq[i][k];
  }
}

// BR queries per query tile, BC keys per block. Here a thread owns key rows ty + 16 i and
// query columns tx + 16 j of S^T, and key rows ty + 16 i, dims tx + 16 k of dK and dV.
template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads, 2)
    attention_backward_dkdv_kernel(float* __restrict__ dqkv,        // (B, T, (NH + 2*NKV)*hs), k, v parts
                                   const float* __restrict__ dout,  // (B, T, NH*hs)
                                   const float* __restrict__ out,   // (B, T, NH*hs)
                                   const float* __restrict__ lse,   // (B, NH, T)
                                   const float* __restrict__ qkv,   // (B, T, (NH + 2*NKV)*hs)
                                   int T, int NH, int NKV, int hs, float c2, float scale) {
  constexpr int RC = BC / 16, RR = BR / 16, RD = D / 16, LD = D + kPad, LQ = BR + kPad;
  extern __shared__ float4 smem_f4[];
  float* ks = reinterpret_cast<float*>(smem_f4);  // (BC, LD) K tile
  float* vs = ks + BC * LD;                       // (BC, LD) V tile
  float* qs = vs + BC * LD;                       // (BR, LD) Q tile
  float* dos = qs + BR * LD;                      // (BR, LD) dO tile
  float* pts = dos + BR * LD;                     // (BC, LQ) P^T tile
  float* dsts = pts + BC * LQ;                    // (BC, LQ) dS^T tile
  float* l2s = dsts + BC * LQ;                    // (BR) lse * log2e of the query tile
  float* dsums = l2s + BR;                        // (BR) D of the query tile

  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int s0 = blockIdx.z * BC;  // first key tiles (the most query tiles) first
  const int g = blockIdx.x, b = blockIdx.y, group = NH / NKV;
  const int64_t C3 = static_cast<int64_t>(NH + 2 * NKV) * hs;
  const int64_t CO = static_cast<int64_t>(NH) * hs;
  const float* base = qkv + static_cast<int64_t>(b) * T * C3;  // row t at + t*C3
  const int hs4 = (hs + 3) & ~3;

  load_tile<BC, D>(ks, base + static_cast<int64_t>(NH + g) * hs, C3, s0, T, hs);
  load_tile<BC, D>(vs, base + static_cast<int64_t>(NH + NKV + g) * hs, C3, s0, T, hs);
  float dk[RC][RD], dv[RC][RD];
#pragma unroll
  for (int i = 0; i < RC; i++)
#pragma unroll
    for (int k = 0; k < RD; k++) dk[i][k] = dv[i][k] = 0.0f;

  for (int h = g * group; h < (g + 1) * group; h++) {
    const float* dobase = dout + static_cast<int64_t>(b) * T * CO + static_cast<int64_t>(h) * hs;  // + t*CO
    const float* obase = out + static_cast<int64_t>(b) * T * CO + static_cast<int64_t>(h) * hs;
    const float* lrow = lse + (static_cast<int64_t>(b) * NH + h) * T;
    for (int i0 = s0 / BR * BR; i0 < T; i0 += BR) {  // query tiles that see some key >= s0
      __syncthreads();  // the previous Q, dO, P^T, dS^T tiles and statistics are consumed
      load_tile<BR, D>(qs, base + static_cast<int64_t>(h) * hs, C3, i0, T, hs);
      load_tile<BR, D>(dos, dobase, CO, i0, T, hs);
      __syncthreads();
      for (int r = ty; r < BR; r += 16) {  // half-warp ty takes rows ty, ty + 16, ...
        const int t = i0 + r;
        const float dsum = row_delta(dos + r * LD, obase + static_cast<int64_t>(t) * CO, t < T, hs, tx);
        if (tx == 0) {
          dsums[r] = dsum;
          l2s[r] = t < T ? lrow[t] * kLog2e : 0.0f;
        }
      }
      __syncthreads();
      float st[RC][RR] = {}, dpt[RC][RR] = {};
      dot_tile<RC, RR, LD>(st, ks, ty, qs, tx, hs4);    // S^T = K Q^T
      dot_tile<RC, RR, LD>(dpt, vs, ty, dos, tx, hs4);  // dP^T = V dO^T
#pragma unroll
      for (int i = 0; i < RC; i++) {
        const int key = s0 + ty + 16 * i;
#pragma unroll
        for (int j = 0; j < RR; j++) {
          const int r = tx + 16 * j, t = i0 + r;
          const bool visible = key <= t && t < T;
          const float p = visible ? exp2f(st[i][j] * c2 - l2s[r]) : 0.0f;
          pts[(ty + 16 * i) * LQ + r] = p;
          dsts[(ty + 16 * i) * LQ + r] = visible ? p * (dpt[i][j] - dsums[r]) * scale : 0.0f;
        }
      }
      __syncwarp();  // P^T, dS^T rows ty + 16 i are written and read by the same half-warp
      const int nq = min(BR, (T - i0 + 3) & ~3);        // queries >= T are masked
      pv_tile<RC, RD, LQ, LD>(dv, pts, ty, dos, tx, nq);   // dV += P^T dO
      pv_tile<RC, RD, LQ, LD>(dk, dsts, ty, qs, tx, nq);   // dK += dS^T Q
    }
  }

#pragma unroll
  for (int i = 0; i < RC; i++) {
    const int key = s0 + ty + 16 * i;
    if (key >= T) continue;
    float* dkrow = dqkv + (static_cast<int64_t>(b) * T + key) * C3 + static_cast<int64_t>(NH + g) * hs;
    float* dvrow = dkrow + static_cast<int64_t>(NKV) * hs;
#pragma unroll
    for (int k = 0; k < RD; k++)
      if (tx + 16 * k < hs) {
        dkrow[tx + 16 * k] = dk[i][k];
        dvrow[tx + 16 * k] = dv[i][k];
      }
  }
}

// ---------------------------------------------------------------------------------------------

struct Shape {
  int B, T, NH, NKV, hs;
};

float log2e_over_sqrt(int hs) { return static_cast<float>(kLog2eD / std::sqrt(static_cast<double>(hs))); }
float inv_sqrt(int hs) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(hs))); }
unsigned int tiles(int T, int tile) { return static_cast<unsigned int>((T + tile - 1) / tile); }

template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  SSIAT_GPU_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

template <int D>
void launch_forward(float* out, float* lse, const float* qkv, Shape x, cudaStream_t s) {
  constexpr int BR = Tiles<D>::kBr, BC = Tiles<D>::kBc;
  constexpr size_t smem = sizeof(float) * ((BR + 2 * BC) * (D + kPad) + BR * (BC + kPad));
  auto kernel = attention_forward_kernel<D, BR, BC>;
  allow_smem(kernel, smem);
  const dim3 grid(x.NH, x.B, tiles(x.T, BR));
  kernel<<<grid, kThreads, smem, s>>>(out, lse, qkv, x.T, x.NH, x.NKV, x.hs, log2e_over_sqrt(x.hs));
  SSIAT_LAUNCH_CHECK();
}

template <int D>
void launch_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv, Shape x,
                     cudaStream_t s) {
  const float c2 = log2e_over_sqrt(x.hs), scale = inv_sqrt(x.hs);
  {
    constexpr int BR = Tiles<D>::kBr, BC = Tiles<D>::kBc;
    constexpr size_t smem = sizeof(float) * ((2 * BR + 2 * BC) * (D + kPad) + BR * (BC + kPad));
    auto kernel = attention_backward_dq_kernel<D, BR, BC>;
    allow_smem(kernel, smem);
    const dim3 grid(x.NH, x.B, tiles(x.T, BR));
    kernel<<<grid, kThreads, smem, s>>>(dqkv, dout, out, lse, qkv, x.T, x.NH, x.NKV, x.hs, c2, scale);
    SSIAT_LAUNCH_CHECK();
  }
  {
    constexpr int BR = Tiles<D>::kKvBr, BC = Tiles<D>::kKvBc;
    constexpr size_t smem = sizeof(float) * ((2 * BC + 2 * BR) * (D + kPad) + 2 * BC * (BR + kPad) + 2 * BR);
    auto kernel = attention_backward_dkdv_kernel<D, BR, BC>;
    allow_smem(kernel, smem);
    const dim3 grid(x.NKV, x.B, tiles(x.T, BC));
    kernel<<<grid, kThreads, smem, s>>>(dqkv, dout, out, lse, qkv, x.T, x.NH, x.NKV, x.hs, c2, scale);
    SSIAT_LAUNCH_CHECK();
  }
}

Shape check_shape(const char* what, int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS) {
  SSIAT_CHECK(B >= 0 && T_ >= 0 && NH > 0 && NKV > 0 && HS > 0)
      << what << ": bad shape B=" << B << " T=" << T_ << " NH=" << NH << " NKV=" << NKV << " HS=" << HS;
  SSIAT_CHECK(NH % NKV == 0) << what << ": NH=" << NH << " is not a multiple of NKV=" << NKV;
  SSIAT_CHECK(HS <= kMaxHs) << what << ": HS=" << HS << " exceeds the CUDA kernel's maximum head size " << kMaxHs;
  // Grid (heads, B, tiles of >= 32 rows): y and z are limited to 65535.
  SSIAT_CHECK(B <= 65535 && T_ <= int64_t{65535} * 32)
      << what << ": B=" << B << " T=" << T_ << " exceed the grid limits (B <= 65535, T <= 65535 * 32)";
  return Shape{static_cast<int>(B), static_cast<int>(T_), static_cast<int>(NH), static_cast<int>(NKV),
               static_cast<int>(HS)};
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                       int64_t HS, Stream s) {
  const Shape x = check_shape("attention_forward", B, T_, NH, NKV, HS);
  if (B == 0 || T_ == 0) return;
  SSIAT_CHECK(out != nullptr && lse != nullptr && qkv != nullptr) << "attention_forward: null pointer";
  if (HS <= 32)
    launch_forward<32>(out, lse, qkv, x, s);
  else if (HS <= 64)
    launch_forward<64>(out, lse, qkv, x, s);
  else if (HS <= 128)
    launch_forward<128>(out, lse, qkv, x, s);
  else
    launch_forward<256>(out, lse, qkv, x, s);
}

void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                        int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS, Stream s) {
  const Shape x = check_shape("attention_backward", B, T_, NH, NKV, HS);
  if (B == 0 || T_ == 0) return;
  SSIAT_CHECK(dqkv != nullptr && dout != nullptr && out != nullptr && lse != nullptr && qkv != nullptr)
      << "attention_backward: null pointer";
  if (HS <= 32)
    launch_backward<32>(dqkv, dout, out, lse, qkv, x, s);
  else if (HS <= 64)
    launch_backward<64>(dqkv, dout, out, lse, qkv, x, s);
  else if (HS <= 128)
    launch_backward<128>(dqkv, dout, out, lse, qkv, x, s);
  else
    launch_backward<256>(dqkv, dout, out, lse, qkv, x, s);
}

}  // namespace ssiat::kernels::cuda
