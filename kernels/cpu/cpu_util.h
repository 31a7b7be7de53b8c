// Internal helpers for the CPU kernels (not part of any backend-neutral contract).
//
// exp_approx<T>(x): e^x with no libm call, written so that GCC vectorises loops that call it
// (AVX2: no branches, no float->int conversion, only add/mul/fma, integer add/shift and blends).
//   Method: Cody-Waite range reduction x = k*ln2 + r, |r| <= ln2/2 (ln2 split hi+lo so k*ln2hi is
//   exact), e^r by its Taylor polynomial (degree 7 for float, 13 for double: truncation below
//   0.1 ulp), times 2^k built in the exponent field. k = round(x/ln2) comes from the round-to-nearest
//   "shifter" trick (adding 1.5*2^p leaves k in the low mantissa bits).
//   Accuracy: about 1-2 ulp. Inputs are clamped to [kLo, kHi] so 2^k stays a normal number: the
//   result is finite and > 0 for every non-NaN input (e^x for x < kLo returns e^kLo, ~1e-38 for
//   float, ~3e-308 for double, instead of underflowing to 0); NaN propagates.
// split_range(n, align, parts, idx): the idx-th of `parts` contiguous pieces of [0, n), piece
//   boundaries on multiples of `align`; used to partition columns among threads (the result of a
//   column-partitioned kernel never depends on the partition, only the work does).
#pragma once

#include <bit>
#include <cstdint>
#include <utility>

namespace ssiat::kernels::cpu::detail {

// Independent accumulators for vectorised reductions: the summation order is fixed by this
// constant (lane j takes elements j, j+kLanes, ...; lanes are combined in a fixed tree), not by
// the compiler or the thread count.
inline constexpr int kLanes = 16;

template <typename T>
struct ExpConsts;

template <>
struct ExpConsts<float> {
  using Bits = uint32_t;
  static constexpr float kLo = -87.0f;  // 2^k >= 2^-126 (normal)
  static constexpr float kHi = 88.0f;   // 2^k <= 2^127
  static constexpr float kLog2e = 1.44269504088896341f;
  static constexpr float kShift = 0x1.8p23f;
  static constexpr float kLn2Hi = 0x1.62ep-1f;  // 12 significant bits: k*kLn2Hi is exact
  static constexpr float kLn2Lo = 3.19461832987e-05f;
  static constexpr int kMantBits = 23;
  static constexpr Bits kBias = 127;
  static constexpr int kDegree = 7;
};

template <>
struct ExpConsts<double> {
  using Bits = uint64_t;
  static constexpr double kLo = -708.0;  // 2^k >= 2^-1022 (normal)
  static constexpr double kHi = 709.0;   // 2^k <= 2^1023
  static constexpr double kLog2e = 1.4426950408889634;
  static constexpr double kShift = 0x1.8p52;
  static constexpr double kLn2Hi = 0x1.62e42ffp-1;  // 32 significant bits: k*kLn2Hi is exact
  static constexpr double kLn2Lo = -4.2009150726810846e-11;
  static constexpr int kMantBits = 52;
  static constexpr Bits kBias = 1023;
  static constexpr int kDegree = 13;
};

// 1/i! for i = 0..13, the Taylor coefficients of e^r.
inline constexpr double kInvFactorial[14] = {
    1.0,
    1.0,
    1.0 / 2,
    1.0 / 6,
    1.0 / 24,
    1.0 / 120,
    1.0 / 720,
    1.0 / 5040,
    1.0 / 40320,
    1.0 / 362880,
    1.0 / 3628800,
    1.0 / 39916800,
    1.0 / 479001600,
    1.0 / 6227020800.0,
};

// c ? a : b as a bit blend. GCC does not if-convert a plain `?:` on floating-point comparisons
// under -ftrapping-math (the default), which keeps the enclosing loop scalar; this form vectorises
// to a compare and a blend.
template <typename T>
inline T select(bool c, T a, T b) {
  using Bits = typename ExpConsts<T>::Bits;
  const Bits mask = Bits(0) - static_cast<Bits>(c);
  return std::bit_cast<T>((std::bit_cast<Bits>(a) & mask) | (std::bit_cast<Bits>(b) & ~mask));
}

// sum_{i=0..D} r^i / i! by Horner's rule, fully unrolled at compile time (a runtime loop here
// would keep the caller's loop from being vectorised).
template <typename T, int D, int I = D>
inline T horner(T r) {
  if constexpr (I == 0) {
    return static_cast<T>(kInvFactorial[D]);
  } else {
    return horner<T, D, I - 1>(r) * r + static_cast<T>(kInvFactorial[D - I]);
  }
}

template <typename T>
inline T exp_approx(T x) {
  using C = ExpConsts<T>;
  x = select(x < C::kLo, C::kLo, x);
  x = select(x > C::kHi, C::kHi, x);
  const T t = x * C::kLog2e + C::kShift;  // round(x / ln2) in the low mantissa bits of t
  const T k = t - C::kShift;
  T r = x - k * C::kLn2Hi;
  r = r - k * C::kLn2Lo;
  const T p = horner<T, C::kDegree>(r);
  // The low bits of t hold k (two's complement), so (bits(t) + bias) << mantissa_bits is the bit
  // pattern of 2^k for k in [1-bias, bias].
  const typename C::Bits scale = (std::bit_cast<typename C::Bits>(t) + C::kBias) << C::kMantBits;
  return p * std::bit_cast<T>(scale);
}

// Lanes combined by a fixed halving tree: lane j += lane j+w for w = kLanes/2, ..., 1.
template <typename T>
inline T combine_lanes_sum(T* lanes) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; j++) lanes[j] = lanes[j] + lanes[j + w];
  return lanes[0];
}

template <typename T>
inline T combine_lanes_max(T* lanes) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; j++) lanes[j] = lanes[j + w] > lanes[j] ? lanes[j + w] : lanes[j];
  return lanes[0];
}

inline std::pair<int64_t, int64_t> split_range(int64_t n, int64_t align, int parts, int idx) {
  const int64_t units = (n + align - 1) / align;
  const int64_t per = units / parts, extra = units % parts;
  const int64_t u0 = idx * per + (idx < extra ? idx : extra);
  const int64_t u1 = u0 + per + (idx < extra ? 1 : 0);
  const int64_t lo = u0 * align < n ? u0 * align : n;
  const int64_t hi = u1 * align < n ? u1 * align : n;
  return {lo, hi};
}

// Work (elements touched) below which a kernel stays on the calling thread: forking a team
// costs a few microseconds, more than the work itself.
inline constexpr int64_t kParallelMinWork = 1 << 15;

}  // namespace ssiat::kernels::cpu::detail
