// Parity of every CUDA op with its CPU twin (kernels/cpu, the oracle), table-driven in the manner
// of ggml's tests/test-backend-ops.cpp. Each row of the table names an op family, its shape, the
// operand precision and a tolerance; both backends get the same seeded random inputs, and
//   - every output satisfies ||gpu - cpu|| / ||cpu|| <= tolerance (relative L2 in double):
//     1e-5 with f32 operands, 1e-2 with bf16 operands (compared with the plain f32 CPU result),
//     0 where the op is a single IEEE operation or a cast and so must be exact;
//   - every output is poisoned with NaN (0xFF bytes) before each GPU run, except outputs the op
//     accumulates into (+=), which start from the same random values on both sides;
//   - each op runs twice on the GPU from identical inputs and gives identical bits (memcmp).
// Without the CUDA backend or a device every table case skips (GTEST_SKIP with the reason).
// One cross-entropy case has N*V > 2^31 (two 8.6 GB copies of the logits on the GPU; its CPU
// reference covers a few first and the last 64 rows); its name contains "Huge", so
// --gtest_filter=-*Huge* leaves it out on a small GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/backend.h"
#include "kernels/check.h"
#include "kernels/crossentropy.h"
#include "kernels/device.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "kernels/vocab_parallel.h"
#include "tests/cuda/cuda_test_util.h"

