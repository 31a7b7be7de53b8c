// CPU causal GQA attention (contract in kernels/attention.h), tiled in the manner of
// FlashAttention-2 (Dao 2023, arXiv:2307.08691):
//   forward  — per (b, h, block of kBr queries): loop over key blocks of kBc keys, online softmax
//              in base 2 (running max m, running sum l), O rescaled by 2^(m_old - m_new); saves
//              lse = (m + log2 l) * ln 2 per row. Nothing of size (T, T) is ever allocated.
//   backward — per (b, kv head g): loop over key blocks j; for every query head of the group and
//              every query block i >= j recompute P = exp(S - lse), dP = dO V^T,
//              dS = P * (dP - D) with D_t = dout_t · out_t, and accumulate dV_j += P^T dO_i,
//              dK_j += dS^T Q_i, dQ_i += dS K_j.
// Determinism: every output element is produced by one task (forward: (b, h, query block);
// backward: (b, kv head)) in a fixed summation order, so results are bitwise identical for any
// OpenMP thread count. Fully masked tiles are skipped; partially masked ones are zeroed exactly.
//
// Block products are register tiles (kR rows x 2 SIMD vectors of columns) written with the
// GCC/Clang vector extension; exp2 is a branch-free polynomial on the same vectors, so the
// softmax runs at SIMD width too (no libm in the inner loops).
#include "kernels/attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/check.h"

namespace ssiat::kernels::cpu {
namespace {

constexpr int64_t kBr = 64;        // queries per block
constexpr int64_t kBc = 64;        // keys per block
constexpr int kR = 6;              // rows of a register tile
#if defined(__AVX__)
constexpr int kVecBytes = 32;  // AVX2 (the Release flags target x86-64-v3)
#else
constexpr int kVecBytes = 16;  // SSE2 / NEON
#endif
constexpr double kMinParallelMacs = 1 << 18;  // smaller calls run on one thread (same result)
constexpr double kLog2e = 1.4426950408889634074;
constexpr double kLn2 = 0.69314718055994530942;

// SIMD vector of T (GCC/Clang vector extension; the compiler lowers it to AVX2 registers).
template <typename T>
struct Simd {
  static constexpr int kL = kVecBytes / static_cast<int>(sizeof(T));
  typedef T V __attribute__((vector_size(kVecBytes)));
};

template <typename V, typename T>
[[gnu::always_inline]] inline V load_vec(const T* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));
  return v;
}

// Every lane = x: a plain broadcast, since x - (+0) == x for every x (whereas x + 0 is not x
// for x = -0, so `V{} + x` would keep an add in the inner loop).
template <typename V, typename T>
[[gnu::always_inline]] inline V splat(T x) {
  return x - V{};
}

template <typename V, typename T>
[[gnu::always_inline]] inline void store_vec(T* p, const V& v) {
  __builtin_memcpy(p, &v, sizeof(V));
}

// ---------------------------------------------------------------------------------------------
// exp2 for x <= ~0: 2^x = 2^n * 2^f with n = round(x), f in [-1/2, 1/2]; 2^f from its Taylor
// series in f*ln2 (truncation < 1e-8 relative for float, degree 7; < 1e-17 for double, degree 13);
// 2^n assembled in the exponent bits. Inputs below the smallest normal exponent give 0.

template <typename T>
struct Exp2Consts;

template <>
struct Exp2Consts<float> {
  using U = uint32_t;
  static constexpr float kMagic = 0x1.8p23f;  // adding it rounds to an integer in the low bits
  static constexpr U kBias = 127;
  static constexpr int kShift = 23;
  static constexpr float kMin = -126.0f;
  static constexpr float kMax = 127.0f;
  static constexpr int kDegree = 7;
};

template <>
struct Exp2Consts<double> {
  using U = uint64_t;
  static constexpr double kMagic = 0x1.8p52;
  static constexpr U kBias = 1023;
  static constexpr int kShift = 52;
  static constexpr double kMin = -1022.0;
  static constexpr double kMax = 1023.0;
  static constexpr int kDegree = 13;
};

