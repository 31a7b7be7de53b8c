// Portable init transforms (docs/init.md sections 3-7): Philox block -> uniform / normal /
// truncated normal with IEEE-754 basic operations only, in double, rounded once to the dtype.
//
// Every floating-point expression below is written one operation at a time in the documented
// order; the build compiles core/ with -ffp-contract=off and without fast-math, so the compiler
// may neither fuse a*b+c nor reassociate. No libm call is made on the value path (std::sqrt is
// the correctly rounded IEEE square root).
#include "core/init.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "core/error.h"

#if defined(__FAST_MATH__)
#error "core/init.cpp must not be compiled with -ffast-math (docs/init.md)"
#endif

namespace ssiat {

namespace {

// --- portable_log constants (docs/init.md 5.1) ---
constexpr double kSqrt2 = 0x1.6a09e667f3bcdp+0;
constexpr double kLn2Hi = 0x1.62e42fee00000p-1;
constexpr double kLn2Lo = 0x1.a39ef35793c76p-33;
// Lk = nearest double to 2/(2k+1), k = 1..10.
constexpr double kLogL[10] = {
    0x1.5555555555555p-1, 0x1.999999999999ap-2, 0x1.2492492492492p-2, 0x1.c71c71c71c71cp-3,
    0x1.745d1745d1746p-3, 0x1.3b13b13b13b14p-3, 0x1.1111111111111p-3, 0x1.e1e1e1e1e1e1ep-4,
    0x1.af286bca1af28p-4, 0x1.8618618618618p-4};

// --- portable_cos_2pi constants (docs/init.md 5.2) ---
constexpr double kTwoPi = 0x1.921fb54442d18p+2;
// Sk = nearest double to (-1)^k/(2k+1)!, k = 1..7.
constexpr double kSinS[7] = {-0x1.5555555555555p-3, 0x1.1111111111111p-7, -0x1.a01a01a01a01ap-13,
                             0x1.71de3a556c734p-19, -0x1.ae64567f544e4p-26, 0x1.6124613a86d09p-33,
                             -0x1.ae7f3e733b81fp-41};
// Ck = nearest double to (-1)^k/(2k)!, k = 1..8.
constexpr double kCosC[8] = {-0x1.0000000000000p-1, 0x1.5555555555555p-5, -0x1.6c16c16c16c17p-10,
                             0x1.a01a01a01a01ap-16, -0x1.27e4fb7789f5cp-22, 0x1.1eed8eff8d898p-29,
                             -0x1.93974a8c07c9dp-37, 0x1.ae7f3e733b81fp-45};

// x in [0, pi/4]: x + x*(z*P(z)), Taylor to x^15.
[[gnu::always_inline]] inline double sin_poly(double x) {
  const double z = x * x;
  double p = kSinS[6];
#pragma GCC unroll 16
  for (int k = 5; k >= 0; k--) {
    const double zp = z * p;
    p = kSinS[k] + zp;
  }
  const double t = z * p;
  const double xt = x * t;
  return x + xt;
}

// x in [0, pi/4]: 1 + z*P(z), Taylor to x^16.
[[gnu::always_inline]] inline double cos_poly(double x) {
  const double z = x * x;
  double p = kCosC[7];
#pragma GCC unroll 16
  for (int k = 6; k >= 0; k--) {
    const double zp = z * p;
    p = kCosC[k] + zp;
  }
  const double t = z * p;
  return 1.0 + t;
}

// portable_log's core for m in [sqrt(2)/2, sqrt(2)] and exponent de (docs/init.md 5.1 from
// f = m - 1 on): shared by the scalar portable_log and the batched normal draw.
[[gnu::always_inline]] inline double log_of_reduced(double m, double de) {
  const double f = m - 1.0;  // exact (Sterbenz)
  const double two_f = 2.0 + f;
  const double s = f / two_f;
  const double z = s * s;
  double p = kLogL[9];
#pragma GCC unroll 16
  for (int k = 8; k >= 0; k--) {
    const double zp = z * p;
    p = kLogL[k] + zp;
  }
  const double r = z * p;
  const double half_f = 0.5 * f;
  const double hfsq = half_f * f;
  const double t1 = hfsq + r;
  const double t2 = s * t1;
  const double t3 = de * kLn2Lo;
  const double t4 = t2 + t3;
  const double t5 = hfsq - t4;
  const double t6 = t5 - f;
  const double t7 = de * kLn2Hi;
  return t7 - t6;
}

inline PhiloxCounter block(PhiloxKey key, uint64_t index, uint32_t attempt) {
  return philox4x32_10({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), attempt, 0u},
                       key);
}

// Box-Muller, cosine branch: one standard normal per block (docs/init.md section 6).
inline double normal_z(PhiloxKey key, uint64_t index, uint32_t attempt) {
  const PhiloxCounter x = block(key, index, attempt);
  const double ua = uniform01_from_bits(x[0], x[1]);
  const double ub = uniform01_from_bits(x[2], x[3]);
  const double u1 = 1.0 - ua;  // (0, 1]
  const double l = portable_log(u1);
  const double t = -2.0 * l;
  const double r = std::sqrt(t);
  const double c = portable_cos_2pi(ub);
  return r * c;
}

// value(K, S, i) for a spec already validated.
inline double value_unchecked(const InitSpec& spec, PhiloxKey key, uint64_t index) {
  switch (spec.kind) {
    case InitKind::kZeros:
      return 0.0;
    case InitKind::kOnes:
      return 1.0;
    case InitKind::kUniform: {
      const PhiloxCounter x = block(key, index, 0);
      const double u = uniform01_from_bits(x[0], x[1]);
      const double w = spec.hi - spec.lo;
      const double wu = w * u;
      return spec.lo + wu;
    }
    case InitKind::kNormal: {
      const double z = normal_z(key, index, 0);
      const double sz = spec.std * z;
      return spec.mean + sz;
    }
    case InitKind::kTruncNormal: {
      for (uint32_t attempt = 0; attempt < kTruncNormalMaxAttempts; attempt++) {
        const double z = normal_z(key, index, attempt);
        if (spec.a <= z && z <= spec.b) {
          const double sz = spec.std * z;
          return spec.mean + sz;
        }
      }
      // Deterministic fallback: a uniform point of [a, b] from the block with attempt = cap.
      const PhiloxCounter x = block(key, index, kTruncNormalMaxAttempts);
      const double u = uniform01_from_bits(x[0], x[1]);
      const double w = spec.b - spec.a;
      const double wu = w * u;
      const double z = spec.a + wu;
      const double sz = spec.std * z;
      return spec.mean + sz;
    }
  }
  return std::numeric_limits<double>::quiet_NaN();  // unreachable
}

const char* kind_name(InitKind k) {
  switch (k) {
    case InitKind::kZeros: return "zeros";
    case InitKind::kOnes: return "ones";
    case InitKind::kUniform: return "uniform";
    case InitKind::kNormal: return "normal";
    case InitKind::kTruncNormal: return "trunc_normal";
  }
  return "?";
}

double json_number(const nlohmann::json& j, const char* key, const std::string& fn) {
  auto it = j.find(key);
  if (it == j.end()) throw ConfigError("init spec \"" + fn + "\": missing key \"" + key + "\"");
  if (!it->is_number())
    throw ConfigError("init spec \"" + fn + "\": key \"" + key + "\" must be a number, got " + it->dump());
  return it->get<double>();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// InitSpec

InitSpec InitSpec::zeros() { return InitSpec{}; }

InitSpec InitSpec::ones() {
  InitSpec s;
  s.kind = InitKind::kOnes;
  return s;
}

InitSpec InitSpec::uniform(double lo, double hi) {
  InitSpec s;
  s.kind = InitKind::kUniform;
  s.lo = lo;
  s.hi = hi;
  return s;
}

InitSpec InitSpec::normal(double mean, double std) {
  InitSpec s;
  s.kind = InitKind::kNormal;
  s.mean = mean;
  s.std = std;
  return s;
}

InitSpec InitSpec::trunc_normal(double mean, double std, double a, double b) {
  InitSpec s;
  s.kind = InitKind::kTruncNormal;
  s.mean = mean;
  s.std = std;
  s.a = a;
  s.b = b;
  return s;
}

nlohmann::json InitSpec::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  j["fn"] = kind_name(kind);
  switch (kind) {
    case InitKind::kZeros:
    case InitKind::kOnes:
      break;
    case InitKind::kUniform:
      j["lo"] = lo;
      j["hi"] = hi;
      break;
    case InitKind::kNormal:
      j["mean"] = mean;
      j["std"] = std;
      break;
    case InitKind::kTruncNormal:
      j["mean"] = mean;
      j["std"] = std;
      j["a"] = a;
      j["b"] = b;
      break;
  }
  return j;
}

InitSpec InitSpec::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw ConfigError("init spec: expected a JSON object, got " + j.dump());
  auto fit = j.find("fn");
  if (fit == j.end() || !fit->is_string()) throw ConfigError("init spec: missing string key \"fn\" in " + j.dump());
  const std::string fn = fit->get<std::string>();
  InitSpec s;
  size_t nkeys = 1;
  if (fn == "zeros") {
    s = zeros();
  } else if (fn == "ones") {
    s = ones();
  } else if (fn == "uniform") {
    s = uniform(json_number(j, "lo", fn), json_number(j, "hi", fn));
    nkeys = 3;
  } else if (fn == "normal") {
    s = normal(json_number(j, "mean", fn), json_number(j, "std", fn));
    nkeys = 3;
  } else if (fn == "trunc_normal") {
    s = trunc_normal(json_number(j, "mean", fn), json_number(j, "std", fn), json_number(j, "a", fn),
                     json_number(j, "b", fn));
    nkeys = 5;
  } else {
    throw ConfigError("init spec: unknown fn \"" + fn +
                      "\" (expected zeros, ones, uniform, normal or trunc_normal)");
  }
  if (j.size() != nkeys) throw ConfigError("init spec \"" + fn + "\": unexpected keys in " + j.dump());
  s.validate();
  return s;
}