namespace {

namespace kc = ssiat::kernels::cuda;
namespace cpu = ssiat::kernels::cpu;
namespace tc = ssiat::testing::cuda;
using ssiat::kernels::AdamWParams;
using ssiat::kernels::bf16;

enum class Op {
  kMatmulForward, kMatmulBackward, kAttentionForward, kAttentionBackward, kRmsnormForward,
  kRmsnormResidualForward, kRmsnormBackward, kRopeForward, kRopeBackward, kSwigluForward, kSwigluBackward,
  kCrossentropyForward, kCrossentropyFused, kEmbeddingForward, kEmbeddingBackward, kAdamw, kAdd,
  kScaleInplace, kSum, kSumSquares, kCastToBf16,
};
// Operand precision. bf16: matmul weights; attention: the tensor-core kernels (*_bf16); adamw:
// also writes the bf16 copy.
enum class Prec { kF32, kBf16 };
enum class Variant {
  kPlain,
  kNullDinp,   // matmul_backward with dinp == nullptr
  kAliasOut,   // add with out == a
  kSpecials,   // cast_to_bf16 of zeros, infinities, subnormals, rounding ties, overflow to inf
  kNaNs,       // cast_to_bf16 of NaNs (quiet, signalling, both signs)
  kRowSubset,  // crossentropy with N*V > 2^31: CPU reference on a subset of rows
};

// Shape parameters; each op reads the ones its header names (flat ops: n = N).
struct Dims {
  int64_t N = 1, C = 1, OC = 1, F = 1, V = 1, B = 1, T = 1, NH = 1, NKV = 1, HS = 8;
};

struct Case {
  const char* name;
  Op op;
  Dims d;
  Prec prec;
  double tol;
  Variant variant = Variant::kPlain;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

constexpr double kTolF32 = 1e-5, kTolBf16 = 1e-2, kTolExact = 0.0;

using enum Op;
using enum Prec;
using enum Variant;

// The table: name (the gtest case name: op, variant, shape), op, shape, operand precision,
// tolerance on the relative L2 error, variant. Shapes are awkward on purpose: N = 1, C = 1, odd
// and prime sizes, T not a multiple of 16/32/64, HS 8/24/64/128, grouped heads (NH 6 over NKV
// 2 or 3), V = 1 and prime V, tokens repeated many times (V = 3) or all the same (V = 1).
// clang-format off
const std::vector<Case> kCases = {
  {"MatmulForward_N1_C1_OC1", kMatmulForward, {.N=1, .C=1, .OC=1}, kF32, kTolF32},
  {"MatmulForward_N7_C13_OC5", kMatmulForward, {.N=7, .C=13, .OC=5}, kF32, kTolF32},
  {"MatmulForward_N1_C768_OC2304", kMatmulForward, {.N=1, .C=768, .OC=2304}, kF32, kTolF32},
  {"MatmulForward_N127_C64_OC129", kMatmulForward, {.N=127, .C=64, .OC=129}, kF32, kTolF32},
  {"MatmulForward_N1000_C100_OC3", kMatmulForward, {.N=1000, .C=100, .OC=3}, kF32, kTolF32},
  {"MatmulForward_N64_C768_OC50257", kMatmulForward, {.N=64, .C=768, .OC=50257}, kF32, kTolF32},
  {"MatmulForward_Bf16_N1_C1_OC1", kMatmulForward, {.N=1, .C=1, .OC=1}, kBf16, kTolBf16},
  {"MatmulForward_Bf16_N7_C13_OC5", kMatmulForward, {.N=7, .C=13, .OC=5}, kBf16, kTolBf16},
  {"MatmulForward_Bf16_N127_C768_OC4099", kMatmulForward, {.N=127, .C=768, .OC=4099}, kBf16, kTolBf16},
  {"MatmulBackward_N1_C1_OC1", kMatmulBackward, {.N=1, .C=1, .OC=1}, kF32, kTolF32},
  {"MatmulBackward_N7_C13_OC5", kMatmulBackward, {.N=7, .C=13, .OC=5}, kF32, kTolF32},
  {"MatmulBackward_N129_C768_OC257", kMatmulBackward, {.N=129, .C=768, .OC=257}, kF32, kTolF32},
  {"MatmulBackward_N1000_C3_OC100", kMatmulBackward, {.N=1000, .C=3, .OC=100}, kF32, kTolF32},
  {"MatmulBackward_NullDinp_N33_C64_OC17", kMatmulBackward, {.N=33, .C=64, .OC=17}, kF32, kTolF32, kNullDinp},
  {"MatmulBackward_Bf16_N1_C1_OC1", kMatmulBackward, {.N=1, .C=1, .OC=1}, kBf16, kTolBf16},
  {"MatmulBackward_Bf16_N129_C768_OC257", kMatmulBackward, {.N=129, .C=768, .OC=257}, kBf16, kTolBf16},
  {"MatmulBackward_Bf16_NullDinp_N33_C64_OC17", kMatmulBackward, {.N=33, .C=64, .OC=17}, kBf16, kTolBf16, kNullDinp},

  {"AttentionForward_B1_T1_NH1_NKV1_HS8", kAttentionForward, {.B=1, .T=1, .NH=1, .NKV=1, .HS=8}, kF32, kTolF32},
  {"AttentionForward_B2_T17_NH6_NKV2_HS24", kAttentionForward, {.B=2, .T=17, .NH=6, .NKV=2, .HS=24}, kF32, kTolF32},
  {"AttentionForward_B1_T65_NH6_NKV3_HS64", kAttentionForward, {.B=1, .T=65, .NH=6, .NKV=3, .HS=64}, kF32, kTolF32},
  {"AttentionForward_B3_T64_NH2_NKV1_HS128", kAttentionForward, {.B=3, .T=64, .NH=2, .NKV=1, .HS=128}, kF32, kTolF32},
  {"AttentionForward_B2_T129_NH4_NKV4_HS128", kAttentionForward, {.B=2, .T=129, .NH=4, .NKV=4, .HS=128}, kF32, kTolF32},
  {"AttentionForward_B1_T1000_NH8_NKV2_HS64", kAttentionForward, {.B=1, .T=1000, .NH=8, .NKV=2, .HS=64}, kF32, kTolF32},
  {"AttentionBackward_B1_T1_NH1_NKV1_HS8", kAttentionBackward, {.B=1, .T=1, .NH=1, .NKV=1, .HS=8}, kF32, kTolF32},
  {"AttentionBackward_B2_T17_NH6_NKV2_HS24", kAttentionBackward, {.B=2, .T=17, .NH=6, .NKV=2, .HS=24}, kF32, kTolF32},
  {"AttentionBackward_B1_T65_NH6_NKV3_HS64", kAttentionBackward, {.B=1, .T=65, .NH=6, .NKV=3, .HS=64}, kF32, kTolF32},
  {"AttentionBackward_B3_T64_NH2_NKV1_HS128", kAttentionBackward, {.B=3, .T=64, .NH=2, .NKV=1, .HS=128}, kF32, kTolF32},
  {"AttentionBackward_B2_T129_NH4_NKV4_HS128", kAttentionBackward, {.B=2, .T=129, .NH=4, .NKV=4, .HS=128},
    kF32, kTolF32},
  {"AttentionBackward_B1_T333_NH6_NKV2_HS64", kAttentionBackward, {.B=1, .T=333, .NH=6, .NKV=2, .HS=64}, kF32, kTolF32},
  {"AttentionForward_Bf16_B2_T17_NH6_NKV2_HS64", kAttentionForward, {.B=2, .T=17, .NH=6, .NKV=2, .HS=64},
    kBf16, kTolBf16},
  {"AttentionForward_Bf16_B1_T129_NH4_NKV1_HS128", kAttentionForward, {.B=1, .T=129, .NH=4, .NKV=1, .HS=128},
    kBf16, kTolBf16},
  {"AttentionForward_Bf16_B2_T256_NH8_NKV4_HS64", kAttentionForward, {.B=2, .T=256, .NH=8, .NKV=4, .HS=64},
    kBf16, kTolBf16},
  {"AttentionForward_Bf16_B1_T1000_NH4_NKV2_HS128", kAttentionForward, {.B=1, .T=1000, .NH=4, .NKV=2, .HS=128},
    kBf16, kTolBf16},
  {"AttentionBackward_Bf16_B2_T17_NH6_NKV2_HS64", kAttentionBackward, {.B=2, .T=17, .NH=6, .NKV=2, .HS=64},
    kBf16, kTolBf16},
  {"AttentionBackward_Bf16_B1_T129_NH4_NKV1_HS128", kAttentionBackward, {.B=1, .T=129, .NH=4, .NKV=1, .HS=128},
    kBf16, kTolBf16},
  {"AttentionBackward_Bf16_B2_T256_NH8_NKV4_HS64", kAttentionBackward, {.B=2, .T=256, .NH=8, .NKV=4, .HS=64},
    kBf16, kTolBf16},
  {"AttentionBackward_Bf16_B1_T1000_NH4_NKV2_HS128", kAttentionBackward, {.B=1, .T=1000, .NH=4, .NKV=2, .HS=128},
    kBf16, kTolBf16},

  {"RmsnormForward_N1_C1", kRmsnormForward, {.N=1, .C=1}, kF32, kTolF32},
  {"RmsnormForward_N3_C7", kRmsnormForward, {.N=3, .C=7}, kF32, kTolF32},
  {"RmsnormForward_N65_C768", kRmsnormForward, {.N=65, .C=768}, kF32, kTolF32},
  {"RmsnormForward_N1000_C33", kRmsnormForward, {.N=1000, .C=33}, kF32, kTolF32},
  {"RmsnormForward_N257_C4097", kRmsnormForward, {.N=257, .C=4097}, kF32, kTolF32},
  {"RmsnormResidualForward_N1_C1", kRmsnormResidualForward, {.N=1, .C=1}, kF32, kTolF32},
  {"RmsnormResidualForward_N17_C768", kRmsnormResidualForward, {.N=17, .C=768}, kF32, kTolF32},
  {"RmsnormResidualForward_N300_C1001", kRmsnormResidualForward, {.N=300, .C=1001}, kF32, kTolF32},
  {"RmsnormBackward_N1_C1", kRmsnormBackward, {.N=1, .C=1}, kF32, kTolF32},
  {"RmsnormBackward_N3_C7", kRmsnormBackward, {.N=3, .C=7}, kF32, kTolF32},
  {"RmsnormBackward_N65_C768", kRmsnormBackward, {.N=65, .C=768}, kF32, kTolF32},
  {"RmsnormBackward_N1000_C33", kRmsnormBackward, {.N=1000, .C=33}, kF32, kTolF32},
  {"RmsnormBackward_N2049_C4097", kRmsnormBackward, {.N=2049, .C=4097}, kF32, kTolF32},

  {"RopeForward_B1_T1_NH1_NKV1_HS8", kRopeForward, {.B=1, .T=1, .NH=1, .NKV=1, .HS=8}, kF32, kTolF32},
  {"RopeForward_B2_T17_NH6_NKV2_HS24", kRopeForward, {.B=2, .T=17, .NH=6, .NKV=2, .HS=24}, kF32, kTolF32},
  {"RopeForward_B1_T100_NH6_NKV3_HS64", kRopeForward, {.B=1, .T=100, .NH=6, .NKV=3, .HS=64}, kF32, kTolF32},
  {"RopeForward_B2_T129_NH4_NKV4_HS128", kRopeForward, {.B=2, .T=129, .NH=4, .NKV=4, .HS=128}, kF32, kTolF32},
  {"RopeBackward_B1_T1_NH1_NKV1_HS8", kRopeBackward, {.B=1, .T=1, .NH=1, .NKV=1, .HS=8}, kF32, kTolF32},
  {"RopeBackward_B2_T17_NH6_NKV2_HS24", kRopeBackward, {.B=2, .T=17, .NH=6, .NKV=2, .HS=24}, kF32, kTolF32},
  {"RopeBackward_B1_T100_NH6_NKV3_HS64", kRopeBackward, {.B=1, .T=100, .NH=6, .NKV=3, .HS=64}, kF32, kTolF32},
  {"RopeBackward_B2_T129_NH4_NKV4_HS128", kRopeBackward, {.B=2, .T=129, .NH=4, .NKV=4, .HS=128}, kF32, kTolF32},

  {"SwigluForward_N1_F1", kSwigluForward, {.N=1, .F=1}, kF32, kTolF32},
  {"SwigluForward_N5_F7", kSwigluForward, {.N=5, .F=7}, kF32, kTolF32},
  {"SwigluForward_N33_F2048", kSwigluForward, {.N=33, .F=2048}, kF32, kTolF32},
  {"SwigluForward_N129_F1377", kSwigluForward, {.N=129, .F=1377}, kF32, kTolF32},
  {"SwigluBackward_N1_F1", kSwigluBackward, {.N=1, .F=1}, kF32, kTolF32},
  {"SwigluBackward_N5_F7", kSwigluBackward, {.N=5, .F=7}, kF32, kTolF32},
  {"SwigluBackward_N33_F2048", kSwigluBackward, {.N=33, .F=2048}, kF32, kTolF32},
  {"SwigluBackward_N129_F1377", kSwigluBackward, {.N=129, .F=1377}, kF32, kTolF32},

  {"CrossentropyForward_N1_V1", kCrossentropyForward, {.N=1, .V=1}, kF32, kTolF32},
  {"CrossentropyForward_N7_V2", kCrossentropyForward, {.N=7, .V=2}, kF32, kTolF32},
  {"CrossentropyForward_N64_V32003", kCrossentropyForward, {.N=64, .V=32003}, kF32, kTolF32},
  {"CrossentropyForward_N5_V65537", kCrossentropyForward, {.N=5, .V=65537}, kF32, kTolF32},
  {"CrossentropyForward_N300_V1001", kCrossentropyForward, {.N=300, .V=1001}, kF32, kTolF32},
  {"CrossentropyFused_N1_V1", kCrossentropyFused, {.N=1, .V=1}, kF32, kTolF32},
  {"CrossentropyFused_N7_V2", kCrossentropyFused, {.N=7, .V=2}, kF32, kTolF32},
  {"CrossentropyFused_N64_V32003", kCrossentropyFused, {.N=64, .V=32003}, kF32, kTolF32},
  {"CrossentropyFused_N3_V65537", kCrossentropyFused, {.N=3, .V=65537}, kF32, kTolF32},
  {"CrossentropyFused_N257_V50257", kCrossentropyFused, {.N=257, .V=50257}, kF32, kTolF32},
  {"CrossentropyFused_Huge_N33000_V65536", kCrossentropyFused, {.N=33000, .V=65536}, kF32, kTolF32, kRowSubset},

  {"EmbeddingForward_N1_C1_V1", kEmbeddingForward, {.N=1, .C=1, .V=1}, kF32, kTolExact},
  {"EmbeddingForward_N1000_C17_V3", kEmbeddingForward, {.N=1000, .C=17, .V=3}, kF32, kTolExact},
  {"EmbeddingForward_N64_C768_V50257", kEmbeddingForward, {.N=64, .C=768, .V=50257}, kF32, kTolExact},
  {"EmbeddingBackward_N1_C1_V1", kEmbeddingBackward, {.N=1, .C=1, .V=1}, kF32, kTolF32},
  {"EmbeddingBackward_N4097_C64_V1", kEmbeddingBackward, {.N=4097, .C=64, .V=1}, kF32, kTolF32},
  {"EmbeddingBackward_N1000_C17_V3", kEmbeddingBackward, {.N=1000, .C=17, .V=3}, kF32, kTolF32},
  {"EmbeddingBackward_N33_C5_V32003", kEmbeddingBackward, {.N=33, .C=5, .V=32003}, kF32, kTolF32},
  {"EmbeddingBackward_N2048_C768_V50257", kEmbeddingBackward, {.N=2048, .C=768, .V=50257}, kF32, kTolF32},

  {"Adamw_n1", kAdamw, {.N=1}, kF32, kTolF32},
  {"Adamw_n1001", kAdamw, {.N=1001}, kF32, kTolF32},
  {"Adamw_n1048583", kAdamw, {.N=1048583}, kF32, kTolF32},
  {"AdamwBf16Copy_n1", kAdamw, {.N=1}, kBf16, kTolF32},
  {"AdamwBf16Copy_n1001", kAdamw, {.N=1001}, kBf16, kTolF32},
  {"AdamwBf16Copy_n1048583", kAdamw, {.N=1048583}, kBf16, kTolF32},

  {"Add_n1", kAdd, {.N=1}, kF32, kTolExact},
  {"Add_n1001", kAdd, {.N=1001}, kF32, kTolExact},
  {"Add_n16777259", kAdd, {.N=16777259}, kF32, kTolExact},
  {"AddAliasOut_n1001", kAdd, {.N=1001}, kF32, kTolExact, kAliasOut},
  {"ScaleInplace_n1", kScaleInplace, {.N=1}, kF32, kTolExact},
  {"ScaleInplace_n1001", kScaleInplace, {.N=1001}, kF32, kTolExact},
  {"ScaleInplace_n16777259", kScaleInplace, {.N=16777259}, kF32, kTolExact},
  {"Sum_n1", kSum, {.N=1}, kF32, kTolF32},
  {"Sum_n1001", kSum, {.N=1001}, kF32, kTolF32},
  {"Sum_n33554467", kSum, {.N=33554467}, kF32, kTolF32},
  {"SumSquares_n1", kSumSquares, {.N=1}, kF32, kTolF32},
  {"SumSquares_n1001", kSumSquares, {.N=1001}, kF32, kTolF32},
  {"SumSquares_n33554467", kSumSquares, {.N=33554467}, kF32, kTolF32},
  {"CastToBf16_n1", kCastToBf16, {.N=1}, kF32, kTolExact},
  {"CastToBf16_n1001", kCastToBf16, {.N=1001}, kF32, kTolExact},
  {"CastToBf16_n1048583", kCastToBf16, {.N=1048583}, kF32, kTolExact},
  {"CastToBf16_Specials", kCastToBf16, {}, kF32, kTolExact, kSpecials},
  {"CastToBf16_NaNs", kCastToBf16, {}, kF32, kTolExact, kNaNs},
};
// clang-format on

// ---- the test -------------------------------------------------------------------------------

// One stream per test (tc::WithGpuStream; skipped with the reason when there is no GPU); each op
// family below runs its GPU op through tc::run_twice.
class CudaParity : public tc::WithGpuStream<::testing::TestWithParam<Case>> {};

// The cuda:: ops exist only in a CUDA build (kernels/cuda/*.cu); without it SetUp skips every
// case before the body runs, and nothing below is compiled.
#if SSIAT_HAVE_CUDA

// Targets in [0, V) with the last class at row 0 and every fifth row (from row 3) ignored (-1).
std::vector<int32_t> make_targets(tc::Rng& rng, int64_t N, int64_t V) {
  auto t = rng.ints(N, 0, static_cast<int32_t>(V - 1));
  for (int64_t n = 3; n < N; n += 5) t[n] = -1;
  t[0] = static_cast<int32_t>(V - 1);
  return t;
}

// cast_to_bf16 inputs: fixed special values, or random bit patterns with rounding ties.
std::vector<float> cast_inputs(tc::Rng& rng, int64_t n, Variant v) {
  if (v == Variant::kSpecials)  // zeros, infinities, subnormals, ties to even, overflow to infinity
    return tc::from_bits({0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x00008000, 0x00018000,
                          0x0000ffff, 0x007fffff, 0x80008000, 0x3f800000, 0xbf800000, 0x3f808000, 0x3f818000,
                          0x3f807fff, 0x3f808001, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0xff7fffff, 0x4b7fff80});
  if (v == Variant::kNaNs)
    return tc::from_bits({0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0xffffffff, 0x7fa00000,
                          0x7f80ffff, 0x7fbf0000});
  return rng.non_nan_bits(n);
}

// matmul_forward, or matmul_backward (dinp `=`, or nullptr; dweight += onto random values), with
// W = float or bf16 weights (compared with the f32 CPU result either way).
template <typename W>
void check_matmul(const Case& c, kc::Stream s) {
  const int64_t N = c.d.N, C = c.d.C, OC = c.d.OC;
  const bool forward = c.op == Op::kMatmulForward, with_dinp = c.variant != Variant::kNullDinp;
  tc::Rng rng(tc::seed_of(c.name));
  const auto inp = rng.uniform(N * C, -1, 1), weight = rng.uniform(OC * C, -1, 1);
  const auto dout = rng.uniform(N * OC, -1, 1), dweight0 = rng.uniform(OC * C, -1, 1);
  std::vector<float> out_ref(N * OC), dinp_ref(N * C), dweight_ref = dweight0;
  if (forward) {
    cpu::matmul_forward(out_ref.data(), inp.data(), weight.data(), N, C, OC);
  } else {
    cpu::matmul_backward(with_dinp ? dinp_ref.data() : nullptr, dweight_ref.data(), dout.data(), inp.data(),
                         weight.data(), N, C, OC);
  }

  tc::GemmPtr gemm(kc::gemm_create(s, N * OC + N * C));
  auto d_inp = tc::to_device(s, inp), d_dout = tc::to_device(s, dout);
  auto d_w = tc::to_device(s, tc::weights_as<W>(weight));
  tc::DeviceArray<float> d_out(N * OC, s), d_dinp(N * C, s), d_dweight(OC * C, s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    if (forward) {
      d_out.poison();
      kc::matmul_forward(d_out.get(), d_inp.get(), d_w.get(), N, C, OC, *gemm);
      kc::synchronize(s);
      cap.keep("out", d_out.download());
      return;
    }
    d_dinp.poison();
    d_dweight.upload(dweight0);
    kc::matmul_backward(with_dinp ? d_dinp.get() : nullptr, d_dweight.get(), d_dout.get(), d_inp.get(), d_w.get(),
                        N, C, OC, *gemm);
    kc::synchronize(s);
    if (with_dinp) cap.keep("dinp", d_dinp.download());
    cap.keep("dweight", d_dweight.download());
  });
  if (forward) return tc::expect_close("out", got.get<float>("out"), out_ref, c.tol);
  if (with_dinp) tc::expect_close("dinp", got.get<float>("dinp"), dinp_ref, c.tol);
  tc::expect_close("dweight", got.get<float>("dweight"), dweight_ref, c.tol);
}

// attention_forward, or attention_backward from the CPU forward's out and lse; with bf16 operands
// their tensor-core variants (attention_*_bf16), still compared with the f32 CPU result.
void check_attention(const Case& c, kc::Stream s) {
  const bool forward = c.op == Op::kAttentionForward, tensor_cores = c.prec == Prec::kBf16;
  const int64_t B = c.d.B, T = c.d.T, NH = c.d.NH, NKV = c.d.NKV, HS = c.d.HS, QKV = (NH + 2 * NKV) * HS;
  tc::Rng rng(tc::seed_of(c.name));
  const auto qkv = rng.uniform(B * T * QKV, -2, 2), dout = rng.uniform(B * T * NH * HS, -1, 1);
  std::vector<float> out(B * T * NH * HS), lse(B * NH * T), dqkv_ref(B * T * QKV);
  cpu::attention_forward(out.data(), lse.data(), qkv.data(), B, T, NH, NKV, HS);
  if (!forward)
    cpu::attention_backward(dqkv_ref.data(), dout.data(), out.data(), lse.data(), qkv.data(), B, T, NH, NKV, HS);

  auto d_qkv = tc::to_device(s, qkv), d_dout = tc::to_device(s, dout);
  auto d_saved_out = tc::to_device(s, out), d_saved_lse = tc::to_device(s, lse);
  tc::DeviceArray<float> d_out(B * T * NH * HS, s), d_lse(B * NH * T, s), d_dqkv(B * T * QKV, s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    if (forward) {
      d_out.poison();
      d_lse.poison();
      const auto attention_forward = tensor_cores ? kc::attention_forward_bf16 : kc::attention_forward;
      attention_forward(d_out.get(), d_lse.get(), d_qkv.get(), B, T, NH, NKV, HS, s);
      kc::synchronize(s);
      cap.keep("out", d_out.download());
      cap.keep("lse", d_lse.download());
    } else {
      d_dqkv.poison();
      const auto attention_backward = tensor_cores ? kc::attention_backward_bf16 : kc::attention_backward;
      attention_backward(d_dqkv.get(), d_dout.get(), d_saved_out.get(), d_saved_lse.get(), d_qkv.get(), B, T, NH, NKV,
                         HS, s);
      kc::synchronize(s);
      cap.keep("dqkv", d_dqkv.download());
    }
  });
  if (forward) {
    tc::expect_close("out", got.get<float>("out"), out, c.tol);
    tc::expect_close("lse", got.get<float>("lse"), lse, c.tol);
  } else {
    tc::expect_close("dqkv", got.get<float>("dqkv"), dqkv_ref, c.tol);
  }
}