// (ln 2)^k / k!, k = 0..13, computed at compile time in double.
struct Exp2Taylor {
  double c[14];
  constexpr Exp2Taylor() : c() {
    double v = 1.0;
    for (int k = 0; k < 14; k++) {
      c[k] = v;
      v = v * kLn2 / static_cast<double>(k + 1);
    }
  }
};
constexpr Exp2Taylor kExp2Taylor;

template <typename T>
[[gnu::always_inline]] inline typename Simd<T>::V exp2_vec(typename Simd<T>::V x) {
  using K = Exp2Consts<T>;
  using V = typename Simd<T>::V;
  typedef typename K::U VU __attribute__((vector_size(kVecBytes)));
  const V lo = splat<V>(K::kMin), hi = splat<V>(K::kMax), magic = splat<V>(K::kMagic);
  const V xc = x < lo ? lo : (x > hi ? hi : x);
  const V t = xc + magic;  // low mantissa bits of t hold n = round(xc)
  const V n = t - magic;
  const V f = xc - n;  // exact, |f| <= 1/2
  V p = splat<V>(static_cast<T>(kExp2Taylor.c[K::kDegree]));
#pragma GCC unroll 16
  for (int k = K::kDegree - 1; k >= 0; k--) p = p * f + static_cast<T>(kExp2Taylor.c[k]);
  // bits(t) = bits(kMagic) + n; the magic's own bits shift out, leaving (n + bias) << shift.
  const VU e = (std::bit_cast<VU>(t) + K::kBias) << K::kShift;
  const V r = p * std::bit_cast<V>(e);
  return x < lo ? V{} : r;
}

