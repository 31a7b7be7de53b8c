// Where a model runs and in what precision: DeviceKind and Precision (recipe keys train.device
// and train.precision), Device (kind, ordinal, stream) and Backend, the one object the ops
// (core/ops.h) take: the device plus what its kernels need that outlives one call — on CUDA the
// stream, the cuBLASLt context and one scratch buffer, each allocated once at start-up.
//
// Precision (DESIGN "Backends and precision"): master weights, gradients and moments are T
// (f32; f64 on the CPU for gradient checks) on every device. kBf16 (CUDA only) adds one bf16
// working copy of the weights at the same offsets, which the GEMMs read and the AdamW pass
// refreshes; activations, statistics and gradients stay f32.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kernels/backend.h"

namespace ssiat {

enum class DeviceKind { kCpu, kCuda };
enum class Precision { kF32, kBf16 };

// "cpu", "cuda" (the recipe's spelling)
constexpr std::string_view device_kind_name(DeviceKind k) { return k == DeviceKind::kCuda ? "cuda" : "cpu"; }
// The inverse of device_kind_name; nullopt for any other spelling.
constexpr std::optional<DeviceKind> parse_device_kind(std::string_view s) {
  if (s == "cpu") return DeviceKind::kCpu;
  if (s == "cuda") return DeviceKind::kCuda;
  return std::nullopt;
}
// "f32", "bf16" (the recipe's spelling)
constexpr std::string_view precision_name(Precision p) { return p == Precision::kBf16 ? "bf16" : "f32"; }

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int ordinal = 0;
  kernels::cuda::Stream stream = nullptr;  // CUDA: the stream every op of this device runs on
};

namespace kernels::cuda {
struct Gemm;
}

class Backend {
 public:
  // The CPU: nothing to allocate.
  Backend() = default;
  // One CUDA device: selects it, creates its stream. Throws ssiat::Error with one line when the
  // build has no CUDA backend or no device `ordinal` exists.
  static std::unique_ptr<Backend> cuda(int ordinal, Precision precision);
  static std::unique_ptr<Backend> create(DeviceKind kind, int ordinal, Precision precision);
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  const Device& device() const { return device_; }
  DeviceKind kind() const { return device_.kind; }
  kernels::cuda::Stream stream() const { return device_.stream; }
  Precision precision() const { return precision_; }
  // "cpu" or "cuda:0 NVIDIA H200 (sm_90, 139.8 GiB)".
  std::string describe() const;

  // CUDA start-up sizing (no-ops on the CPU): the GEMM context with room to round
  // `gemm_scratch_elems` operands to bf16, and `scratch_bytes` of op scratch. Only ever grows.
  void reserve(int64_t gemm_scratch_elems, int64_t scratch_bytes);
  kernels::cuda::Gemm& gemm() const;
  kernels::cuda::Scratch scratch() const { return {scratch_, scratch_bytes_}; }
  void synchronize() const;

  // The CPU backend, for callers that never leave the host (tests, tools).
  static const Backend& host();

 private:
  Device device_;
  Precision precision_ = Precision::kF32;
  kernels::cuda::Gemm* gemm_ = nullptr;
  int64_t gemm_elems_ = -1;
  void* scratch_ = nullptr;
  int64_t scratch_bytes_ = 0;
};

}  // namespace ssiat