constexpr float kEps = 1e-5f;

// rmsnorm_forward, or rmsnorm_residual_forward (res = a + b first, which must be exact).
void check_rmsnorm_forward(const Case& c, kc::Stream s) {
  const int64_t N = c.d.N, C = c.d.C;
  const bool residual = c.op == Op::kRmsnormResidualForward;
  tc::Rng rng(tc::seed_of(c.name));
  const auto a = rng.uniform(N * C, -2, 2), b = rng.uniform(N * C, -2, 2), weight = rng.uniform(C, 0.5f, 1.5f);
  std::vector<float> res_ref(N * C), out_ref(N * C), rstd_ref(N);
  if (residual) {
    cpu::rmsnorm_residual_forward(res_ref.data(), out_ref.data(), rstd_ref.data(), a.data(), b.data(), weight.data(),
                                  N, C, kEps);
  } else {
    cpu::rmsnorm_forward(out_ref.data(), rstd_ref.data(), a.data(), weight.data(), N, C, kEps);
  }

  auto d_a = tc::to_device(s, a), d_b = tc::to_device(s, b), d_w = tc::to_device(s, weight);
  tc::DeviceArray<float> d_res(N * C, s), d_out(N * C, s), d_rstd(N, s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_res.poison();
    d_out.poison();
    d_rstd.poison();
    if (residual) {
      kc::rmsnorm_residual_forward(d_res.get(), d_out.get(), d_rstd.get(), d_a.get(), d_b.get(), d_w.get(), N, C,
                                   kEps, s);
    } else {
      kc::rmsnorm_forward(d_out.get(), d_rstd.get(), d_a.get(), d_w.get(), N, C, kEps, s);
    }
    kc::synchronize(s);
    if (residual) cap.keep("res", d_res.download());
    cap.keep("out", d_out.download());
    cap.keep("rstd", d_rstd.download());
  });
  if (residual) tc::expect_close("res", got.get<float>("res"), res_ref, kTolExact);
  tc::expect_close("out", got.get<float>("out"), out_ref, c.tol);
  tc::expect_close("rstd", got.get<float>("rstd"), rstd_ref, c.tol);
}