// Lane indices 0, 1, ..., kL-1 as T (for masks built from a column index).
template <typename T>
[[gnu::always_inline]] inline typename Simd<T>::V lane_iota() {
  typename Simd<T>::V v;
  for (int i = 0; i < Simd<T>::kL; i++) v[i] = static_cast<T>(i);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Block products C (M x N) (=|+=) A (M x K) B (K x N). A(r, k) = A[r*ars + k*acs] (any strides:
// its elements are broadcast), B(k, n) = B[k*ldb + n] and C(r, n) = C[r*ldc + n] row-major.
// A range function narrows, per group of kR rows, the k range and the column range (causal
// skipping); columns outside [n0, n1) are not written.

enum class Store { kAssign, kAdd };

struct TileRange {
  int64_t k0, k1;  // k in [k0, k1)
  int64_t n0, n1;  // columns in [n0, n1) (widened to whole vectors by the driver)
};

// R rows x NV vectors of C, accumulators in registers; the k loop streams A and B once.
template <typename T, int R, int NV, Store S>
[[gnu::always_inline]] inline void tile_simd(int64_t K, const T* __restrict A, int64_t ars, int64_t acs,
                                             const T* __restrict B, int64_t ldb, T* __restrict C,
                                             int64_t ldc) {
  using V = typename Simd<T>::V;
  constexpr int kL = Simd<T>::kL;
  V acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = S == Store::kAdd ? load_vec<V>(C + r * ldc + v * kL) : V{};
  for (int64_t k = 0; k < K; k++) {
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = load_vec<V>(B + k * ldb + v * kL);
    const T* a = A + k * acs;
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const V ar = splat<V>(a[r * ars]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] += ar * b[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) store_vec(C + r * ldc + v * kL, acc[r][v]);
}

// One column of C (the scalar tail when N is not a multiple of the vector width).
template <typename T, int R, Store S>
inline void tile_column(int64_t K, const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
                        int64_t ldc) {
  T acc[R];
  for (int r = 0; r < R; r++) acc[r] = S == Store::kAdd ? C[r * ldc] : T(0);
  for (int64_t k = 0; k < K; k++)
    for (int r = 0; r < R; r++) acc[r] += A[r * ars + k * acs] * B[k * ldb];
  for (int r = 0; r < R; r++) C[r * ldc] = acc[r];
}

template <typename T, int R, Store S>
void row_group(int64_t K, const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
               int64_t ldc, int64_t n0, int64_t n1) {
  constexpr int kL = Simd<T>::kL;
  int64_t n = n0;
  for (; n + 2 * kL <= n1; n += 2 * kL) tile_simd<T, R, 2, S>(K, A, ars, acs, B + n, ldb, C + n, ldc);
  for (; n + kL <= n1; n += kL) tile_simd<T, R, 1, S>(K, A, ars, acs, B + n, ldb, C + n, ldc);
  for (; n < n1; n++) tile_column<T, R, S>(K, A, ars, acs, B + n, ldb, C + n, ldc);
}

template <typename T, Store S, typename RangeFn>
void block_gemm(int64_t M, int64_t N, const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
                int64_t ldc, RangeFn range) {
  constexpr int64_t kW = 2 * kVecBytes / static_cast<int64_t>(sizeof(T));
  for (int64_t r0 = 0; r0 < M; r0 += kR) {
    const int64_t rows = std::min<int64_t>(kR, M - r0);
    const TileRange g = range(r0, rows);
    const int64_t n0 = g.n0 / kW * kW;
    const int64_t n1 = std::min(N, (g.n1 + kW - 1) / kW * kW);
    if (n1 <= n0 || (S == Store::kAdd && g.k1 <= g.k0)) continue;
    const int64_t K = std::max<int64_t>(g.k1 - g.k0, 0);
    const T* a = A + r0 * ars + g.k0 * acs;
    const T* b = B + g.k0 * ldb;
    T* c = C + r0 * ldc;
    switch (rows) {
      case 6: row_group<T, 6, S>(K, a, ars, acs, b, ldb, c, ldc, n0, n1); break;
      case 5: row_group<T, 5, S>(K, a, ars, acs, b, ldb, c, ldc, n0, n1); break;
      case 4: row_group<T, 4, S>(K, a, ars, acs, b, ldb, c, ldc, n0, n1); break;
      case 3: row_group<T, 3, S>(K, a, ars, acs, b, ldb, c, ldc, n0, n1); break;
      case 2: row_group<T, 2, S>(K, a, ars, acs, b, ldb, c, ldc, n0, n1); break;
      default: row_group<T, 1, S>(K, a, ars, acs, b, ldb, c, ldc, n0, n1); break;
    }
  }
}
static_assert(kR == 6, "block_gemm dispatches row counts 1..6");
static_assert(kBr % (2 * kVecBytes / sizeof(float)) == 0 && kBc % (2 * kVecBytes / sizeof(float)) == 0,
              "blocks must be whole register tiles");

inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return std::min(std::max(v, lo), hi); }

void check_shapes(const char* what, int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS) {
  SSIAT_CHECK(B >= 0 && T_ >= 0 && NH > 0 && NKV > 0 && HS > 0)
      << what << ": bad shape B=" << B << " T=" << T_ << " NH=" << NH << " NKV=" << NKV << " HS=" << HS;
  SSIAT_CHECK(NH % NKV == 0) << what << ": NH=" << NH << " is not a multiple of NKV=" << NKV;
}

}  // namespace

template <typename T>
void attention_forward(T* out, T* lse, const T* qkv, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                       int64_t HS) {
  check_shapes("attention_forward", B, T_, NH, NKV, HS);
  const int64_t C3 = (NH + 2 * NKV) * HS;
  const int64_t CO = NH * HS;
  const int64_t group = NH / NKV;
  const T c = static_cast<T>(kLog2e / std::sqrt(static_cast<double>(HS)));  // scores -> base-2 logits
  const int64_t nqb = (T_ + kBr - 1) / kBr;
  const int64_t ntasks = B * NH * nqb;
  const double macs = 2.0 * B * NH * (static_cast<double>(T_) * (T_ + 1) / 2) * HS;

#pragma omp parallel if (ntasks > 1 && macs >= kMinParallelMacs)
  {
    std::vector<T> qt(HS * kBr);    // (HS, kBr) queries of the block, transposed, zero-padded
    std::vector<T> st(kBc * kBr);   // (kBc, kBr) scores S^T, then probabilities P^T
    std::vector<T> o(kBr * HS);     // (kBr, HS) unnormalised output
    std::vector<T> m(kBr), l(kBr), mnew(kBr), alpha(kBr);

#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < ntasks; task++) {
      // Within a head, the largest (last) query block first: one thread's consecutive tasks
      // reuse K and V from cache, and the small blocks come last for load balance.
      const int64_t qb = nqb - 1 - task % nqb;
      const int64_t b = task / nqb / NH;
      const int64_t h = task / nqb % NH;
      const int64_t i0 = qb * kBr;
      const int64_t nr = std::min(kBr, T_ - i0);
      const T* qrow = qkv + (b * T_ + i0) * C3 + h * HS;                     // row q at + q*C3
      const T* krow = qkv + b * T_ * C3 + NH * HS + (h / group) * HS;       // row s at + s*C3
      const T* vrow = krow + NKV * HS;

      for (int64_t q = 0; q < kBr; q++)
        for (int64_t d = 0; d < HS; d++) qt[d * kBr + q] = q < nr ? qrow[q * C3 + d] : T(0);
      std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
      std::fill(l.begin(), l.end(), T(0));
      std::fill(o.begin(), o.end(), T(0));

      for (int64_t s0 = 0; s0 < i0 + nr; s0 += kBc) {
        const int64_t nc = std::min(kBc, i0 + nr - s0);  // keys past the last query never count
        // S^T (nc, kBr) = K_j QT; key row r only matters for queries q >= s0 + r - i0.
        block_gemm<T, Store::kAssign>(nc, kBr, krow + s0 * C3, C3, 1, qt.data(), kBr, st.data(), kBr,
                                      [&](int64_t r0, int64_t) {
                                        return TileRange{0, HS, std::max<int64_t>(0, s0 + r0 - i0), kBr};
                                      });
        // Online softmax, vectorised across the queries (columns of S^T). Entries with query
        // q < s0 + r - i0 (in the future of the query) become -inf, hence probability 0.
        using V = typename Simd<T>::V;
        constexpr int kL = Simd<T>::kL;
        const V iota = lane_iota<T>();
        const V ninf = splat<V>(-std::numeric_limits<T>::infinity());
        T* __restrict mo = m.data();
        T* __restrict mn = mnew.data();
        T* __restrict ls = l.data();
        T* __restrict al = alpha.data();
        for (int64_t q = 0; q < kBr; q += kL) store_vec(mn + q, load_vec<V>(mo + q));
        for (int64_t r = 0; r < nc; r++) {
          T* __restrict row = st.data() + r * kBr;
          const T qs = static_cast<T>(s0 + r - i0);  // first query that sees key s0 + r
          for (int64_t q = 0; q < kBr; q += kL) {
            const V x = iota + static_cast<T>(q) >= qs ? load_vec<V>(row + q) * c : ninf;
            store_vec(row + q, x);
            const V mq = load_vec<V>(mn + q);
            store_vec(mn + q, mq > x ? mq : x);
          }
        }
        for (int64_t q = 0; q < kBr; q += kL) {
          const V mq = load_vec<V>(mn + q);
          const V a = exp2_vec<T>(load_vec<V>(mo + q) - mq);
          store_vec(al + q, a);
          store_vec(ls + q, load_vec<V>(ls + q) * a);
          store_vec(mo + q, mq);
        }
        for (int64_t r = 0; r < nc; r++) {
          T* __restrict row = st.data() + r * kBr;
          for (int64_t q = 0; q < kBr; q += kL) {
            const V p = exp2_vec<T>(load_vec<V>(row + q) - load_vec<V>(mo + q));
            store_vec(row + q, p);
            store_vec(ls + q, load_vec<V>(ls + q) + p);
          }
        }
        for (int64_t q = 0; q < nr; q++) {
          T* __restrict orow = o.data() + q * HS;
          const T a = al[q];
          for (int64_t d = 0; d < HS; d++) orow[d] *= a;
        }
        // O (nr, HS) += P V_j; queries q0..q0+rows-1 need keys < i0 + q0 + rows - s0.
        block_gemm<T, Store::kAdd>(nr, HS, st.data(), 1, kBr, vrow + s0 * C3, C3, o.data(), HS,
                                   [&](int64_t q0, int64_t rows) {
                                     return TileRange{0, std::min(nc, i0 + q0 + rows - s0), 0, HS};
                                   });
      }

      for (int64_t q = 0; q < nr; q++) {
        const T inv = T(1) / l[q];
        T* orow = out + (b * T_ + i0 + q) * CO + h * HS;
        for (int64_t d = 0; d < HS; d++) orow[d] = o[q * HS + d] * inv;
        lse[(b * NH + h) * T_ + i0 + q] =
            static_cast<T>((static_cast<double>(m[q]) + std::log2(static_cast<double>(l[q]))) * kLn2);
      }
    }
  }
}

