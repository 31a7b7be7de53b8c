// Types every backend-neutral kernel header shares: the bf16 storage type, the CUDA stream
// handle (declared, so headers need no CUDA include) and the scratch memory some CUDA ops take.
//
// bf16 is storage only (1 sign, 8 exponent, 7 mantissa bits; the top half of an IEEE f32):
// bf16_from_float rounds to nearest even and turns every NaN into the canonical NaN 0x7fff, as
// CUDA's __float2bfloat16_rn does (cuda_bf16.hpp's host path; cvt.rn.bf16.f32 on sm_80+), so
// host and device conversions give the same bits.
#pragma once
#include <cstdint>
#include <cstring>

struct CUstream_st;  // cudaStream_t is CUstream_st*

namespace ssiat::kernels {

struct bf16 {
  uint16_t bits;  // trivial type: buffers of bf16 are zeroed with memset
};

inline bf16 bf16_from_float(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{0x7fff};  // canonical NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return bf16{static_cast<uint16_t>(u >> 16)};
}

inline float float_from_bf16(bf16 b) {
  const uint32_t u = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

namespace cuda {
using Stream = CUstream_st*;  // nullptr is the legacy default stream

// Device memory an op may use for its intermediate results (partial sums, sort keys): the
// caller owns it (allocated once at start-up); each op that needs some says how many bytes
// (<op>_scratch_bytes) and its entry point checks that `bytes` is enough.
struct Scratch {
  void* ptr = nullptr;
  int64_t bytes = 0;
};
}  // namespace cuda

}  // namespace ssiat::kernels