void check_rmsnorm_backward(const Case& c, kc::Stream s) {
  const int64_t N = c.d.N, C = c.d.C;
  tc::Rng rng(tc::seed_of(c.name));
  const auto inp = rng.uniform(N * C, -3, 3), weight = rng.uniform(C, 0.5f, 1.5f), dout = rng.uniform(N * C, -1, 1);
  const auto dinp0 = rng.uniform(N * C, -1, 1), dweight0 = rng.uniform(C, -1, 1);
  std::vector<float> out(N * C), rstd(N), dinp_ref = dinp0, dweight_ref = dweight0;
  cpu::rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), N, C, kEps);  // saved rstd
  cpu::rmsnorm_backward(dinp_ref.data(), dweight_ref.data(), dout.data(), inp.data(), weight.data(), rstd.data(), N,
                        C);

  auto d_dout = tc::to_device(s, dout), d_inp = tc::to_device(s, inp);
  auto d_w = tc::to_device(s, weight), d_rstd = tc::to_device(s, rstd);
  tc::DeviceArray<float> d_dinp(N * C, s), d_dweight(C, s);
  tc::DeviceScratch scratch(kc::rmsnorm_backward_scratch_bytes(N, C), s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_dinp.upload(dinp0);
    d_dweight.upload(dweight0);
    kc::rmsnorm_backward(d_dinp.get(), d_dweight.get(), d_dout.get(), d_inp.get(), d_w.get(), d_rstd.get(), N, C,
                         scratch.get(), s);
    kc::synchronize(s);
    cap.keep("dinp", d_dinp.download());
    cap.keep("dweight", d_dweight.download());
  });
  tc::expect_close("dinp", got.get<float>("dinp"), dinp_ref, c.tol);
  tc::expect_close("dweight", got.get<float>("dweight"), dweight_ref, c.tol);
}

// rope_forward / rope_backward rotate qkv in place: the buffer starts from the random input
// each run; the v heads must come back bit for bit.
void check_rope(const Case& c, kc::Stream s) {
  const bool forward = c.op == Op::kRopeForward;
  const int64_t B = c.d.B, T = c.d.T, NH = c.d.NH, NKV = c.d.NKV, HS = c.d.HS, QKV = (NH + 2 * NKV) * HS;
  tc::Rng rng(tc::seed_of(c.name));
  const auto x = rng.uniform(B * T * QKV, -2, 2);
  std::vector<float> cos(T * HS / 2), sin(T * HS / 2), ref = x;
  cpu::rope_tables(cos.data(), sin.data(), T, HS, 10000.0);
  if (forward) {
    cpu::rope_forward(ref.data(), cos.data(), sin.data(), B, T, NH, NKV, HS);
  } else {
    cpu::rope_backward(ref.data(), cos.data(), sin.data(), B, T, NH, NKV, HS);
  }

  auto d_cos = tc::to_device(s, cos), d_sin = tc::to_device(s, sin);
  tc::DeviceArray<float> d_x(B * T * QKV, s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_x.upload(x);
    if (forward) {
      kc::rope_forward(d_x.get(), d_cos.get(), d_sin.get(), B, T, NH, NKV, HS, s);
    } else {
      kc::rope_backward(d_x.get(), d_cos.get(), d_sin.get(), B, T, NH, NKV, HS, s);
    }
    kc::synchronize(s);
    cap.keep("qkv", d_x.download());
  });
  const auto y = got.get<float>("qkv");
  tc::expect_close("qkv", y, ref, c.tol);
  ASSERT_EQ(y.size(), x.size());
  const int64_t v_off = (NH + NKV) * HS, v_len = NKV * HS;
  for (int64_t bt = 0; bt < B * T; bt++)
    ASSERT_EQ(std::memcmp(y.data() + bt * QKV + v_off, x.data() + bt * QKV + v_off, v_len * sizeof(float)), 0)
        << "v heads of token " << bt << " were modified";
}

