// Backend: the device, its stream, GEMM context and scratch (contract in core/device.h).
#include "core/device.h"

#include "core/error.h"
#include "kernels/device.h"
#include "kernels/matmul.h"

namespace ssiat {

std::unique_ptr<Backend> Backend::cuda(int ordinal, Precision precision) {
  namespace cu = kernels::cuda;
  if (!cu::compiled())
    throw ConfigError("train.device = \"cuda\": this ssiat build has no CUDA backend (configured with SSIAT_CUDA=OFF "
                      "or without nvcc); rebuild with nvcc on PATH, or use train.device = \"cpu\"");
  const int count = cu::device_count();
  if (ordinal < 0 || ordinal >= count)
    throw ConfigError("train.device = \"cuda\": no CUDA device " + std::to_string(ordinal) + " (the driver reports " +
                      std::to_string(count) + ")");
  cu::set_device(ordinal);
  auto be = std::unique_ptr<Backend>(new Backend());
  be->device_ = Device{DeviceKind::kCuda, ordinal, cu::stream_create()};
  be->precision_ = precision;
  return be;
}

std::unique_ptr<Backend> Backend::create(DeviceKind kind, int ordinal, Precision precision) {
  if (kind == DeviceKind::kCuda) return cuda(ordinal, precision);
  if (precision != Precision::kF32)
    throw ConfigError("train.precision = \"" + std::string(precision_name(precision)) +
                      "\" needs train.device = \"cuda\" (the CPU trains in f32)");
  return std::make_unique<Backend>();
}

Backend::~Backend() {
  if (device_.kind != DeviceKind::kCuda) return;
  try {
    kernels::cuda::synchronize(device_.stream);
  } catch (const Error&) {
    // a failed device reports at its last op; nothing more to say while tearing down
  }
  kernels::cuda::gemm_destroy(gemm_);
  kernels::cuda::free_bytes(scratch_);
  kernels::cuda::stream_destroy(device_.stream);
}

std::string Backend::describe() const {
  if (device_.kind == DeviceKind::kCpu) return "cpu";
  return "cuda:" + std::to_string(device_.ordinal) + " " + kernels::cuda::device_name(device_.ordinal);
}

void Backend::reserve(int64_t gemm_scratch_elems, int64_t scratch_bytes) {
  if (device_.kind != DeviceKind::kCuda) return;
  if (gemm_scratch_elems > gemm_elems_) {
    // GEMMs queued on the stream may still read the old workspace and bf16 scratch.
    kernels::cuda::synchronize(device_.stream);
    kernels::cuda::gemm_destroy(gemm_);
    gemm_ = nullptr;
    gemm_ = kernels::cuda::gemm_create(device_.stream, gemm_scratch_elems);
    gemm_elems_ = gemm_scratch_elems;
  }
  if (scratch_bytes > scratch_bytes_) {
    kernels::cuda::synchronize(device_.stream);
    kernels::cuda::free_bytes(scratch_);
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    try {
      scratch_ = kernels::cuda::malloc_bytes(scratch_bytes);
    } catch (const Error& e) {
      throw ResourceError(e.what());
    }
    scratch_bytes_ = scratch_bytes;
  }
}

kernels::cuda::Gemm& Backend::gemm() const {
  SSIAT_CHECK(gemm_ != nullptr) << "CUDA GEMM context used before Backend::reserve()";
  return *gemm_;
}

void Backend::synchronize() const {
  if (device_.kind == DeviceKind::kCuda) kernels::cuda::synchronize(device_.stream);
}

const Backend& Backend::host() {
  static const Backend cpu;
  return cpu;
}

}  // namespace ssiat
