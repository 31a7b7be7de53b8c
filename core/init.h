// Parameter initialisation, element by element, independent of sharding (DESIGN invariants 1-2).
//
// Element i (row-major index in the full, unsharded tensor) of a tensor with stream key K and
// spec S is value(K, S, i), a pure function specified in docs/init.md: Philox4x32-10 with
// counter (lo32(i), hi32(i), attempt, 0) and key K, turned into a uniform, normal or truncated
// normal with IEEE-754 basic operations only (no libm, no FMA contraction), computed in double
// and rounded once to the output type. Deterministic inits (zeros, ones) use no bits.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/philox.h"

namespace ssiat {

// Truncated normal: rejection attempts 0..kTruncNormalMaxAttempts-1, then the documented
// deterministic fallback (a uniform point of [a, b] from the block with attempt = cap).
inline constexpr uint32_t kTruncNormalMaxAttempts = 64;

enum class InitKind { kZeros, kOnes, kUniform, kNormal, kTruncNormal };

struct InitSpec {
  InitKind kind = InitKind::kZeros;
  double mean = 0.0;  // normal, trunc_normal
  double std = 1.0;   // normal, trunc_normal
  double a = -2.0;    // trunc_normal: lower bound in std units (x = mean + std*z, z in [a, b])
  double b = 2.0;     // trunc_normal: upper bound in std units
  double lo = 0.0;    // uniform: [lo, hi)
  double hi = 1.0;
  nlohmann::json to_json() const;  // {"fn":"trunc_normal","mean":0,"std":0.02,"a":-2,"b":2}
  // Inverse of to_json; throws ConfigError naming the bad key or value.
  static InitSpec from_json(const nlohmann::json& j);
  // Throws ConfigError unless the parameters are finite and std >= 0, lo <= hi, a < b.
  void validate() const;
  static InitSpec zeros();
  static InitSpec ones();
  static InitSpec uniform(double lo, double hi);
  static InitSpec normal(double mean, double std);
  static InitSpec trunc_normal(double mean, double std, double a = -2.0, double b = 2.0);
};

// Transforms of one Philox block (docs/init.md gives them step by step).
double uniform01_from_bits(uint32_t hi, uint32_t lo);  // 53-bit uniform in [0, 1)
double portable_log(double x);                          // x > 0, basic operations only
double portable_cos_2pi(double u);                      // cos(2*pi*u), u in [0, 1)

// value(K, S, i) in double, before rounding to the tensor's dtype.
double init_value(const InitSpec& spec, PhiloxKey key, uint64_t index);

// out[j] = value(key, spec, begin + j) for j in [0, count): one shard of the full tensor.
// Shared among the OpenMP threads for large counts; init_fill_serial: the same bytes on the
// calling thread alone (for callers that schedule pieces themselves, e.g. as OpenMP tasks).
template <typename T>
void init_fill(T* out, uint64_t begin, int64_t count, const InitSpec& spec, PhiloxKey key);
template <typename T>
void init_fill_serial(T* out, uint64_t begin, int64_t count, const InitSpec& spec, PhiloxKey key);

}  // namespace ssiat