void check_swiglu(const Case& c, kc::Stream s) {
  const int64_t N = c.d.N, Fd = c.d.F;
  const bool forward = c.op == Op::kSwigluForward;
  tc::Rng rng(tc::seed_of(c.name));
  const auto inp = rng.uniform(N * 2 * Fd, -5, 5), dout = rng.uniform(N * Fd, -1, 1);
  std::vector<float> ref(forward ? N * Fd : N * 2 * Fd);  // out or dinp
  if (forward) {
    cpu::swiglu_forward(ref.data(), inp.data(), N, Fd);
  } else {
    cpu::swiglu_backward(ref.data(), dout.data(), inp.data(), N, Fd);
  }

  auto d_inp = tc::to_device(s, inp), d_dout = tc::to_device(s, dout);
  tc::DeviceArray<float> d_res(int64_t(ref.size()), s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_res.poison();
    if (forward) {
      kc::swiglu_forward(d_res.get(), d_inp.get(), N, Fd, s);
    } else {
      kc::swiglu_backward(d_res.get(), d_dout.get(), d_inp.get(), N, Fd, s);
    }
    kc::synchronize(s);
    cap.keep("result", d_res.download());
  });
  tc::expect_close(forward ? "out" : "dinp", got.get<float>("result"), ref, c.tol);
}

void check_crossentropy(const Case& c, kc::Stream s) {
  const bool fused = c.op == Op::kCrossentropyFused;
  const int64_t N = c.d.N, V = c.d.V;
  const float dloss = 1.0f / static_cast<float>(N);
  tc::Rng rng(tc::seed_of(c.name));
  const auto logits = rng.uniform(N * V, -4, 4);
  const auto targets = make_targets(rng, N, V);
  std::vector<float> losses_ref(N), grad_ref = logits;
  if (fused) {
    cpu::crossentropy_fused(losses_ref.data(), grad_ref.data(), targets.data(), N, V, dloss);
  } else {
    cpu::crossentropy_forward(losses_ref.data(), logits.data(), targets.data(), N, V);
  }

  auto d_targets = tc::to_device(s, targets);
  tc::DeviceArray<float> d_logits(N * V, s), d_losses(N, s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_logits.upload(logits);
    d_losses.poison();
    if (fused) {
      kc::crossentropy_fused(d_losses.get(), d_logits.get(), d_targets.get(), N, V, dloss, s);
    } else {
      kc::crossentropy_forward(d_losses.get(), d_logits.get(), d_targets.get(), N, V, s);
    }
    kc::synchronize(s);
    cap.keep("losses", d_losses.download());
    cap.keep("logits", d_logits.download());
  });
  tc::expect_close("losses", got.get<float>("losses"), losses_ref, c.tol);
  if (fused) {
    tc::expect_close("dlogits", got.get<float>("logits"), grad_ref, c.tol);
  } else {
    const auto after = got.get<float>("logits");
    EXPECT_EQ(std::memcmp(after.data(), logits.data(), logits.size() * sizeof(float)), 0)
        << "crossentropy_forward modified the logits";
  }
}

// N*V > 2^31. Row n of the logits is row n % kPool of a small random pool (a prime count, so
// neighbouring rows differ); every target differs. Checked: all N losses against a float64
// log-sum-exp of the pool rows, and the losses and gradient of the first 3 and last 64 rows
// (offsets past 2^31 elements) against the CPU kernel run on those rows alone.
void check_crossentropy_huge(const Case& c, kc::Stream s) {
  const int64_t N = c.d.N, V = c.d.V;
  ASSERT_GT(N * V, int64_t{1} << 31) << "the Huge case must index past 2^31 elements";
  constexpr int64_t kPool = 61, kChunkRows = 256;
  const float dloss = 1.0f / static_cast<float>(N);
  tc::Rng rng(tc::seed_of(c.name));
  const auto pool = rng.uniform(kPool * V, -4, 4);
  const auto targets = make_targets(rng, N, V);
  auto row = [&](int64_t n) { return pool.data() + (n % kPool) * V; };

  tc::DeviceArray<float> d_logits(N * V, s), d_losses(N, s);
  auto d_targets = tc::to_device(s, targets);
  {
    std::vector<float> chunk(kChunkRows * V);
    for (int64_t r0 = 0; r0 < N; r0 += kChunkRows) {
      const int64_t rows = std::min(kChunkRows, N - r0);
      for (int64_t i = 0; i < rows; i++) std::memcpy(chunk.data() + i * V, row(r0 + i), V * sizeof(float));
      d_logits.upload_at(chunk.data(), rows * V, r0 * V);
    }
  }
  const tc::Capture fwd = tc::run_twice([&](tc::Capture& cap) {
    d_losses.poison();
    kc::crossentropy_forward(d_losses.get(), d_logits.get(), d_targets.get(), N, V, s);
    kc::synchronize(s);
    cap.keep("losses", d_losses.download());
  });
  const std::pair<int64_t, int64_t> ranges[] = {{0, 3}, {N - 64, N}};
  tc::DeviceArray<float> d_logits2(N * V, s);  // the second fused run's identical input
  d_logits2.copy_from(d_logits);
  tc::DeviceArray<float>* inputs[2] = {&d_logits, &d_logits2};
  int run = 0;
  const tc::Capture fused = tc::run_twice([&](tc::Capture& cap) {
    tc::DeviceArray<float>& d = *inputs[run++];
    d_losses.poison();
    kc::crossentropy_fused(d_losses.get(), d.get(), d_targets.get(), N, V, dloss, s);
    kc::synchronize(s);
    cap.keep("losses", d_losses.download());
    for (const auto& [lo, hi] : ranges) cap.keep("dlogits" + std::to_string(lo), d.download_at(lo * V, (hi - lo) * V));
  });

  // Every row's loss: log-sum-exp of its pool row in float64, minus the target logit.
  std::vector<double> lse(kPool);
  for (int64_t p = 0; p < kPool; p++) {
    const float* x = pool.data() + p * V;
    double m = x[0], sum = 0;
    for (int64_t v = 1; v < V; v++) m = std::max(m, double(x[v]));
    for (int64_t v = 0; v < V; v++) sum += std::exp(double(x[v]) - m);
    lse[p] = m + std::log(sum);
  }
  std::vector<float> all_ref(N);
  for (int64_t n = 0; n < N; n++)
    all_ref[n] = targets[n] < 0 ? 0.0f : static_cast<float>(lse[n % kPool] - double(row(n)[targets[n]]));
  tc::expect_close("losses (forward, all rows)", fwd.get<float>("losses"), all_ref, c.tol);
  tc::expect_close("losses (fused, all rows)", fused.get<float>("losses"), all_ref, c.tol);

  for (const auto& [lo, hi] : ranges) {
    const int64_t rows = hi - lo;
    std::vector<float> slice(rows * V), loss_ref(rows), fused_loss_ref(rows);
    for (int64_t i = 0; i < rows; i++) std::memcpy(slice.data() + i * V, row(lo + i), V * sizeof(float));
    cpu::crossentropy_forward(loss_ref.data(), slice.data(), targets.data() + lo, rows, V);
    cpu::crossentropy_fused(fused_loss_ref.data(), slice.data(), targets.data() + lo, rows, V, dloss);
    const std::string at = " rows [" + std::to_string(lo) + ", " + std::to_string(hi) + ")";
    const auto f = fwd.get<float>("losses"), g = fused.get<float>("losses");
    tc::expect_close("forward losses" + at, std::vector<float>(f.begin() + lo, f.begin() + hi), loss_ref, c.tol);
    tc::expect_close("fused losses" + at, std::vector<float>(g.begin() + lo, g.begin() + hi), fused_loss_ref, c.tol);
    tc::expect_close("dlogits" + at, fused.get<float>("dlogits" + std::to_string(lo)), slice, c.tol);
  }
}

// embedding_forward (a gather: exact), or embedding_backward (+= onto random values).
void check_embedding(const Case& c, kc::Stream s) {
  const int64_t N = c.d.N, C = c.d.C, V = c.d.V;
  const bool forward = c.op == Op::kEmbeddingForward;
  tc::Rng rng(tc::seed_of(c.name));
  auto tokens = rng.ints(N, 0, static_cast<int32_t>(V - 1));
  tokens[0] = static_cast<int32_t>(V - 1);
  const auto wte = rng.uniform(V * C, -1, 1), dout = rng.uniform(N * C, -1, 1);  // wte: also dwte's start
  std::vector<float> ref = forward ? std::vector<float>(N * C) : wte;
  if (forward) {
    cpu::embedding_forward(ref.data(), tokens.data(), wte.data(), N, C, V);
  } else {
    cpu::embedding_backward(ref.data(), dout.data(), tokens.data(), N, C, V);
  }

  auto d_tokens = tc::to_device(s, tokens);
  auto d_dout = tc::to_device(s, dout);
  tc::DeviceArray<float> d_wte(V * C, s), d_out(N * C, s);
  tc::DeviceScratch scratch(forward ? 0 : kc::embedding_backward_scratch_bytes(N, V), s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_wte.upload(wte);
    if (forward) {
      d_out.poison();
      kc::embedding_forward(d_out.get(), d_tokens.get(), d_wte.get(), N, C, V, s);
    } else {
      kc::embedding_backward(d_wte.get(), d_dout.get(), d_tokens.get(), N, C, V, scratch.get(), s);
    }
    kc::synchronize(s);
    cap.keep("result", forward ? d_out.download() : d_wte.download());
  });
  tc::expect_close(forward ? "out" : "dwte", got.get<float>("result"), ref, c.tol);
}

