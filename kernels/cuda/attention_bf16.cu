// CUDA causal GQA attention on bf16 tensor cores (contract in kernels/attention.h, the bf16
// entries; the oracle is kernels/cpu/attention.cpp). FlashAttention-2 (Dao 2023,
// arXiv:2307.08691) with WMMA m16n16k16 products, bf16 operands and f32 accumulators (sm_80+):
//   forward — one block per (b, h, tile of 64 queries), 4 warps of 16 query rows each; key/value
//             tiles of 64 keys up to the causal limit; S = Q K^T per warp, online softmax in base
//             2 over the f32 scores (running max m, sum l of the bf16-rounded P), O rescaled by
//             2^(m_old - m_new) in its accumulator fragments; out = O / l,
//             lse = (m + log2 l) * ln 2 (the natural-log log-sum-exp of the scaled scores).
//   dq      — one block per (b, h, query tile): key tiles in increasing order; per 16x16 block
//             P = exp2(S log2e/sqrt(HS) - lse log2e), dS = P (dP - D) / sqrt(HS) with
//             dP = dO V^T and D_t = dout_t · out_t (bf16 factors, f32 sum); dQ += dS K.
//   dkdv    — one block per (b, kv head g, tile of 64 keys), 4 warps of 16 key rows: for the
//             query heads of group g in increasing order and query tiles from the key tile
//             upwards, S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q.
// Precision: q, k, v, dO are rounded to bf16 (__float2bfloat16_rn) as tiles enter shared memory;
// P and dS are rounded to bf16 right before their products (and dout, out for D); statistics, D
// and every accumulator are f32; out, lse and dqkv are written as f32 (`=`, every element once).
// Determinism: each output element is owned by one warp whose WMMA products run in a fixed
// order (k steps, key tiles, heads, query tiles all increasing); row reductions are fixed
// shuffle trees; no atomics, so the bits do not depend on scheduling.
// Invariants: HS = D in {64, 128}; tiles are 64 x 64 and aligned, so a query tile never starts
// before a key tile it visits (s0 <= i0). Rows past T load as zeros and are never written; a
// score is visible iff key <= query and query < T (forward: key < T for padding rows), masked
// entries of P and dS are exact zeros. The element -> (row, col) map of an accumulator
// fragment is unspecified, so each warp reads it from an "ids" fragment loaded from the 16x16
// matrix ids[r][c] = 16 r + c (valid because all accumulator fragments of one type share it).
#include "kernels/attention.h"