template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* out, const T* lse, const T* qkv, int64_t B,
                        int64_t T_, int64_t NH, int64_t NKV, int64_t HS) {
  check_shapes("attention_backward", B, T_, NH, NKV, HS);
  const int64_t C3 = (NH + 2 * NKV) * HS;
  const int64_t CO = NH * HS;
  const int64_t group = NH / NKV;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(HS)));
  const T c = static_cast<T>(kLog2e / std::sqrt(static_cast<double>(HS)));
  const T log2e = static_cast<T>(kLog2e);
  const int64_t ntasks = B * NKV;
  const double macs = 5.0 * B * NH * (static_cast<double>(T_) * (T_ + 1) / 2) * HS;

#pragma omp parallel if (ntasks > 1 && macs >= kMinParallelMacs)
  {
    std::vector<T> kt(HS * kBc), vt(HS * kBc);  // (HS, kBc) K_j^T, V_j^T, zero-padded
    std::vector<T> s(kBr * kBc);                 // (kBr, kBc) S, then P
    std::vector<T> dp(kBr * kBc);                // (kBr, kBc) dP, then dS
    std::vector<T> dk(kBc * HS), dv(kBc * HS);   // (kBc, HS) accumulators for key block j
    std::vector<T> dd(group * T_), l2(group * T_);  // (group, T) D = dout·out and lse * log2 e

#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < ntasks; task++) {
      const int64_t b = task / NKV;
      const int64_t g = task % NKV;
      const T* krow = qkv + b * T_ * C3 + NH * HS + g * HS;  // row s at + s*C3
      const T* vrow = krow + NKV * HS;
      T* dkrow = dqkv + b * T_ * C3 + NH * HS + g * HS;
      T* dvrow = dkrow + NKV * HS;

      for (int64_t u = 0; u < group; u++) {
        const int64_t h = g * group + u;
        for (int64_t t = 0; t < T_; t++) {
          const T* dorow = dout + (b * T_ + t) * CO + h * HS;
          const T* orow = out + (b * T_ + t) * CO + h * HS;
          T acc = 0;
          for (int64_t d = 0; d < HS; d++) acc += dorow[d] * orow[d];
          dd[u * T_ + t] = acc;
          l2[u * T_ + t] = lse[(b * NH + h) * T_ + t] * log2e;
          T* dqrow = dqkv + (b * T_ + t) * C3 + h * HS;
          std::fill(dqrow, dqrow + HS, T(0));
        }
      }

      for (int64_t s0 = 0; s0 < T_; s0 += kBc) {
        const int64_t nc = std::min(kBc, T_ - s0);
        for (int64_t r = 0; r < kBc; r++)
          for (int64_t d = 0; d < HS; d++) {
            kt[d * kBc + r] = r < nc ? krow[(s0 + r) * C3 + d] : T(0);
            vt[d * kBc + r] = r < nc ? vrow[(s0 + r) * C3 + d] : T(0);
          }
        std::fill(dk.begin(), dk.end(), T(0));
        std::fill(dv.begin(), dv.end(), T(0));

        for (int64_t u = 0; u < group; u++) {
          const int64_t h = g * group + u;
          const T* qrow = qkv + b * T_ * C3 + h * HS;    // row t at + t*C3
          const T* dorow = dout + b * T_ * CO + h * HS;  // row t at + t*CO
          T* dqrow = dqkv + b * T_ * C3 + h * HS;
          for (int64_t i0 = s0 / kBr * kBr; i0 < T_; i0 += kBr) {
            const int64_t nr = std::min(kBr, T_ - i0);
            // Queries q0..q0+rows-1 see keys < i0 + q0 + rows - s0 of this block.
            auto causal_cols = [&](int64_t q0, int64_t rows) {
              return TileRange{0, HS, 0, clamp64(i0 + q0 + rows - s0, 0, kBc)};
            };
            // S (nr, kBc) = Q_i K_j^T;  dP (nr, kBc) = dO_i V_j^T.
            block_gemm<T, Store::kAssign>(nr, kBc, qrow + i0 * C3, C3, 1, kt.data(), kBc, s.data(), kBc,
                                          causal_cols);
            block_gemm<T, Store::kAssign>(nr, kBc, dorow + i0 * CO, CO, 1, vt.data(), kBc, dp.data(), kBc,
                                          causal_cols);
            // P = 2^(S c - lse log2 e), dS = P (dP - D) / sqrt(HS); exact zeros where masked.
            using V = typename Simd<T>::V;
            constexpr int kL = Simd<T>::kL;
            const V iota = lane_iota<T>();
            const V ninf = splat<V>(-std::numeric_limits<T>::infinity());
            for (int64_t q = 0; q < nr; q++) {
              T* __restrict srow = s.data() + q * kBc;
              T* __restrict dprow = dp.data() + q * kBc;
              const T rl = static_cast<T>(clamp64(i0 + q - s0 + 1, 0, nc));  // keys [0, rl) visible
              const T lq = l2[u * T_ + i0 + q];
              const T dsum = dd[u * T_ + i0 + q];
              for (int64_t r = 0; r < kBc; r += kL) {
                const auto visible = iota + static_cast<T>(r) < rl;
                const V p = exp2_vec<T>(visible ? load_vec<V>(srow + r) * c - lq : ninf);
                store_vec(srow + r, p);
                store_vec(dprow + r, visible ? p * (load_vec<V>(dprow + r) - dsum) * scale : V{});
              }
            }
            // Key r0..r0+rows-1 is seen by queries q >= s0 + r0 - i0.
            auto causal_rows = [&](int64_t r0, int64_t) {
              return TileRange{clamp64(s0 + r0 - i0, 0, nr), nr, 0, HS};
            };
            // dV_j (nc, HS) += P^T dO_i;  dK_j (nc, HS) += dS^T Q_i.
            block_gemm<T, Store::kAdd>(nc, HS, s.data(), 1, kBc, dorow + i0 * CO, CO, dv.data(), HS,
                                       causal_rows);
            block_gemm<T, Store::kAdd>(nc, HS, dp.data(), 1, kBc, qrow + i0 * C3, C3, dk.data(), HS,
                                       causal_rows);
            // dQ_i (nr, HS) += dS K_j.
            block_gemm<T, Store::kAdd>(nr, HS, dp.data(), kBc, 1, krow + s0 * C3, C3, dqrow + i0 * C3, C3,
                                       [&](int64_t q0, int64_t rows) {
                                         return TileRange{0, clamp64(i0 + q0 + rows - s0, 0, nc), 0, HS};
                                       });
          }
        }
        for (int64_t r = 0; r < nc; r++) {
          std::copy(dk.data() + r * HS, dk.data() + (r + 1) * HS, dkrow + (s0 + r) * C3);
          std::copy(dv.data() + r * HS, dv.data() + (r + 1) * HS, dvrow + (s0 + r) * C3);
        }
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t,
                                       int64_t);
template void attention_forward<double>(double*, double*, const double*, int64_t, int64_t, int64_t,
                                        int64_t, int64_t);
template void attention_backward<float>(float*, const float*, const float*, const float*, const float*,
                                        int64_t, int64_t, int64_t, int64_t, int64_t);
template void attention_backward<double>(double*, const double*, const double*, const double*,
                                         const double*, int64_t, int64_t, int64_t, int64_t, int64_t);

}  // namespace ssiat::kernels::cpu
