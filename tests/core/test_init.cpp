// Init transforms (docs/init.md): portable log/cos against libm and long double, the exact bits
// against the independent pure-Python reference tests/core/init_reference.py, shard and thread
// independence, and statistical sanity of the distributions.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/init.h"
#include "core/seed_registry.h"

namespace ssiat {
namespace {

// Distance in units in the last place between two finite doubles (0 when equal, ±0 equal).
uint64_t ulp_distance(double a, double b) {
  auto ordered = [](double x) {
    int64_t i = std::bit_cast<int64_t>(x);
    return i < 0 ? std::numeric_limits<int64_t>::min() - i : i;
  };
  const int64_t ia = ordered(a), ib = ordered(b);
  return ia > ib ? static_cast<uint64_t>(ia) - static_cast<uint64_t>(ib)
                 : static_cast<uint64_t>(ib) - static_cast<uint64_t>(ia);
}

// A stream of test inputs (Philox itself, so the test draws no other random numbers).
struct Bits {
  PhiloxKey key{0x5eed0001u, 0x7e57u};
  uint64_t n = 0;
  uint64_t next64() {
    const PhiloxCounter c = philox4x32_10({static_cast<uint32_t>(n), static_cast<uint32_t>(n >> 32), 0, 0}, key);
    n++;
    return uint64_t{c[0]} << 32 | c[1];
  }
};

// ---------------------------------------------------------------------------------------------
// uniform01_from_bits: values that follow from the definition (a = hi>>5, b = lo>>6).

TEST(Init, UniformFromBitsDefinition) {
  EXPECT_EQ(uniform01_from_bits(0, 0), 0.0);
  EXPECT_EQ(uniform01_from_bits(0xffffffffu, 0xffffffffu), 1.0 - 0x1p-53);
  EXPECT_EQ(uniform01_from_bits(0x80000000u, 0), 0.5);
  EXPECT_EQ(uniform01_from_bits(0x20u, 0), 0x1p-27);   // a = 1
  EXPECT_EQ(uniform01_from_bits(0x1fu, 0x3fu), 0.0);   // low bits ignored
  EXPECT_EQ(uniform01_from_bits(0, 0x40u), 0x1p-53);   // b = 1
  EXPECT_EQ(uniform01_from_bits(0, 0xffffffffu), (0x1p26 - 1.0) * 0x1p-53);
}

// ---------------------------------------------------------------------------------------------
// portable_log against glibc log (the referee) over the whole positive range.

TEST(Init, PortableLogWithinTwoUlpOfLibm) {
  Bits bits;
  uint64_t max_ulp = 0;
  double worst = 0;
  int64_t checked = 0;
  auto check = [&](double x) {
    const double got = portable_log(x), want = std::log(x);
    const uint64_t d = ulp_distance(got, want);
    if (d > max_ulp) {
      max_ulp = d;
      worst = x;
    }
    checked++;
  };
  for (int i = 0; i < 200000; i++) {  // arbitrary positive finite doubles, normal and subnormal
    uint64_t b = bits.next64() & 0x7fffffffffffffffull;
    if ((b >> 52) == 0x7ff) continue;
    if (b == 0) continue;
    check(std::bit_cast<double>(b));
  }
  for (int i = 0; i < 200000; i++) {  // the Box-Muller domain: k * 2^-53, k in [1, 2^53]
    const uint64_t k = (bits.next64() >> 11) + 1;
    check(static_cast<double>(k) * 0x1p-53);
  }
  for (int i = 0; i < 100000; i++) {  // near 1, where log is tiny
    const double d = static_cast<double>(static_cast<int64_t>(bits.next64() >> 11) - (int64_t{1} << 52)) * 0x1p-62;
    check(1.0 + d);
  }
  for (int i = 0; i < 20000; i++) {  // subnormals
    const uint64_t b = (bits.next64() & 0x000fffffffffffffull) | 1;
    check(std::bit_cast<double>(b));
  }
  for (int e = -1074; e <= 1023; e++) check(std::ldexp(1.0, e));
  double x = std::sqrt(2.0);  // around the mantissa split at sqrt(2)
  for (int i = 0; i < 64; i++) x = std::nextafter(x, 0.0);
  for (int i = 0; i < 128; i++, x = std::nextafter(x, 2.0)) {
    check(x);
    check(x * 0x1p-30);
    check(x * 0x1p+30);
  }
  check(std::numeric_limits<double>::max());
  check(std::numeric_limits<double>::denorm_min());
  RecordProperty("portable_log_max_ulp", std::to_string(max_ulp));
  EXPECT_LE(max_ulp, 2u) << "worst input " << std::hexfloat << worst << " over " << checked << " inputs";
  std::printf("portable_log: max %llu ulp over %lld inputs\n", static_cast<unsigned long long>(max_ulp),
              static_cast<long long>(checked));
}

TEST(Init, PortableLogSpecialValues) {
  EXPECT_EQ(std::bit_cast<uint64_t>(portable_log(1.0)), std::bit_cast<uint64_t>(0.0));
  EXPECT_EQ(portable_log(0.0), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(portable_log(-0.0), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(portable_log(std::numeric_limits<double>::infinity()), std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(portable_log(-1.0)));
  EXPECT_TRUE(std::isnan(portable_log(std::numeric_limits<double>::quiet_NaN())));
}

// ---------------------------------------------------------------------------------------------
// portable_cos_2pi against a long-double referee. Where |cos| >= 1/16 the referee is
// cosl(2*pi_L*u) (its argument error, ~2^-62 absolute, is far below a double ulp of the
// result); near the zeros it uses the identities cos(2pi u) = sin(2pi(1/4 - u)) and
// cos(2pi u) = sin(2pi(u - 3/4)), whose arguments are exact in long double.

long double cos_2pi_referee(double u) {
  const long double two_pi = 2.0L * std::acos(-1.0L);
  const long double U = u;
  const long double c = std::cos(two_pi * U);
  if (std::fabs(c) >= 0.0625L) return c;
  if (u < 0.5) return std::sin(two_pi * (0.25L - U));
  return std::sin(two_pi * (U - 0.75L));
}

TEST(Init, PortableCos2PiWithinFourUlpOfLongDouble) {
  Bits bits;
  bits.key.k1 = 0xc05u;
  uint64_t max_ulp = 0;
  double worst = 0, max_abs_vs_libm = 0;
  int64_t checked = 0;
  auto check = [&](double u) {
    const double got = portable_cos_2pi(u);
    const double want = static_cast<double>(cos_2pi_referee(u));
    const uint64_t d = ulp_distance(got, want);
    if (d > max_ulp) {
      max_ulp = d;
      worst = u;
    }
    // Plain libm as a second, coarse referee (absolute error; catches any branch or sign slip).
    max_abs_vs_libm = std::max(max_abs_vs_libm, std::fabs(got - std::cos(2.0 * M_PI * u)));
    checked++;
  };
  for (int i = 0; i < 200000; i++) check(static_cast<double>(bits.next64() >> 11) * 0x1p-53);  // k*2^-53
  for (int i = 0; i < 50000; i++) {  // arbitrary doubles in [0, 1), tiny ones included
    const int e = 1 + static_cast<int>(bits.next64() % 1060);
    const double m = 1.0 + static_cast<double>(bits.next64() >> 12) * 0x1p-52;  // [1, 2)
    check(std::ldexp(m, -e));
  }
  for (int q = 0; q <= 8; q++) {  // around every octant boundary q/8
    double u = q / 8.0;
    for (int i = 0; i < 200 && u > 0; i++) u = std::nextafter(u, 0.0);
    for (int i = 0; i < 400 && u < 1.0; i++, u = std::nextafter(u, 1.0)) check(u);
    const double base = q / 8.0;
    for (int s = 10; s <= 60; s++) {
      const double below = base - std::ldexp(1.0, -s), above = base + std::ldexp(1.0, -s);
      if (below >= 0 && below < 1.0) check(below);
      if (above < 1.0) check(above);
    }
  }
  RecordProperty("portable_cos_2pi_max_ulp", std::to_string(max_ulp));
  EXPECT_LE(max_ulp, 4u) << "worst input " << std::hexfloat << worst << " over " << checked << " inputs";
  EXPECT_LE(max_abs_vs_libm, 2e-15);
  std::printf("portable_cos_2pi: max %llu ulp over %lld inputs; max |diff| vs libm cos(2*pi*u) %.3g\n",
              static_cast<unsigned long long>(max_ulp), static_cast<long long>(checked), max_abs_vs_libm);
}

TEST(Init, PortableCos2PiSpecialValues) {
  EXPECT_EQ(portable_cos_2pi(0.0), 1.0);
  EXPECT_EQ(portable_cos_2pi(0.5), -1.0);
  EXPECT_EQ(portable_cos_2pi(0.25), 0.0);
  EXPECT_EQ(portable_cos_2pi(0.75), 0.0);
  EXPECT_TRUE(std::isnan(portable_cos_2pi(1.0)));
  EXPECT_TRUE(std::isnan(portable_cos_2pi(-0x1p-60)));
  EXPECT_TRUE(std::isnan(portable_cos_2pi(std::numeric_limits<double>::quiet_NaN())));
}

// ---------------------------------------------------------------------------------------------
// Counter layout and transforms, checked with libm as an outside referee.

TEST(Init, CounterLayoutAndBoxMullerMatchLibm) {
  const PhiloxKey key{0x01234567u, 0x89abcdefu};
  for (uint64_t i : {uint64_t{0}, uint64_t{1}, uint64_t{0xffffffffu}, uint64_t{0x100000000ull},
                     uint64_t{0x123456789abcull}, ~uint64_t{0}}) {
    const PhiloxCounter x =
        philox4x32_10({static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), 0u, 0u}, key);
    const double ua = uniform01_from_bits(x[0], x[1]), ub = uniform01_from_bits(x[2], x[3]);
    EXPECT_EQ(init_value(InitSpec::uniform(0.0, 1.0), key, i), ua) << "index " << i;
    EXPECT_EQ(init_value(InitSpec::uniform(-3.0, 5.0), key, i), -3.0 + 8.0 * ua) << "index " << i;
    const double z_libm = std::sqrt(-2.0 * std::log(1.0 - ua)) * std::cos(2.0 * M_PI * ub);
    const double z = init_value(InitSpec::normal(0.0, 1.0), key, i);
    EXPECT_NEAR(z, z_libm, 1e-13 * std::max(1.0, std::fabs(z_libm))) << "index " << i;
    EXPECT_EQ(init_value(InitSpec::normal(0.25, 3.0), key, i), 0.25 + 3.0 * z) << "index " << i;
  }
  EXPECT_EQ(init_value(InitSpec::zeros(), key, 5), 0.0);
  EXPECT_EQ(init_value(InitSpec::ones(), key, 5), 1.0);
}

// ---------------------------------------------------------------------------------------------
// Bit-exact agreement with the independent Python reference (written from docs/init.md).

struct RefCase {
  uint64_t seed;
  std::string name;
  InitSpec spec;
  uint64_t begin;
  int64_t count;
};

bool have_python3() { return std::system("command -v python3 >/dev/null 2>&1") == 0; }

std::string run_capture(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

TEST(Init, MatchesPythonReferenceBitForBit) {
  if (!have_python3()) GTEST_SKIP() << "python3 not on PATH: cannot run tests/core/init_reference.py";
  const std::string script = std::string(SSIAT_SOURCE_DIR) + "/tests/core/init_reference.py";
  const std::vector<RefCase> cases = {
      {1234, "init/model.layers.0.self_attn.q_proj.weight", InitSpec::trunc_normal(0.0, 0.02), 0, 300},
      {0xffffffffffffffffull, "init/model.embed_tokens.weight", InitSpec::normal(0.5, 1.5),
       (uint64_t{1} << 32) - 100, 200},  // crosses hi32(i) = 0 -> 1
      {7, "init/lm_head.weight", InitSpec::uniform(-0.1, 0.3), (uint64_t{1} << 40) + 5, 200},
      {42, "init/narrow", InitSpec::trunc_normal(1.0, 2.0, 1.5, 1.6), 1000, 60},  // rejections + fallback
      {9, "init/top", InitSpec::normal(0.0, 0.02), ~uint64_t{0} - 49, 50},  // up to i = 2^64 - 1
      {3, "init/model.norm.weight", InitSpec::ones(), 0, 4},
      {3, "init/bias", InitSpec::zeros(), 10, 4},
      {0, "init/model.layers.1.mlp.down_proj.weight", InitSpec::trunc_normal(-1.0, 0.5, -3.0, 0.5), 77, 100},
  };
  for (const RefCase& c : cases) {
    const std::string cmd = "python3 '" + script + "' --seed " + std::to_string(c.seed) + " --name '" + c.name +
                            "' --spec '" + c.spec.to_json().dump() + "' --begin " + std::to_string(c.begin) +
                            " --count " + std::to_string(c.count);
    int status = 0;
    const std::string out = run_capture(cmd, &status);
    ASSERT_EQ(status, 0) << "reference failed: " << cmd;
    const PhiloxKey key = SeedRegistry::derive_key(c.seed, c.name);
    std::vector<float> f(c.count);
    init_fill(f.data(), c.begin, c.count, c.spec, key);
    std::vector<double> d(c.count);
    init_fill(d.data(), c.begin, c.count, c.spec, key);

    std::istringstream in(out);
    std::string word, key_str;
    in >> word >> key_str;
    ASSERT_EQ(word, "key") << cmd;
    EXPECT_EQ(key_str, key_hex(key)) << "KDF differs for seed " << c.seed << " name " << c.name;
    int64_t lines = 0;
    uint64_t idx;
    std::string dbits, fbits;
    while (in >> idx >> dbits >> fbits) {
      ASSERT_LT(lines, c.count);
      const uint64_t j = static_cast<uint64_t>(lines);
      ASSERT_EQ(idx, c.begin + j);
      char mine_d[17], mine_f[9];
      std::snprintf(mine_d, sizeof(mine_d), "%016llx",
                    static_cast<unsigned long long>(std::bit_cast<uint64_t>(d[j])));
      std::snprintf(mine_f, sizeof(mine_f), "%08x", std::bit_cast<uint32_t>(f[j]));
      ASSERT_EQ(std::string(mine_d), dbits) << c.name << " " << c.spec.to_json().dump() << " element " << idx;
      ASSERT_EQ(std::string(mine_f), fbits) << c.name << " " << c.spec.to_json().dump() << " element " << idx;
      ASSERT_EQ(std::bit_cast<uint64_t>(init_value(c.spec, key, idx)), std::bit_cast<uint64_t>(d[j]));
      lines++;
    }
    EXPECT_EQ(lines, c.count) << cmd;
  }
}

// ---------------------------------------------------------------------------------------------
// Layout independence: a tensor filled whole equals the concatenation of its shards.

// init_fill's batched normal path (16 elements at a time, vectorised) gives, element by
// element, the bits of the scalar definition init_value(): over partial batches, begin offsets
// that are not multiples of 16, indices across 2^32 (the counter's high word), both dtypes, and
// non-trivial mean and std.
TEST(Init, BatchedNormalIsTheScalarDefinitionBitForBit) {
  const InitSpec spec = InitSpec::normal(0.25, 0.0173);
  const PhiloxKey key = SeedRegistry::derive_key(99, "init/batched");
  for (uint64_t begin : {uint64_t{0}, uint64_t{5}, (uint64_t{1} << 32) - 37}) {
    for (int64_t count : {int64_t{1}, int64_t{15}, int64_t{17}, int64_t{40000}}) {
      std::vector<float> f(static_cast<size_t>(count));
      std::vector<double> d(static_cast<size_t>(count));
      init_fill(f.data(), begin, count, spec, key);
      init_fill(d.data(), begin, count, spec, key);
      for (int64_t j = 0; j < count; j++) {
        const double want = init_value(spec, key, begin + static_cast<uint64_t>(j));
        ASSERT_EQ(std::bit_cast<uint64_t>(d[j]), std::bit_cast<uint64_t>(want)) << "begin " << begin << " j " << j;
        ASSERT_EQ(std::bit_cast<uint32_t>(f[j]), std::bit_cast<uint32_t>(static_cast<float>(want)))
            << "begin " << begin << " j " << j;
      }
    }
  }
}

TEST(Init, ShardsConcatenateToWholeTensor) {
  const PhiloxKey key = SeedRegistry::derive_key(99, "init/model.layers.3.mlp.up_proj.weight");
  const int64_t n = 1000 * 37;  // (1000, 37)
  for (const InitSpec& spec : {InitSpec::trunc_normal(0.0, 0.02), InitSpec::normal(0.1, 1.0),
                               InitSpec::uniform(-1.0, 1.0)}) {
    std::vector<float> whole(n), two(n), three(n);
    init_fill(whole.data(), 0, n, spec, key);
    init_fill(two.data(), 0, n / 2, spec, key);
    init_fill(two.data() + n / 2, n / 2, n - n / 2, spec, key);
    const int64_t cut1 = 1, cut2 = 20011;  // uneven shards [0,1) [1,20011) [20011,n)
    init_fill(three.data(), 0, cut1, spec, key);
    init_fill(three.data() + cut1, cut1, cut2 - cut1, spec, key);
    init_fill(three.data() + cut2, cut2, n - cut2, spec, key);
    EXPECT_EQ(std::memcmp(whole.data(), two.data(), n * sizeof(float)), 0) << spec.to_json().dump();
    EXPECT_EQ(std::memcmp(whole.data(), three.data(), n * sizeof(float)), 0) << spec.to_json().dump();
    // The float tensor is the once-rounded double tensor.
    std::vector<double> wd(n);
    init_fill(wd.data(), 0, n, spec, key);
    for (int64_t j = 0; j < n; j++) ASSERT_EQ(whole[j], static_cast<float>(wd[j])) << j;
  }
}

TEST(Init, SameBitsWithOneAndTwoThreads) {
  const PhiloxKey key = SeedRegistry::derive_key(5, "init/model.embed_tokens.weight");
  const int64_t n = 100000;
  const InitSpec spec = InitSpec::trunc_normal(0.0, 0.02);
  const int saved = omp_get_max_threads();
  std::vector<float> one(n), two(n);
  omp_set_num_threads(1);
  init_fill(one.data(), 17, n, spec, key);
  omp_set_num_threads(2);
  init_fill(two.data(), 17, n, spec, key);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(one.data(), two.data(), n * sizeof(float)), 0);
}

TEST(Init, DifferentKeysGiveDifferentTensors) {
  const int64_t n = 64;
  std::vector<float> a(n), b(n), c(n);
  const InitSpec spec = InitSpec::normal(0.0, 1.0);
  init_fill(a.data(), 0, n, spec, SeedRegistry::derive_key(1, "init/a"));
  init_fill(b.data(), 0, n, spec, SeedRegistry::derive_key(1, "init/b"));
  init_fill(c.data(), 0, n, spec, SeedRegistry::derive_key(2, "init/a"));
  int same_ab = 0, same_ac = 0;
  for (int64_t j = 0; j < n; j++) {
    same_ab += a[j] == b[j];
    same_ac += a[j] == c[j];
  }
  EXPECT_EQ(same_ab, 0);
  EXPECT_EQ(same_ac, 0);
}

// ---------------------------------------------------------------------------------------------
// Statistics (bounds are >= 4.5 standard errors wide for n = 1e5).

TEST(Init, NormalMomentsAndQuantiles) {
  const int64_t n = 100000;
  std::vector<double> z(n);
  init_fill(z.data(), 0, n, InitSpec::normal(0.0, 1.0), SeedRegistry::derive_key(11, "init/stats"));
  double sum = 0, sum2 = 0, sum4 = 0;
  int64_t in1 = 0, in2 = 0, below = 0;
  for (double v : z) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sum2 += v * v;
    sum4 += v * v * v * v;
    in1 += std::fabs(v) < 1.0;
    in2 += std::fabs(v) < 2.0;
    below += v < -1.5;
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.015);
  EXPECT_NEAR(std::sqrt(var), 1.0, 0.01);
  EXPECT_NEAR(sum4 / n, 3.0, 0.16);  // E[z^4] of N(0,1); s.e. sqrt(96/n) ~ 0.031
  EXPECT_NEAR(static_cast<double>(in1) / n, std::erf(1.0 / std::sqrt(2.0)), 0.0075);
  EXPECT_NEAR(static_cast<double>(in2) / n, std::erf(2.0 / std::sqrt(2.0)), 0.0035);
  EXPECT_NEAR(static_cast<double>(below) / n, 0.5 * std::erfc(1.5 / std::sqrt(2.0)), 0.0035);
}

TEST(Init, TruncNormalWithinBoundsWithTheRightSpread) {
  const int64_t n = 100000;
  const double mean = 0.5, sd = 0.02;
  const InitSpec spec = InitSpec::trunc_normal(mean, sd, -2.0, 2.0);
  std::vector<float> x(n);
  init_fill(x.data(), 0, n, spec, SeedRegistry::derive_key(12, "init/trunc"));
  const float lo = static_cast<float>(mean + sd * -2.0), hi = static_cast<float>(mean + sd * 2.0);
  double sum = 0, sum2 = 0;
  for (float v : x) {
    ASSERT_GE(v, lo);
    ASSERT_LE(v, hi);
    const double z = (static_cast<double>(v) - mean) / sd;
    sum += z;
    sum2 += z * z;
  }
  // Var of N(0,1) truncated to [-2, 2]: 1 - 2*2*phi(2) / (Phi(2) - Phi(-2)).
  const double phi2 = std::exp(-2.0) / std::sqrt(2.0 * M_PI);
  const double want_var = 1.0 - 4.0 * phi2 / std::erf(2.0 / std::sqrt(2.0));
  const double m = sum / n;
  EXPECT_NEAR(m, 0.0, 0.015);
  EXPECT_NEAR(std::sqrt(sum2 / n - m * m), std::sqrt(want_var), 0.01);

  // A narrow, far-out interval: rejection mostly fails and the fallback must stay inside too.
  const InitSpec far = InitSpec::trunc_normal(0.0, 1.0, 3.0, 3.25);
  std::vector<double> y(2000);
  init_fill(y.data(), 0, 2000, far, SeedRegistry::derive_key(12, "init/far"));
  for (double v : y) {
    ASSERT_GE(v, 3.0);
    ASSERT_LE(v, 3.25);
  }
}

TEST(Init, UniformRangeAndMoments) {
  const int64_t n = 100000;
  std::vector<double> u(n);
  init_fill(u.data(), 0, n, InitSpec::uniform(-2.0, 6.0), SeedRegistry::derive_key(13, "init/uniform"));
  double sum = 0, sum2 = 0;
  for (double v : u) {
    ASSERT_GE(v, -2.0);
    ASSERT_LT(v, 6.0);
    sum += v;
    sum2 += v * v;
  }
  const double mean = sum / n;
  EXPECT_NEAR(mean, 2.0, 0.04);                              // s.e. 8/sqrt(12n) ~ 0.0073
  EXPECT_NEAR(sum2 / n - mean * mean, 64.0 / 12.0, 0.1);     // s.e. ~ 0.019
}

// ---------------------------------------------------------------------------------------------
// InitSpec JSON and validation.

TEST(Init, SpecJsonRoundTripAndValidation) {
  for (const InitSpec& s : {InitSpec::zeros(), InitSpec::ones(), InitSpec::uniform(-0.1, 0.25),
                            InitSpec::normal(0.0, 0.02), InitSpec::trunc_normal(0.0, 0.02, -3.0, 2.5)}) {
    const InitSpec r = InitSpec::from_json(nlohmann::json::parse(s.to_json().dump()));
    EXPECT_EQ(r.to_json(), s.to_json());
    EXPECT_EQ(init_value(r, {1, 2}, 12345), init_value(s, {1, 2}, 12345));
  }
  EXPECT_EQ(InitSpec::trunc_normal(0.0, 0.02).to_json(),
            nlohmann::json::parse(R"({"fn":"trunc_normal","mean":0,"std":0.02,"a":-2,"b":2})"));
  EXPECT_THROW(InitSpec::from_json(nlohmann::json::parse(R"({"fn":"gaussian"})")), ConfigError);
  EXPECT_THROW(InitSpec::from_json(nlohmann::json::parse(R"({"fn":"normal","mean":0})")), ConfigError);
  EXPECT_THROW(InitSpec::from_json(nlohmann::json::parse(R"({"fn":"normal","mean":0,"std":"x"})")), ConfigError);
  EXPECT_THROW(InitSpec::from_json(nlohmann::json::parse(R"({"fn":"ones","std":1})")), ConfigError);
  EXPECT_THROW(InitSpec::normal(0.0, -1.0).validate(), ConfigError);
  EXPECT_THROW(InitSpec::uniform(1.0, 0.0).validate(), ConfigError);
  EXPECT_THROW(InitSpec::trunc_normal(0.0, 1.0, 2.0, 2.0).validate(), ConfigError);
  EXPECT_THROW(InitSpec::trunc_normal(0.0, 1.0, -INFINITY, 2.0).validate(), ConfigError);
  float out[4];
  EXPECT_THROW(init_fill(out, 0, 4, InitSpec::normal(NAN, 1.0), PhiloxKey{}), ConfigError);
  EXPECT_THROW(init_fill(out, ~uint64_t{0} - 1, 4, InitSpec::zeros(), PhiloxKey{}), Error);
}

}  // namespace
}  // namespace ssiat