#include <mma.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace ssiat::kernels::cuda {
namespace {

namespace wmma = nvcuda::wmma;
using bf16_t = __nv_bfloat16;
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16_t, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16_t, wmma::row_major>;  // B stored (k, n)
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16_t, wmma::col_major>;  // B^T stored (n, k)
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTile = 16 * kWarps;  // queries and keys per tile (64)
constexpr int kLdP = kTile + 8;     // bf16 row stride of P / dS tiles
constexpr int kLdS = kTile + 4;     // f32 row stride of the per-warp staging tile (16, kLdS)
constexpr int64_t kMaxTiles = 65535;
constexpr double kLog2eD = 1.4426950408889634074;
constexpr double kLn2 = 0.69314718055994530942;
constexpr float kLog2e = static_cast<float>(kLog2eD);

constexpr size_t align128(size_t n) { return (n + 127) / 128 * 128; }

// Shared memory of the three kernels for head size D (byte offsets, each 128-aligned so every
// WMMA pointer is 32-byte aligned). kLdH: bf16 row stride of (64, D) tiles.
template <int D>
struct Smem {
  static constexpr int kLdH = D + 8;
  static constexpr size_t kTileH = align128(sizeof(bf16_t) * kTile * kLdH);  // (64, kLdH) bf16
  static constexpr size_t kTileP = align128(sizeof(bf16_t) * kTile * kLdP);  // (64, kLdP) bf16
  static constexpr size_t kStage = align128(sizeof(float) * kTile * kLdS);   // 4 x (16, kLdS) f32
  static constexpr size_t kIds = align128(sizeof(float) * 256);
  static constexpr size_t kRows = align128(sizeof(float) * kTile);
  // forward: q, k, v, p, stage, ids, alpha
  static constexpr size_t kForward = 3 * kTileH + kTileP + kStage + kIds + kRows;
  // dq: q, do, k, v, ds, stage, ids, l2, dsum ; dkdv: k, v, q, do, pt, dst, stage, ids, l2, dsum
  static constexpr size_t kDq = 4 * kTileH + kTileP + kStage + kIds + 2 * kRows;
  static constexpr size_t kDkdv = 4 * kTileH + 2 * kTileP + kStage + kIds + 2 * kRows;
  static_assert(kDkdv <= 160 * 1024, "keep every kernel under 160 KB of shared memory (sm_80 allows 163)");
};

// Rows [row0, row0 + 64) x columns [0, D) of an f32 matrix (row t at src + t*ld) into a (64, D + 8)
// bf16 tile, rounded to nearest even; rows >= T become 0.
template <int D>
__device__ __forceinline__ void load_tile(bf16_t* __restrict__ dst, const float* __restrict__ src, int64_t ld,
                                          int row0, int T) {
  constexpr int kLd = D + 8, kPairs = D / 2;
  for (int idx = threadIdx.x; idx < kTile * kPairs; idx += kThreads) {
    const int r = idx / kPairs, c = 2 * (idx % kPairs), t = row0 + r;
    float x0 = 0.0f, x1 = 0.0f;
    if (t < T) {
      const float* p = src + static_cast<int64_t>(t) * ld + c;
      x0 = p[0];
      x1 = p[1];
    }
    dst[r * kLd + c] = __float2bfloat16_rn(x0);
    dst[r * kLd + c + 1] = __float2bfloat16_rn(x1);
  }
}

// ids[r][c] = 16 r + c (exact in f32), read by every warp into an accumulator fragment.
__device__ __forceinline__ void init_ids(float* ids) {
  for (int i = threadIdx.x; i < 256; i += kThreads) ids[i] = static_cast<float>(i);
}

__device__ __forceinline__ void zero(FragC& f) { wmma::fill_fragment(f, 0.0f); }

// acc += A B^T for one 16 x 16 block: A rows at a, B rows at bt (both (16, 16 ND) bf16, stride LD).
// UNROLL bounds the k steps in flight (dkdv at D = 128 needs 2 to stay within 255 registers).
template <int ND, int LD, int UNROLL = ND>
__device__ __forceinline__ void mma_abt(FragC& acc, const bf16_t* a, const bf16_t* bt) {
#pragma unroll UNROLL
  for (int kk = 0; kk < ND; kk++) {
    FragA fa;
    FragBCol fb;
    wmma::load_matrix_sync(fa, a + 16 * kk, LD);
    wmma::load_matrix_sync(fb, bt + 16 * kk, LD);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}

// acc[n] += sum_{k0 <= kk < k1} A[:, 16 kk..] B[16 kk.., 16 n..] (kk increasing): A (16, .) bf16 at a
// (stride LDA), B (., 16 ND) bf16 at b (stride LDB).
template <int ND, int LDA, int LDB>
__device__ __forceinline__ void mma_ab(FragC (&acc)[ND], const bf16_t* a, const bf16_t* b, int k0, int k1) {
  for (int kk = k0; kk < k1; kk++) {
    FragA fa;
    wmma::load_matrix_sync(fa, a + 16 * kk, LDA);
#pragma unroll
    for (int n = 0; n < ND; n++) {
      FragBRow fb;
      wmma::load_matrix_sync(fb, b + 16 * kk * LDB + 16 * n, LDB);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

// D_t = sum_{d < hs} bf16(dout[t, d]) bf16(out[t, d]) in f32 by one warp (lane sums d = lane,
// lane + 32, ... in order, then a fixed xor tree, so every lane holds the same bits); 0 when !valid.
// Rounding both factors as dP = bf16(dO) bf16(V)^T is rounded keeps dP - D free of rounding
// noise where it should cancel (a row attending to one key: out = v, dS = 0), as in FA2.
// Both backward kernels call it with the same arguments, hence compute the same D.
__device__ __forceinline__ float warp_delta(const float* __restrict__ dout_row, const float* __restrict__ out_row,
                                            bool valid, int hs, int lane) {
  float acc = 0.0f;
  if (valid)
    for (int d = lane; d < hs; d += 32)
      acc = fmaf(__bfloat162float(__float2bfloat16_rn(dout_row[d])), __bfloat162float(__float2bfloat16_rn(out_row[d])),
                 acc);
#pragma unroll
  for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  return acc;
}

// Writes accumulator fragments f[0..N) (16 rows x 16 N columns of one warp) to global rows
// dst + r*ld for r < nrows, through the warp's (16, kLdS) staging tile, 4 fragments at a time.
template <int N>
__device__ __forceinline__ void store_rows(float* __restrict__ dst, int64_t ld, int nrows, const FragC (&f)[N],
                                           float* stage, int lane) {
  static_assert(N % 4 == 0, "fragments are staged 4 at a time");
#pragma unroll
  for (int n0 = 0; n0 < N; n0 += 4) {
#pragma unroll
    for (int n = 0; n < 4; n++) wmma::store_matrix_sync(stage + 16 * n, f[n0 + n], kLdS, wmma::mem_row_major);
    __syncwarp();
    for (int idx = lane; idx < 16 * 64; idx += 32) {
      const int r = idx / 64, c = idx % 64;
      if (r < nrows) dst[static_cast<int64_t>(r) * ld + 16 * n0 + c] = stage[r * kLdS + c];
    }
    __syncwarp();
  }
}

// Rounds the warp's 16 x 16 f32 staging block at stage (stride kLdS) to bf16 at dst (stride kLdP).
__device__ __forceinline__ void stage_to_bf16(bf16_t* dst, const float* stage, int lane) {
#pragma unroll
  for (int i = 0; i < 8; i++) {
    const int idx = lane + 32 * i, r = idx / 16, c = idx % 16;
    dst[r * kLdP + c] = __float2bfloat16_rn(stage[r * kLdS + c]);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_fwd_bf16_kernel(float* __restrict__ out,        // (B, T, NH*D)
                              float* __restrict__ lse,        // (B, NH, T)
                              const float* __restrict__ qkv,  // (B, T, (NH + 2*NKV)*D)
                              int T, int NH, int NKV, float c2) {
  using S = Smem<D>;
  constexpr int kLdH = S::kLdH, ND = D / 16;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16_t* qs = reinterpret_cast<bf16_t*>(smem);                  // (64, kLdH) Q tile
  bf16_t* ks = reinterpret_cast<bf16_t*>(smem + S::kTileH);      // (64, kLdH) K tile
  bf16_t* vs = reinterpret_cast<bf16_t*>(smem + 2 * S::kTileH);  // (64, kLdH) V tile
  bf16_t* ps = reinterpret_cast<bf16_t*>(smem + 3 * S::kTileH);  // (64, kLdP) P tile
  float* stage = reinterpret_cast<float*>(smem + 3 * S::kTileH + S::kTileP);  // (64, kLdS) S, then O
  float* ids = reinterpret_cast<float*>(smem + 3 * S::kTileH + S::kTileP + S::kStage);
  float* alpha_s = ids + S::kIds / sizeof(float);  // (64) per-row rescale factors, then 1 / l

  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int i0 = static_cast<int>(gridDim.z - 1 - blockIdx.z) * kTile;  // longest query tiles first
  const int h = blockIdx.x, b = blockIdx.y, g = h / (NH / NKV);
  const int64_t C3 = static_cast<int64_t>(NH + 2 * NKV) * D;
  const float* base = qkv + static_cast<int64_t>(b) * T * C3;  // row t at + t*C3
  const int i_end = min(i0 + kTile, T);
  const int row_last = i0 + 16 * w + 15;  // the warp's last query
  // Softmax ownership: lanes 2r and 2r + 1 share row r of the warp, columns [32 half, 32 half + 32).
  const int r = lane >> 1, half = lane & 1, t = i0 + 16 * w + r;
  float* sw = stage + 16 * w * kLdS;  // the warp's (16, kLdS) staging tile

  load_tile<D>(qs, base + static_cast<int64_t>(h) * D, C3, i0, T);
  init_ids(ids);
  __syncthreads();
  FragC idf, o[ND];
  wmma::load_matrix_sync(idf, ids, 16, wmma::mem_row_major);
#pragma unroll
  for (int n = 0; n < ND; n++) zero(o[n]);
  float m = -INFINITY, l = 0.0f;

  for (int s0 = 0; s0 < i_end; s0 += kTile) {
    __syncthreads();  // every warp is done with the previous K, V tiles
    load_tile<D>(ks, base + static_cast<int64_t>(NH + g) * D, C3, s0, T);
    load_tile<D>(vs, base + static_cast<int64_t>(NH + NKV + g) * D, C3, s0, T);
    __syncthreads();
    const int nk = min(4, (row_last - s0) / 16 + 1);  // key blocks with a key <= row_last (>= 1: s0 <= i0)
    for (int n = 0; n < nk; n++) {                    // S (16, 16 nk) = Q_w K^T
      FragC sf;
      zero(sf);
      mma_abt<ND, kLdH>(sf, qs + 16 * w * kLdH, ks + 16 * n * kLdH);
      wmma::store_matrix_sync(sw + 16 * n, sf, kLdS, wmma::mem_row_major);
    }
    __syncwarp();
    // Online softmax of row t over keys s0 + c, c in [32 half, 32 half + 32).
    float x[32], mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < 32; j++) {
      const int c = 32 * half + j, key = s0 + c;
      x[j] = (key <= t && key < T) ? sw[r * kLdS + c] * c2 : -INFINITY;  // visible => c < 16 nk
      mx = fmaxf(mx, x[j]);
    }
    const float m_new = fmaxf(m, fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1)));  // finite: key 0 is visible
    const float alpha = exp2f(m - m_new);  // 0 on the first tile (m = -inf)
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < 32; j++) {
      const bf16_t p = __float2bfloat16_rn(exp2f(x[j] - m_new));
      ps[(16 * w + r) * kLdP + 32 * half + j] = p;
      sum += __bfloat162float(p);
    }
    l = l * alpha + (sum + __shfl_xor_sync(0xffffffffu, sum, 1));
    m = m_new;
    if (half == 0) alpha_s[16 * w + r] = alpha;
    __syncwarp();
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
      for (int e = 0; e < idf.num_elements; e++) o[n].x[e] *= alpha_s[16 * w + (static_cast<int>(idf.x[e]) >> 4)];
    mma_ab<ND, kLdP, kLdH>(o, ps + 16 * w * kLdP, vs, 0, nk);  // O_w += P_w V
  }

  __syncwarp();  // every lane has read alpha_s
  if (half == 0) {
    alpha_s[16 * w + r] = 1.0f / l;
    if (t < T)
      lse[(static_cast<int64_t>(b) * NH + h) * T + t] =
          static_cast<float>((static_cast<double>(m) + log2(static_cast<double>(l))) * kLn2);
  }
  __syncwarp();
#pragma unroll
  for (int n = 0; n < ND; n++)
#pragma unroll
    for (int e = 0; e < idf.num_elements; e++) o[n].x[e] *= alpha_s[16 * w + (static_cast<int>(idf.x[e]) >> 4)];
  const int64_t CO = static_cast<int64_t>(NH) * D;
  const int row0 = i0 + 16 * w;
  store_rows<ND>(out + (static_cast<int64_t>(b) * T + row0) * CO + static_cast<int64_t>(h) * D, CO,
                 min(16, T - row0), o, sw, lane);
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_dq_bf16_kernel(float* __restrict__ dqkv,        // (B, T, (NH + 2*NKV)*D), q part
                             const float* __restrict__ dout,  // (B, T, NH*D)
                             const float* __restrict__ out,   // (B, T, NH*D)
                             const float* __restrict__ lse,   // (B, NH, T)
                             const float* __restrict__ qkv,   // (B, T, (NH + 2*NKV)*D)
                             int T, int NH, int NKV, float c2, float scale) {
  using S = Smem<D>;
  constexpr int kLdH = S::kLdH, ND = D / 16;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16_t* qs = reinterpret_cast<bf16_t*>(smem);                   // (64, kLdH) Q tile
  bf16_t* dos = reinterpret_cast<bf16_t*>(smem + S::kTileH);      // (64, kLdH) dO tile
  bf16_t* ks = reinterpret_cast<bf16_t*>(smem + 2 * S::kTileH);   // (64, kLdH) K tile
  bf16_t* vs = reinterpret_cast<bf16_t*>(smem + 3 * S::kTileH);   // (64, kLdH) V tile
  bf16_t* dss = reinterpret_cast<bf16_t*>(smem + 4 * S::kTileH);  // (64, kLdP) dS tile
  float* stage = reinterpret_cast<float*>(smem + 4 * S::kTileH + S::kTileP);  // (64, kLdS)
  float* ids = reinterpret_cast<float*>(smem + 4 * S::kTileH + S::kTileP + S::kStage);
  float* l2s = ids + S::kIds / sizeof(float);  // (64) lse * log2e per query row
  float* dsums = l2s + S::kRows / sizeof(float);  // (64) D per query row

  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int i0 = static_cast<int>(gridDim.z - 1 - blockIdx.z) * kTile;
  const int h = blockIdx.x, b = blockIdx.y, g = h / (NH / NKV);
  const int64_t C3 = static_cast<int64_t>(NH + 2 * NKV) * D;
  const int64_t CO = static_cast<int64_t>(NH) * D;
  const float* base = qkv + static_cast<int64_t>(b) * T * C3;                                   // + t*C3
  const float* dobase = dout + static_cast<int64_t>(b) * T * CO + static_cast<int64_t>(h) * D;  // + t*CO
  const float* obase = out + static_cast<int64_t>(b) * T * CO + static_cast<int64_t>(h) * D;
  const int i_end = min(i0 + kTile, T);
  const int row0 = i0 + 16 * w, row_last = row0 + 15;
  float* sw = stage + 16 * w * kLdS;

  load_tile<D>(qs, base + static_cast<int64_t>(h) * D, C3, i0, T);
  load_tile<D>(dos, dobase, CO, i0, T);
  init_ids(ids);
  for (int rr = 0; rr < 16; rr++) {  // the warp's own rows
    const int t = row0 + rr;
    const float dsum = warp_delta(dobase + static_cast<int64_t>(t) * CO, obase + static_cast<int64_t>(t) * CO,
                                  t < T, D, lane);
    if (lane == 0) {
      dsums[16 * w + rr] = dsum;
      l2s[16 * w + rr] = t < T ? lse[(static_cast<int64_t>(b) * NH + h) * T + t] * kLog2e : 0.0f;
    }
  }
  __syncthreads();
  FragC idf, dq[ND];
  wmma::load_matrix_sync(idf, ids, 16, wmma::mem_row_major);
#pragma unroll
  for (int n = 0; n < ND; n++) zero(dq[n]);

  for (int s0 = 0; s0 < i_end; s0 += kTile) {
    __syncthreads();  // every warp is done with the previous K, V tiles
    load_tile<D>(ks, base + static_cast<int64_t>(NH + g) * D, C3, s0, T);
    load_tile<D>(vs, base + static_cast<int64_t>(NH + NKV + g) * D, C3, s0, T);
    __syncthreads();
    const int nk = min(4, (row_last - s0) / 16 + 1);  // >= 1 since s0 <= i0
    for (int n = 0; n < nk; n++) {
      FragC sf, dpf;  // S = Q_w K_n^T, dP = dO_w V_n^T (16 x 16)
      zero(sf);
      zero(dpf);
      mma_abt<ND, kLdH>(sf, qs + 16 * w * kLdH, ks + 16 * n * kLdH);
      mma_abt<ND, kLdH>(dpf, dos + 16 * w * kLdH, vs + 16 * n * kLdH);
#pragma unroll
      for (int e = 0; e < sf.num_elements; e++) {
        const int id = static_cast<int>(idf.x[e]), rr = id >> 4;
        const int t = row0 + rr, key = s0 + 16 * n + (id & 15);
        const float p = exp2f(sf.x[e] * c2 - l2s[16 * w + rr]);
        sf.x[e] = (key <= t && t < T) ? p * (dpf.x[e] - dsums[16 * w + rr]) * scale : 0.0f;
      }
      wmma::store_matrix_sync(sw, sf, kLdS, wmma::mem_row_major);
      __syncwarp();
      stage_to_bf16(dss + 16 * w * kLdP + 16 * n, sw, lane);
      __syncwarp();
    }
    mma_ab<ND, kLdP, kLdH>(dq, dss + 16 * w * kLdP, ks, 0, nk);  // dQ_w += dS_w K
  }

  store_rows<ND>(dqkv + (static_cast<int64_t>(b) * T + row0) * C3 + static_cast<int64_t>(h) * D, C3,
                 min(16, T - row0), dq, sw, lane);
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_dkdv_bf16_kernel(float* __restrict__ dqkv,        // (B, T, (NH + 2*NKV)*D), k, v parts
                               const float* __restrict__ dout,  // (B, T, NH*D)
                               const float* __restrict__ out,   // (B, T, NH*D)
                               const float* __restrict__ lse,   // (B, NH, T)
                               const float* __restrict__ qkv,   // (B, T, (NH + 2*NKV)*D)
                               int T, int NH, int NKV, float c2, float scale) {
  using S = Smem<D>;
  constexpr int kLdH = S::kLdH, ND = D / 16;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16_t* ks = reinterpret_cast<bf16_t*>(smem);                                  // (64, kLdH) K tile
  bf16_t* vs = reinterpret_cast<bf16_t*>(smem + S::kTileH);                      // (64, kLdH) V tile
  bf16_t* qs = reinterpret_cast<bf16_t*>(smem + 2 * S::kTileH);                  // (64, kLdH) Q tile
  bf16_t* dos = reinterpret_cast<bf16_t*>(smem + 3 * S::kTileH);                 // (64, kLdH) dO tile
  bf16_t* pts = reinterpret_cast<bf16_t*>(smem + 4 * S::kTileH);                 // (64, kLdP) P^T
  bf16_t* dsts = reinterpret_cast<bf16_t*>(smem + 4 * S::kTileH + S::kTileP);    // (64, kLdP) dS^T
  float* stage = reinterpret_cast<float*>(smem + 4 * S::kTileH + 2 * S::kTileP);  // (64, kLdS)
  float* ids = reinterpret_cast<float*>(smem + 4 * S::kTileH + 2 * S::kTileP + S::kStage);
  float* l2s = ids + S::kIds / sizeof(float);     // (64) lse * log2e of the query tile
  float* dsums = l2s + S::kRows / sizeof(float);  // (64) D of the query tile

  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int s0 = blockIdx.z * kTile;  // first key tiles (the most query tiles) first
  const int g = blockIdx.x, b = blockIdx.y, group = NH / NKV;
  const int64_t C3 = static_cast<int64_t>(NH + 2 * NKV) * D;
  const int64_t CO = static_cast<int64_t>(NH) * D;
  const float* base = qkv + static_cast<int64_t>(b) * T * C3;  // row t at + t*C3
  const int key0 = s0 + 16 * w;                                // the warp's first key
  float* sw = stage + 16 * w * kLdS;

  load_tile<D>(ks, base + static_cast<int64_t>(NH + g) * D, C3, s0, T);
  load_tile<D>(vs, base + static_cast<int64_t>(NH + NKV + g) * D, C3, s0, T);
  init_ids(ids);
  __syncthreads();
  FragC dk[ND], dv[ND];
#pragma unroll
  for (int n = 0; n < ND; n++) {
    zero(dk[n]);
    zero(dv[n]);
  }

  for (int h = g * group; h < (g + 1) * group; h++) {
    const float* dobase = dout + static_cast<int64_t>(b) * T * CO + static_cast<int64_t>(h) * D;  // + t*CO
    const float* obase = out + static_cast<int64_t>(b) * T * CO + static_cast<int64_t>(h) * D;
    const float* lrow = lse + (static_cast<int64_t>(b) * NH + h) * T;
    for (int i0 = s0; i0 < T; i0 += kTile) {  // query tiles that see some key >= s0
      __syncthreads();  // every warp is done with the previous Q, dO tiles and statistics
      load_tile<D>(qs, base + static_cast<int64_t>(h) * D, C3, i0, T);
      load_tile<D>(dos, dobase, CO, i0, T);
      for (int rr = w; rr < kTile; rr += kWarps) {
        const int t = i0 + rr;
        const float dsum = warp_delta(dobase + static_cast<int64_t>(t) * CO, obase + static_cast<int64_t>(t) * CO,
                                      t < T, D, lane);
        if (lane == 0) {
          dsums[rr] = dsum;
          l2s[rr] = t < T ? lrow[t] * kLog2e : 0.0f;
        }
      }
      __syncthreads();
      // Query blocks [jlo, jhi) hold a query >= key0 and < T; the others are all masked.
      const int jlo = max(0, (key0 - i0) / 16), jhi = min(4, (T - i0 + 15) / 16);
      for (int n = jlo; n < jhi; n++) {
        FragC sf, dpf;  // S^T = K_w Q_n^T, dP^T = V_w dO_n^T (16 keys x 16 queries)
        zero(sf);
        zero(dpf);
        mma_abt<ND, kLdH, 2>(sf, ks + 16 * w * kLdH, qs + 16 * n * kLdH);
        mma_abt<ND, kLdH, 2>(dpf, vs + 16 * w * kLdH, dos + 16 * n * kLdH);
        FragC idf;  // reloaded here: keeping it live costs registers that dK, dV need
        wmma::load_matrix_sync(idf, ids, 16, wmma::mem_row_major);
#pragma unroll
        for (int e = 0; e < sf.num_elements; e++) {
          const int id = static_cast<int>(idf.x[e]), qi = 16 * n + (id & 15);
          const int key = key0 + (id >> 4), t = i0 + qi;
          const bool visible = key <= t && t < T;
          const float p = visible ? exp2f(sf.x[e] * c2 - l2s[qi]) : 0.0f;
          sf.x[e] = p;
          dpf.x[e] = visible ? p * (dpf.x[e] - dsums[qi]) * scale : 0.0f;
        }
        wmma::store_matrix_sync(sw, sf, kLdS, wmma::mem_row_major);
        wmma::store_matrix_sync(sw + 16, dpf, kLdS, wmma::mem_row_major);
        __syncwarp();
        stage_to_bf16(pts + 16 * w * kLdP + 16 * n, sw, lane);
        stage_to_bf16(dsts + 16 * w * kLdP + 16 * n, sw + 16, lane);
        __syncwarp();
      }
      mma_ab<ND, kLdP, kLdH>(dv, pts + 16 * w * kLdP, dos, jlo, jhi);   // dV_w += P^T_w dO
      mma_ab<ND, kLdP, kLdH>(dk, dsts + 16 * w * kLdP, qs, jlo, jhi);  // dK_w += dS^T_w Q
    }
  }

  const int nrows = min(16, T - key0);  // may be <= 0: nothing to write
  float* dkbase = dqkv + (static_cast<int64_t>(b) * T + key0) * C3 + static_cast<int64_t>(NH + g) * D;
  store_rows<ND>(dkbase, C3, nrows, dk, sw, lane);
  store_rows<ND>(dkbase + static_cast<int64_t>(NKV) * D, C3, nrows, dv, sw, lane);
}

// ---- launchers -------------------------------------------------------------------------------

struct Shape {
  int B, T, NH, NKV, hs;
};

unsigned int tiles(int T) { return static_cast<unsigned int>((T + kTile - 1) / kTile); }

template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  SSIAT_GPU_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

template <int D>
void launch_forward(float* out, float* lse, const float* qkv, Shape x, cudaStream_t s) {
  const float c2 = static_cast<float>(kLog2eD / std::sqrt(static_cast<double>(D)));
  auto kernel = attention_fwd_bf16_kernel<D>;
  allow_smem(kernel, Smem<D>::kForward);
  kernel<<<dim3(x.NH, x.B, tiles(x.T)), kThreads, Smem<D>::kForward, s>>>(out, lse, qkv, x.T, x.NH, x.NKV, c2);
  SSIAT_LAUNCH_CHECK();
}

template <int D>
void launch_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv, Shape x,
                     cudaStream_t s) {
  const float c2 = static_cast<float>(kLog2eD / std::sqrt(static_cast<double>(D)));
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  auto dq_kernel = attention_dq_bf16_kernel<D>;
  allow_smem(dq_kernel, Smem<D>::kDq);
  dq_kernel<<<dim3(x.NH, x.B, tiles(x.T)), kThreads, Smem<D>::kDq, s>>>(dqkv, dout, out, lse, qkv, x.T, x.NH, x.NKV,
                                                                        c2, scale);
  SSIAT_LAUNCH_CHECK();
  auto dkdv_kernel = attention_dkdv_bf16_kernel<D>;
  allow_smem(dkdv_kernel, Smem<D>::kDkdv);
  dkdv_kernel<<<dim3(x.NKV, x.B, tiles(x.T)), kThreads, Smem<D>::kDkdv, s>>>(dqkv, dout, out, lse, qkv, x.T, x.NH,
                                                                              x.NKV, c2, scale);
  SSIAT_LAUNCH_CHECK();
}

Shape check_shape(const char* what, int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS) {
  SSIAT_CHECK(B >= 0 && T_ >= 0 && NH > 0 && NKV > 0 && HS > 0)
      << what << ": bad shape B=" << B << " T=" << T_ << " NH=" << NH << " NKV=" << NKV << " HS=" << HS;
  SSIAT_CHECK(NH % NKV == 0) << what << ": NH=" << NH << " is not a multiple of NKV=" << NKV;
  SSIAT_CHECK(attention_bf16_supported(HS))
      << what << ": HS=" << HS << " is not supported by the bf16 tensor-core kernel (HS must be 64 or 128)";
  // Grid (heads, B, tiles of 64 rows): y and z are limited to 65535, x to 2^31 - 1.
  SSIAT_CHECK(B <= kMaxTiles && T_ <= kMaxTiles * kTile && NH <= INT32_MAX)
      << what << ": B=" << B << " T=" << T_ << " NH=" << NH
      << " exceed the grid limits (B <= 65535, T <= 65535 * 64, NH < 2^31)";
  return Shape{static_cast<int>(B), static_cast<int>(T_), static_cast<int>(NH), static_cast<int>(NKV),
               static_cast<int>(HS)};
}

}  // namespace

bool attention_bf16_supported(int64_t HS) { return HS == 64 || HS == 128; }

void attention_forward_bf16(float* out, float* lse, const float* qkv, int64_t B, int64_t T_, int64_t NH,
                            int64_t NKV, int64_t HS, Stream s) {
  const Shape x = check_shape("attention_forward_bf16", B, T_, NH, NKV, HS);
  if (B == 0 || T_ == 0) return;
  SSIAT_CHECK(out != nullptr && lse != nullptr && qkv != nullptr) << "attention_forward_bf16: null pointer";
  if (HS == 64)
    launch_forward<64>(out, lse, qkv, x, s);
  else
    launch_forward<128>(out, lse, qkv, x, s);
}

void attention_backward_bf16(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                             int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS, Stream s) {
  const Shape x = check_shape("attention_backward_bf16", B, T_, NH, NKV, HS);
  if (B == 0 || T_ == 0) return;
  SSIAT_CHECK(dqkv != nullptr && dout != nullptr && out != nullptr && lse != nullptr && qkv != nullptr)
      << "attention_backward_bf16: null pointer";
  if (HS == 64)
    launch_backward<64>(dqkv, dout, out, lse, qkv, x, s);
  else
    launch_backward<128>(dqkv, dout, out, lse, qkv, x, s);
}

}  // namespace ssiat::kernels::cuda
