// Parity of cuda::attention_decode with its CPU twin (kernels/attention_decode.h), in the manner of
// test_parity.cpp: the same seeded qkv on both backends; the GPU output is poisoned with NaN
// before each run and must satisfy ||gpu - cpu|| / ||cpu|| <= 1e-5 (relative L2 in double);
// two GPU runs from identical inputs give identical bits. Shapes cover T_ctx = 1, contexts that
// end just past a chunk of keys (1025) or span several (5000), GQA and MHA, and HS in
// {13, 64, 128, 256}. Host-only checks (no device needed) cover the entry's argument validation.
// Without the CUDA backend or a device the parity cases skip with the reason.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/attention_decode.h"
#include "kernels/check.h"
#include "tests/cuda/cuda_test_util.h"

namespace {

namespace kc = ssiat::kernels::cuda;
namespace cpu = ssiat::kernels::cpu;
namespace tc = ssiat::testing::cuda;

struct DecodeCase {
  const char* name;
  int64_t T, NH, NKV, HS;
};
void PrintTo(const DecodeCase& c, std::ostream* os) { *os << c.name; }  // ctest names, not bytes

// clang-format off
const DecodeCase kDecodeCases[] = {
    {"T1_Gqa_Hs64",       1,    8, 2, 64},
    {"T1_Mha_Hs128",      1,    4, 4, 128},
    {"T257_Gqa_Hs64",     257,  8, 2, 64},
    {"T257_Gqa_Hs128",    257,  8, 2, 128},
    {"T1025_Mha_Hs13",    1025, 3, 3, 13},
    {"T5000_Gqa_Hs64",    5000, 8, 2, 64},
    {"T5000_Mqa_Hs128",   5000, 4, 1, 128},
    {"T2049_Gqa_Hs256",   2049, 4, 2, 256},
};
// clang-format on

constexpr double kTol = 1e-5;

class CudaAttentionDecode : public tc::WithGpuStream<::testing::TestWithParam<DecodeCase>> {};

TEST_P(CudaAttentionDecode, MatchesCpu) {
  const DecodeCase& c = GetParam();
#if SSIAT_HAVE_CUDA
  const int64_t QKV = (c.NH + 2 * c.NKV) * c.HS;
  tc::Rng rng(tc::seed_of(c.name));
  const auto qkv = rng.uniform(c.T * QKV, -2, 2);
  std::vector<float> ref(c.NH * c.HS);
  cpu::attention_decode<float>(ref.data(), qkv.data(), c.T, c.NH, c.NKV, c.HS);

  auto d_qkv = tc::to_device(s(), qkv);
  tc::DeviceArray<float> d_out(c.NH * c.HS, s());
  const tc::Capture got = tc::run_twice([&](tc::Capture& cap) {
    d_out.poison();
    kc::attention_decode(d_out.get(), d_qkv.get(), c.T, c.NH, c.NKV, c.HS, s());
    kc::synchronize(s());
    cap.keep("out", d_out.download());
  });
  tc::expect_close("out", got.get<float>("out"), ref, kTol);
#else
  FAIL() << "unreachable: SetUp skips every case in a build without CUDA (" << c.name << ")";
#endif
}

INSTANTIATE_TEST_SUITE_P(Table, CudaAttentionDecode, ::testing::ValuesIn(kDecodeCases),
                         [](const ::testing::TestParamInfo<DecodeCase>& info) { return std::string(info.param.name); });

#if SSIAT_HAVE_CUDA
// Host-only: the entry refuses bad sizes and null pointers with an ssiat::Error before any launch.
TEST(CudaAttentionDecodeArgs, RejectsBadArguments) {
  float x = 0.0f;
  float* p = &x;  // never dereferenced: every call below fails validation first
  EXPECT_THROW(kc::attention_decode(p, p, 0, 2, 1, 64, nullptr), ssiat::Error);    // T_ctx = 0
  EXPECT_THROW(kc::attention_decode(p, p, 4, 6, 4, 64, nullptr), ssiat::Error);    // NH % NKV != 0
  EXPECT_THROW(kc::attention_decode(p, p, 4, 2, 1, 0, nullptr), ssiat::Error);     // HS = 0
  EXPECT_THROW(kc::attention_decode(nullptr, p, 4, 2, 1, 64, nullptr), ssiat::Error);
  EXPECT_THROW(kc::attention_decode(p, nullptr, 4, 2, 1, 64, nullptr), ssiat::Error);
  try {
    kc::attention_decode(p, p, 4, 2, 1, 257, nullptr);
    ADD_FAILURE() << "HS=257 accepted";
  } catch (const ssiat::Error& e) {
    EXPECT_NE(std::string(e.what()).find("HS=257"), std::string::npos) << e.what();
  }
}
#endif  // SSIAT_HAVE_CUDA

}  // namespace