void check_adamw(const Case& c, kc::Stream s) {
  const int64_t n = c.d.N;
  const bool with_copy = c.prec == Prec::kBf16;
  AdamWParams hp;
  hp.lr = 1e-3, hp.beta1 = 0.9, hp.beta2 = 0.95, hp.eps = 1e-8, hp.weight_decay = 0.1, hp.step = 7;
  tc::Rng rng(tc::seed_of(c.name));
  const auto param = rng.uniform(n, -1, 1), grad = rng.uniform(n, -1, 1);
  const auto m = rng.uniform(n, -0.1f, 0.1f), v = rng.uniform(n, 0, 0.01f);
  std::vector<float> p_ref = param, m_ref = m, v_ref = v;
  cpu::adamw_update(p_ref.data(), grad.data(), m_ref.data(), v_ref.data(), n, hp);

  auto d_grad = tc::to_device(s, grad);
  tc::DeviceArray<float> d_p(n, s), d_m(n, s), d_v(n, s);
  tc::DeviceArray<bf16> d_lp(n, s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_p.upload(param);
    d_m.upload(m);
    d_v.upload(v);
    d_lp.poison();
    kc::adamw_update(d_p.get(), with_copy ? d_lp.get() : nullptr, d_grad.get(), d_m.get(), d_v.get(), n, hp, s);
    kc::synchronize(s);
    cap.keep("param", d_p.download());
    cap.keep("m", d_m.download());
    cap.keep("v", d_v.download());
    if (with_copy) cap.keep("param_lp", d_lp.download());
  });
  const auto p_gpu = got.get<float>("param");
  tc::expect_close("param", p_gpu, p_ref, c.tol);
  tc::expect_close("m", got.get<float>("m"), m_ref, c.tol);
  tc::expect_close("v", got.get<float>("v"), v_ref, c.tol);
  if (with_copy) tc::expect_bf16_of("param_lp vs bf16_from_float(new param)", got.get<bf16>("param_lp"), p_gpu);
  // The change flag (kernels/adamw.h): set when a value moved, not with lr 0 and no decay, as the
  // CPU twin's.
  tc::DeviceArray<int32_t> d_flag(1, s);
  for (const double lr : {0.0, hp.lr}) {
    AdamWParams h = hp;
    h.lr = lr;
    std::vector<float> p_cpu = param, m_cpu = m, v_cpu = v;
    int32_t cpu_flag = 0;
    cpu::adamw_update(p_cpu.data(), grad.data(), m_cpu.data(), v_cpu.data(), n, h, &cpu_flag);
    d_p.upload(param);
    d_m.upload(m);
    d_v.upload(v);
    d_flag.upload({0});
    kc::adamw_update(d_p.get(), nullptr, d_grad.get(), d_m.get(), d_v.get(), n, h, s, d_flag.get());
    kc::synchronize(s);
    EXPECT_EQ(d_flag.download()[0], cpu_flag) << "lr " << lr;
    EXPECT_EQ(cpu_flag, lr > 0 ? 1 : 0) << "lr " << lr;
  }
}

void check_add_or_scale(const Case& c, kc::Stream s) {
  constexpr float kScale = -0.731f;
  const int64_t n = c.d.N;
  const bool alias = c.variant == Variant::kAliasOut;
  tc::Rng rng(tc::seed_of(c.name));
  const auto a = rng.uniform(n, -1, 1), b = rng.uniform(n, -1, 1);
  std::vector<float> ref = a;
  if (c.op == Op::kAdd) {
    cpu::add(ref.data(), a.data(), b.data(), n);
  } else {
    cpu::scale_inplace(ref.data(), kScale, n);
  }

  tc::DeviceArray<float> d_a(n, s), d_out(n, s);
  auto d_b = tc::to_device(s, b);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_a.upload(a);
    if (c.op == Op::kAdd) {
      float* out = alias ? d_a.get() : d_out.get();
      if (!alias) d_out.poison();
      kc::add(out, d_a.get(), d_b.get(), n, s);
      kc::synchronize(s);
      cap.keep("out", alias ? d_a.download() : d_out.download());
    } else {
      kc::scale_inplace(d_a.get(), kScale, n, s);
      kc::synchronize(s);
      cap.keep("out", d_a.download());
    }
  });
  tc::expect_close("out", got.get<float>("out"), ref, c.tol);
}

void check_reduction(const Case& c, kc::Stream s) {
  const int64_t n = c.d.N;
  const bool squares = c.op == Op::kSumSquares;
  tc::Rng rng(tc::seed_of(c.name));
  const auto x = rng.uniform(n, -0.5f, 1.0f);  // mean 0.25: the sum is far from 0
  const double ref = squares ? cpu::sum_squares(x.data(), n) : cpu::sum(x.data(), n);

  auto d_x = tc::to_device(s, x);
  tc::DeviceScratch scratch(kc::reduce_scratch_bytes(n), s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    const double r =
        squares ? kc::sum_squares(d_x.get(), n, scratch.get(), s) : kc::sum(d_x.get(), n, scratch.get(), s);
    cap.keep("value", std::vector<double>{r});
  });
  const double value = got.get<double>("value").at(0);
  EXPECT_LE(std::fabs(value - ref), c.tol * std::fabs(ref)) << "gpu " << value << " cpu " << ref;
}

void check_cast_to_bf16(const Case& c, kc::Stream s) {
  tc::Rng rng(tc::seed_of(c.name));
  const auto in = cast_inputs(rng, c.d.N, c.variant);
  const int64_t n = int64_t(in.size());
  auto d_in = tc::to_device(s, in);
  tc::DeviceArray<bf16> d_out(n, s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_out.poison();
    kc::cast_to_bf16(d_out.get(), d_in.get(), n, s);
    kc::synchronize(s);
    cap.keep("out", d_out.download());
  });
  tc::expect_bf16_of("cast_to_bf16", got.get<bf16>("out"), in);  // c.tol is 0: exact bits
}

#endif  // SSIAT_HAVE_CUDA

TEST_P(CudaParity, MatchesCpu) {
  const Case& c = GetParam();
#if SSIAT_HAVE_CUDA
  switch (c.op) {
    case Op::kMatmulForward:
    case Op::kMatmulBackward:
      return c.prec == Prec::kBf16 ? check_matmul<bf16>(c, s()) : check_matmul<float>(c, s());
    case Op::kAttentionForward:
    case Op::kAttentionBackward: return check_attention(c, s());
    case Op::kRmsnormForward:
    case Op::kRmsnormResidualForward: return check_rmsnorm_forward(c, s());
    case Op::kRmsnormBackward: return check_rmsnorm_backward(c, s());
    case Op::kRopeForward:
    case Op::kRopeBackward: return check_rope(c, s());
    case Op::kSwigluForward:
    case Op::kSwigluBackward: return check_swiglu(c, s());
    case Op::kCrossentropyForward: return check_crossentropy(c, s());
    case Op::kCrossentropyFused:
      return c.variant == Variant::kRowSubset ? check_crossentropy_huge(c, s()) : check_crossentropy(c, s());
    case Op::kEmbeddingForward:
    case Op::kEmbeddingBackward: return check_embedding(c, s());
    case Op::kAdamw: return check_adamw(c, s());
    case Op::kAdd:
    case Op::kScaleInplace: return check_add_or_scale(c, s());
    case Op::kSum:
    case Op::kSumSquares: return check_reduction(c, s());
    case Op::kCastToBf16: return check_cast_to_bf16(c, s());
  }
  FAIL() << "case " << c.name << " has an op this test does not dispatch";
#else
  FAIL() << "unreachable: SetUp skips every case in a build without CUDA (" << c.name << ")";
#endif
}