void InitSpec::validate() const {
  const std::string ctx = std::string("init spec \"") + kind_name(kind) + "\": ";
  auto finite = [&](double v, const char* name) {
    if (!std::isfinite(v)) throw ConfigError(ctx + name + " must be finite, got " + std::to_string(v));
  };
  switch (kind) {
    case InitKind::kZeros:
    case InitKind::kOnes:
      return;
    case InitKind::kUniform:
      finite(lo, "lo");
      finite(hi, "hi");
      if (!(lo <= hi)) throw ConfigError(ctx + "need lo <= hi, got lo=" + std::to_string(lo) + " hi=" + std::to_string(hi));
      if (!std::isfinite(hi - lo)) throw ConfigError(ctx + "hi - lo overflows");
      return;
    case InitKind::kTruncNormal:
      finite(a, "a");
      finite(b, "b");
      if (!(a < b)) throw ConfigError(ctx + "need a < b, got a=" + std::to_string(a) + " b=" + std::to_string(b));
      if (!std::isfinite(b - a)) throw ConfigError(ctx + "b - a overflows");
      [[fallthrough]];
    case InitKind::kNormal:
      finite(mean, "mean");
      finite(std, "std");
      if (!(std >= 0.0)) throw ConfigError(ctx + "std must be >= 0, got " + std::to_string(std));
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Transforms

double uniform01_from_bits(uint32_t hi, uint32_t lo) {
  const uint64_t a = hi >> 5;  // 27 bits
  const uint64_t b = lo >> 6;  // 26 bits
  return static_cast<double>((a << 26) | b) * 0x1p-53;
}

double portable_log(double x) {
  if (std::isnan(x) || x < 0.0) return std::numeric_limits<double>::quiet_NaN();
  if (x == 0.0) return -std::numeric_limits<double>::infinity();
  if (x == std::numeric_limits<double>::infinity()) return x;

  uint64_t bits = std::bit_cast<uint64_t>(x);
  int64_t e = 0;
  if ((bits >> 52) == 0) {  // subnormal: scale into the normal range (exact)
    x = x * 0x1p54;
    bits = std::bit_cast<uint64_t>(x);
    e = -54;
  }
  e += static_cast<int64_t>(bits >> 52) - 1023;
  double m = std::bit_cast<double>((bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);  // [1, 2)
  if (m > kSqrt2) {
    m = m * 0.5;
    e += 1;
  }
  return log_of_reduced(m, static_cast<double>(e));
}

double portable_cos_2pi(double u) {
  if (!(u >= 0.0 && u < 1.0)) return std::numeric_limits<double>::quiet_NaN();
  if (u >= 0.5) u = 1.0 - u;  // [0, 0.5], exact
  bool neg = false;
  if (u > 0.25) {  // cos(2pi(1/2 - u)) = -cos(2pi u)
    u = 0.5 - u;    // exact
    neg = true;
  }
  double r;
  if (u > 0.125) {  // cos(2pi u) = sin(2pi(1/4 - u))
    const double v = 0.25 - u;  // exact
    const double x = v * kTwoPi;
    r = sin_poly(x);
  } else {
    const double x = u * kTwoPi;
    r = cos_poly(x);
  }
  return neg ? -r : r;
}

double init_value(const InitSpec& spec, PhiloxKey key, uint64_t index) {
  spec.validate();
  return value_unchecked(spec, key, index);
}

// normal(mean, std) for elements [begin, begin + n), n <= kBatch: value_unchecked's kNormal path
// (Philox block, Box-Muller with portable_log and portable_cos_2pi, mean + std * z), the same IEEE
// operations in the same order for each element, laid out stage by stage over the batch with the
// branches as selects (both arms of portable_cos_2pi's octant test computed, one kept) so that the
// compiler can vectorise: the same bits as the scalar path (tests/core/test_init.cpp checks).
// Inputs here are never special: u1 = 1 - ua is in [2^-53, 1] (normal, not 0, not NaN) and ub in
// [0, 1), so portable_log's and portable_cos_2pi's special-case branches are not taken.
constexpr int kBatch = 16;

// CMake compiles this file with -fno-math-errno -fno-trapping-math, which lets GCC vectorise the
// loop below (a square root with no errno branch, selects instead of branches); neither flag
// changes the value of any IEEE operation (no reassociation, no contraction: -ffp-contract=off).
template <typename T>
[[gnu::always_inline]] inline void normal_batch(T* out, uint64_t begin, int n, double mean, double sd, PhiloxKey key) {
  uint32_t c0[kBatch], c1[kBatch], c2[kBatch], c3[kBatch];
  for (int j = 0; j < kBatch; j++) {
    const uint64_t index = begin + static_cast<uint64_t>(j);
    c0[j] = static_cast<uint32_t>(index);
    c1[j] = static_cast<uint32_t>(index >> 32);
    c2[j] = 0;  // attempt
    c3[j] = 0;
  }
  uint32_t k0 = key.k0, k1 = key.k1;
  for (int r = 0; r < kPhiloxRounds; r++) {
    if (r > 0) k0 += kPhiloxW0, k1 += kPhiloxW1;
#pragma omp simd
    for (int j = 0; j < kBatch; j++) {
      const uint64_t p0 = uint64_t{kPhiloxM0} * c0[j];
      const uint64_t p1 = uint64_t{kPhiloxM1} * c2[j];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[j] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[j] ^ k1;
      c1[j] = static_cast<uint32_t>(p1);
      c3[j] = static_cast<uint32_t>(p0);
      c0[j] = n0;
      c2[j] = n2;
    }
  }
  double z[kBatch];
#pragma omp simd
  for (int j = 0; j < kBatch; j++) {
    // uniform01_from_bits: (a·2^26 + b)·2^-53 with a, b below 2^27, converted as 32-bit integers
    // (exact, and vectorisable); the sum is exact (below 2^53), so these are its bits.
    const double ua = (static_cast<double>(static_cast<int32_t>(c0[j] >> 5)) * 0x1p26 +
                       static_cast<double>(static_cast<int32_t>(c1[j] >> 6))) * 0x1p-53;
    double u = (static_cast<double>(static_cast<int32_t>(c2[j] >> 5)) * 0x1p26 +
                static_cast<double>(static_cast<int32_t>(c3[j] >> 6))) * 0x1p-53;
    // portable_log(1 - ua)
    const double x = 1.0 - ua;
    const uint64_t bits = std::bit_cast<uint64_t>(x);
    int32_t e = static_cast<int32_t>(bits >> 52) - 1023;
    double m = std::bit_cast<double>((bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);
    // Both arms computed, one selected (a select of values, not a branch).
    const bool big = m > kSqrt2;
    const double half_m = m * 0.5;
    m = big ? half_m : m;
    e = big ? e + 1 : e;
    const double l = log_of_reduced(m, static_cast<double>(e));
    // portable_cos_2pi(ub)
    const double one_minus_u = 1.0 - u;
    u = u >= 0.5 ? one_minus_u : u;
    const bool neg = u > 0.25;
    const double half_minus_u = 0.5 - u;
    u = neg ? half_minus_u : u;
    const bool octant = u > 0.125;
    const double xs = (0.25 - u) * kTwoPi, xc = u * kTwoPi;
    const double rs = sin_poly(xs), rc = cos_poly(xc);
    const double rr = octant ? rs : rc;
    const double minus_rr = -rr;
    const double c = neg ? minus_rr : rr;
    const double t = -2.0 * l;
    const double rad = std::sqrt(t);
    z[j] = rad * c;
  }
  for (int j = 0; j < n; j++) {
    const double sz = sd * z[j];
    out[j] = static_cast<T>(mean + sz);
  }
}

// normal_batch over [begin, begin + count) (any count): the loop the vector units run. On x86-64
// with GCC it is compiled twice, for x86-64-v4 (AVX-512) and for the build's baseline, and the
// loader picks the one the CPU runs (ifunc): the same IEEE operations in the same order either
// way (no contraction, no reassociation), so the same bits; the v4 clone draws about 1.4x faster
// on an AMD EPYC (Zen 4). Other hosts and compilers get the one baseline version.
namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SSIAT_NORMAL_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define SSIAT_NORMAL_CLONES
#endif

template <typename T>
[[gnu::always_inline]] inline void normal_range(T* out, uint64_t begin, int64_t count, double mean, double sd,
                                                PhiloxKey key) {
  for (int64_t j = 0; j < count; j += kBatch)
    normal_batch(out + j, begin + static_cast<uint64_t>(j), static_cast<int>(std::min<int64_t>(kBatch, count - j)),
                 mean, sd, key);
}
// Cloned under distinct names, with normal_range_of choosing by type: as two overloads of one name
// this GCC 12 build ran the baseline clone (gpu-1b init-root 8.6 s instead of 6.3 s).
SSIAT_NORMAL_CLONES void normal_range_f32(float* out, uint64_t begin, int64_t count, double mean, double sd,
                                          PhiloxKey key) {
  normal_range(out, begin, count, mean, sd, key);
}
SSIAT_NORMAL_CLONES void normal_range_f64(double* out, uint64_t begin, int64_t count, double mean, double sd,
                                          PhiloxKey key) {
  normal_range(out, begin, count, mean, sd, key);
}
void normal_range_of(float* out, uint64_t begin, int64_t count, double mean, double sd, PhiloxKey key) {
  normal_range_f32(out, begin, count, mean, sd, key);
}
void normal_range_of(double* out, uint64_t begin, int64_t count, double mean, double sd, PhiloxKey key) {
  normal_range_f64(out, begin, count, mean, sd, key);
}

void check_fill_range(const void* out, uint64_t begin, int64_t count, const InitSpec& spec) {
  SSIAT_CHECK(count >= 0) << "init_fill: negative count " << count;
  if (count == 0) return;
  SSIAT_CHECK(out != nullptr) << "init_fill: null output for " << count << " elements";
  SSIAT_CHECK(begin <= UINT64_MAX - static_cast<uint64_t>(count - 1))
      << "init_fill: index range [" << begin << ", +" << count << ") overflows u64";
  spec.validate();
}

}  // namespace

template <typename T>
void init_fill(T* out, uint64_t begin, int64_t count, const InitSpec& spec, PhiloxKey key) {
  check_fill_range(out, begin, count, spec);
  if (count == 0) return;
  // Each element is a pure function of (key, spec, index): any schedule gives the same bytes.
  // Pieces of kPiece elements (a multiple of kBatch), shared among the threads.
  constexpr int64_t kPiece = 1 << 12;
  [[maybe_unused]] constexpr int64_t kParallelMin = 1 << 14;  // (unused in a build without OpenMP)
  const int64_t pieces = (count + kPiece - 1) / kPiece;
#pragma omp parallel for schedule(static) if (count >= kParallelMin)
  for (int64_t p = 0; p < pieces; p++) {
    const int64_t j = p * kPiece;
    init_fill_serial(out + j, begin + static_cast<uint64_t>(j), std::min(kPiece, count - j), spec, key);
  }
}

template <typename T>
void init_fill_serial(T* out, uint64_t begin, int64_t count, const InitSpec& spec, PhiloxKey key) {
  check_fill_range(out, begin, count, spec);
  if (count == 0) return;
  if (spec.kind == InitKind::kNormal) {  // the common case, batched for the vector units
    normal_range_of(out, begin, count, spec.mean, spec.std, key);
    return;
  }
  for (int64_t j = 0; j < count; j++) out[j] = static_cast<T>(value_unchecked(spec, key, begin + static_cast<uint64_t>(j)));
}

template void init_fill<float>(float*, uint64_t, int64_t, const InitSpec&, PhiloxKey);
template void init_fill<double>(double*, uint64_t, int64_t, const InitSpec&, PhiloxKey);
template void init_fill_serial<float>(float*, uint64_t, int64_t, const InitSpec&, PhiloxKey);
template void init_fill_serial<double>(double*, uint64_t, int64_t, const InitSpec&, PhiloxKey);

}  // namespace ssiat