INSTANTIATE_TEST_SUITE_P(Table, CudaParity, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

#if SSIAT_HAVE_CUDA
// Host-only checks of the bf16 attention entries (no device needed): the supported head sizes are
// exactly 64 and 128, an unsupported one is refused with a message naming it before any launch,
// and empty shapes return before touching the (null) pointers or the device.
TEST(CudaAttentionBf16, SupportsExactlyHs64And128) {
  for (int64_t hs = -1; hs <= 512; hs++)
    EXPECT_EQ(kc::attention_bf16_supported(hs), hs == 64 || hs == 128) << "HS=" << hs;
  for (const int64_t hs : {int64_t{32}, int64_t{96}, int64_t{256}}) {
    try {
      kc::attention_forward_bf16(nullptr, nullptr, nullptr, 1, 1, 1, 1, hs, nullptr);
      ADD_FAILURE() << "attention_forward_bf16 accepted HS=" << hs;
    } catch (const ssiat::Error& e) {
      EXPECT_NE(std::string(e.what()).find("HS=" + std::to_string(hs)), std::string::npos) << e.what();
    }
    EXPECT_THROW(kc::attention_backward_bf16(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 1, 1, 1, hs, nullptr),
                 ssiat::Error);
  }
  EXPECT_NO_THROW(kc::attention_forward_bf16(nullptr, nullptr, nullptr, 0, 5, 4, 2, 64, nullptr));
  EXPECT_NO_THROW(kc::attention_backward_bf16(nullptr, nullptr, nullptr, nullptr, nullptr, 3, 0, 4, 2, 128, nullptr));
  // NH = 6 is not a multiple of NKV = 4.
  EXPECT_THROW(kc::attention_forward_bf16(nullptr, nullptr, nullptr, 1, 1, 6, 4, 64, nullptr), ssiat::Error);
}
#endif  // SSIAT_HAVE_CUDA

// Runs everywhere: without a backend or device, the runtime reports 0 devices instead of
// throwing, and the first call that needs a device throws an ssiat::Error that says why.
TEST(CudaRuntime, NoDeviceIsReportedNotThrown) {
  int n = -1;
  EXPECT_NO_THROW(n = kc::device_count());
  EXPECT_GE(n, 0);
  EXPECT_EQ(tc::gpu_available(), kc::compiled() && n > 0);
  if (!kc::compiled()) {
    EXPECT_EQ(n, 0);
    try {
      kc::set_device(0);
      ADD_FAILURE() << "set_device(0) did not throw in a build without CUDA";
    } catch (const ssiat::Error& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA backend"), std::string::npos) << e.what();
    }
  }
}

}  // namespace

// ==== VocabParallelParity: kernels/vocab_parallel.h, every cuda:: entry against its CPU twin ====
// Shard shapes: N = 37 rows; this rank holds vocabulary rows [v0, v0 + Vl) of a V = 1500 one, for
// Vl in {1, 129, 1000} and v0 in {0, 500}. Tokens and targets are drawn from all of [0, V), so
// most fall outside a small shard; rows 0-3 sit on the shard's edges (first and last row, the row
// just past it, the row just before it or V - 1), rows 4-8 repeat the first row (several
// positions per dwte row), and every fifth target from row 5 is ignored (-1). Cross-entropy
// statistics are those of the full row (the CPU twin over all V columns, as one rank holding the
// whole vocabulary): global rowmax, sumexp and target logit, as ce_shard_max_combine and the
// tp all-reduces would give. Exact (tolerance 0): the embedding gather and += (the CPU's adds in
// the CPU's order), the maxima and the target logit. 1e-6 relative L2: sumexp and the gradient
// (expf against the CPU's exp_approx and another summation order), and the loss (logf against
// glibc's, each within 1 ulp, not correctly rounded). Each GPU op runs twice with identical bits.

namespace {

class VocabParallelParity : public tc::WithGpuStream<::testing::Test> {};

#if SSIAT_HAVE_CUDA

constexpr int64_t kShardN = 37, kShardV = 1500;
constexpr double kShardTolExp = 1e-6;

struct ShardShape {
  int64_t Vl, v0;
};
constexpr ShardShape kShardShapes[] = {{1, 0}, {1, 500}, {129, 0}, {129, 500}, {1000, 0}, {1000, 500}};

std::string shard_name(const char* op, ShardShape sh) {
  return std::string(op) + "_Vl" + std::to_string(sh.Vl) + "_v0" + std::to_string(sh.v0);
}

// N global ids in [0, V): rows 0-3 on the shard's edges, rows 4-8 the shard's first row, and,
// with `ignore`, every fifth from row 5 set to -1.
std::vector<int32_t> shard_ids(tc::Rng& rng, ShardShape sh, bool ignore) {
  auto ids = rng.ints(kShardN, 0, static_cast<int32_t>(kShardV - 1));
  ids[0] = static_cast<int32_t>(sh.v0);
  ids[1] = static_cast<int32_t>(sh.v0 + sh.Vl - 1);
  ids[2] = static_cast<int32_t>((sh.v0 + sh.Vl) % kShardV);
  ids[3] = static_cast<int32_t>(sh.v0 > 0 ? sh.v0 - 1 : kShardV - 1);
  for (int64_t n = 4; n <= 8; n++) ids[n] = static_cast<int32_t>(sh.v0);
  if (ignore)
    for (int64_t n = 5; n < kShardN; n += 5) ids[n] = -1;
  return ids;
}

// Columns [v0, v0 + Vl) of the (N, V) rows `full`: this rank's (N, Vl) logits.
std::vector<float> shard_columns(const std::vector<float>& full, ShardShape sh) {
  std::vector<float> out(kShardN * sh.Vl);
  for (int64_t n = 0; n < kShardN; n++)
    std::copy_n(full.begin() + n * kShardV + sh.v0, sh.Vl, out.begin() + n * sh.Vl);
  return out;
}

// Full-vocabulary logits and their row statistics (the CPU twin over all V columns).
struct FullRows {
  std::vector<float> logits, rowmax, sumexp, target_logit;
  std::vector<int32_t> targets;
};

FullRows full_rows(tc::Rng& rng, ShardShape sh) {
  FullRows f;
  f.logits = rng.uniform(kShardN * kShardV, -4, 4);
  f.targets = shard_ids(rng, sh, /*ignore=*/true);
  f.rowmax.resize(kShardN), f.sumexp.resize(kShardN), f.target_logit.resize(kShardN);
  cpu::ce_shard_max(f.rowmax.data(), f.logits.data(), kShardN, kShardV);
  cpu::ce_shard_sums(f.sumexp.data(), f.target_logit.data(), f.logits.data(), f.targets.data(), f.rowmax.data(),
                     kShardN, kShardV, 0);
  return f;
}

void check_embedding_shard(ShardShape sh, int64_t C, bool forward, kc::Stream s) {
  const int64_t N = kShardN, Vl = sh.Vl, v0 = sh.v0;
  const std::string name = shard_name(forward ? "EmbeddingShardForward" : "EmbeddingShardBackward", sh) + "_C" +
                           std::to_string(C);
  SCOPED_TRACE(name);
  tc::Rng rng(tc::seed_of(name));
  const auto tokens = shard_ids(rng, sh, /*ignore=*/false);
  const auto wte = rng.uniform(Vl * C, -1, 1), dout = rng.uniform(N * C, -1, 1);  // wte: also dwte's start
  std::vector<float> ref = forward ? std::vector<float>(N * C) : wte;
  if (forward) {
    cpu::embedding_shard_forward(ref.data(), tokens.data(), wte.data(), N, C, Vl, v0);
  } else {
    cpu::embedding_shard_backward(ref.data(), dout.data(), tokens.data(), N, C, Vl, v0);
  }

  auto d_tokens = tc::to_device(s, tokens);
  auto d_dout = tc::to_device(s, dout);
  tc::DeviceArray<float> d_wte(Vl * C, s), d_out(N * C, s);
  tc::DeviceScratch scratch(forward ? 0 : kc::embedding_shard_backward_scratch_bytes(N, Vl), s);
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_wte.upload(wte);
    if (forward) {
      d_out.poison();
      kc::embedding_shard_forward(d_out.get(), d_tokens.get(), d_wte.get(), N, C, Vl, v0, s);
    } else {
      kc::embedding_shard_backward(d_wte.get(), d_dout.get(), d_tokens.get(), N, C, Vl, v0, scratch.get(), s);
    }
    kc::synchronize(s);
    cap.keep("result", forward ? d_out.download() : d_wte.download());
  });
  tc::expect_close(forward ? "out" : "dwte", got.get<float>("result"), ref, kTolExact);
}

#endif  // SSIAT_HAVE_CUDA

TEST_F(VocabParallelParity, EmbeddingShardForward) {
#if SSIAT_HAVE_CUDA
  for (const ShardShape sh : kShardShapes)
    for (const int64_t C : {int64_t{64}, int64_t{67}}) check_embedding_shard(sh, C, /*forward=*/true, s());
#endif
}

TEST_F(VocabParallelParity, EmbeddingShardBackward) {
#if SSIAT_HAVE_CUDA
  for (const ShardShape sh : kShardShapes)
    for (const int64_t C : {int64_t{64}, int64_t{67}}) check_embedding_shard(sh, C, /*forward=*/false, s());
#endif
}

TEST_F(VocabParallelParity, CeShardMax) {
#if SSIAT_HAVE_CUDA
  for (const ShardShape sh : kShardShapes) {
    const std::string name = shard_name("CeShardMax", sh);
    SCOPED_TRACE(name);
    tc::Rng rng(tc::seed_of(name));
    const auto logits = shard_columns(rng.uniform(kShardN * kShardV, -4, 4), sh);
    std::vector<float> ref(kShardN);
    cpu::ce_shard_max(ref.data(), logits.data(), kShardN, sh.Vl);
    auto d_logits = tc::to_device(s(), logits);
    tc::DeviceArray<float> d_max(kShardN, s());
    const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
      d_max.poison();
      kc::ce_shard_max(d_max.get(), d_logits.get(), kShardN, sh.Vl, s());
      kc::synchronize(s());
      cap.keep("rowmax", d_max.download());
    });
    tc::expect_close("rowmax", got.get<float>("rowmax"), ref, kTolExact);
  }
#endif
}

// R = 1 (a copy) and R = 3 with equal maxima on two ranks and -inf (an empty-looking rank).
TEST_F(VocabParallelParity, CeShardMaxCombine) {
#if SSIAT_HAVE_CUDA
  for (const int64_t R : {int64_t{1}, int64_t{3}}) {
    const std::string name = "CeShardMaxCombine_R" + std::to_string(R);
    SCOPED_TRACE(name);
    tc::Rng rng(tc::seed_of(name));
    auto gathered = rng.uniform(R * kShardN, -4, 4);
    gathered[0] = -INFINITY;
    if (R > 1) {
      gathered[kShardN + 1] = gathered[1];
      for (int64_t r = 0; r < R; r++) gathered[r * kShardN + 2] = -INFINITY;
    }
    std::vector<float> ref(kShardN);
    cpu::ce_shard_max_combine(ref.data(), gathered.data(), R, kShardN);
    auto d_gathered = tc::to_device(s(), gathered);
    tc::DeviceArray<float> d_max(kShardN, s());
    const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
      d_max.poison();
      kc::ce_shard_max_combine(d_max.get(), d_gathered.get(), R, kShardN, s());
      kc::synchronize(s());
      cap.keep("rowmax", d_max.download());
    });
    const auto gpu = got.get<float>("rowmax");
    ASSERT_EQ(gpu.size(), ref.size());
    for (int64_t n = 0; n < kShardN; n++)  // exact, infinities included (rel_l2 would give NaN)
      EXPECT_EQ(gpu[n], ref[n]) << "rowmax[" << n << "]";
  }
#endif
}

TEST_F(VocabParallelParity, CeShardSums) {
#if SSIAT_HAVE_CUDA
  for (const ShardShape sh : kShardShapes) {
    const std::string name = shard_name("CeShardSums", sh);
    SCOPED_TRACE(name);
    tc::Rng rng(tc::seed_of(name));
    const FullRows f = full_rows(rng, sh);
    const auto logits = shard_columns(f.logits, sh);
    std::vector<float> sum_ref(kShardN), xt_ref(kShardN);
    cpu::ce_shard_sums(sum_ref.data(), xt_ref.data(), logits.data(), f.targets.data(), f.rowmax.data(), kShardN,
                       sh.Vl, sh.v0);
    auto d_logits = tc::to_device(s(), logits);
    auto d_targets = tc::to_device(s(), f.targets);
    auto d_rowmax = tc::to_device(s(), f.rowmax);
    tc::DeviceArray<float> d_sum(kShardN, s()), d_xt(kShardN, s());
    const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
      d_sum.poison();
      d_xt.poison();
      kc::ce_shard_sums(d_sum.get(), d_xt.get(), d_logits.get(), d_targets.get(), d_rowmax.get(), kShardN, sh.Vl,
                        sh.v0, s());
      kc::synchronize(s());
      cap.keep("sumexp", d_sum.download());
      cap.keep("target_logit", d_xt.download());
    });
    tc::expect_close("sumexp", got.get<float>("sumexp"), sum_ref, kShardTolExp);
    tc::expect_close("target_logit", got.get<float>("target_logit"), xt_ref, kTolExact);
  }
#endif
}

TEST_F(VocabParallelParity, CeShardLoss) {
#if SSIAT_HAVE_CUDA
  const ShardShape sh{129, 500};
  const std::string name = shard_name("CeShardLoss", sh);
  tc::Rng rng(tc::seed_of(name));
  const FullRows f = full_rows(rng, sh);
  std::vector<float> ref(kShardN);
  cpu::ce_shard_loss(ref.data(), f.rowmax.data(), f.target_logit.data(), f.sumexp.data(), f.targets.data(), kShardN);
  auto d_rowmax = tc::to_device(s(), f.rowmax);
  auto d_xt = tc::to_device(s(), f.target_logit);
  auto d_sum = tc::to_device(s(), f.sumexp);
  auto d_targets = tc::to_device(s(), f.targets);
  tc::DeviceArray<float> d_loss(kShardN, s());
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_loss.poison();
    kc::ce_shard_loss(d_loss.get(), d_rowmax.get(), d_xt.get(), d_sum.get(), d_targets.get(), kShardN, s());
    kc::synchronize(s());
    cap.keep("losses", d_loss.download());
  });
  const auto gpu = got.get<float>("losses");
  tc::expect_close("losses", gpu, ref, kShardTolExp);
  for (int64_t n = 5; n < kShardN; n += 5) EXPECT_EQ(gpu[n], 0.0f) << "ignored row " << n;
#endif
}

TEST_F(VocabParallelParity, CeShardGrad) {
#if SSIAT_HAVE_CUDA
  constexpr float kDloss = 1.0f / kShardN;
  for (const ShardShape sh : kShardShapes) {
    const std::string name = shard_name("CeShardGrad", sh);
    SCOPED_TRACE(name);
    tc::Rng rng(tc::seed_of(name));
    const FullRows f = full_rows(rng, sh);
    const auto logits = shard_columns(f.logits, sh);
    std::vector<float> ref = logits;
    cpu::ce_shard_grad(ref.data(), f.targets.data(), f.rowmax.data(), f.sumexp.data(), kShardN, sh.Vl, sh.v0, kDloss);
    auto d_targets = tc::to_device(s(), f.targets);
    auto d_rowmax = tc::to_device(s(), f.rowmax);
    auto d_sum = tc::to_device(s(), f.sumexp);
    tc::DeviceArray<float> d_logits(kShardN * sh.Vl, s());
    const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
      d_logits.upload(logits);
      kc::ce_shard_grad(d_logits.get(), d_targets.get(), d_rowmax.get(), d_sum.get(), kShardN, sh.Vl, sh.v0, kDloss,
                        s());
      kc::synchronize(s());
      cap.keep("dlogits", d_logits.download());
    });
    tc::expect_close("dlogits", got.get<float>("dlogits"), ref, kShardTolExp);
  }
#endif
}

}  // namespace
