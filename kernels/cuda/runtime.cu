// The CUDA runtime API of kernels/device.h for a build with the CUDA backend (the contract is in
// that header; kernels/cuda/no_cuda.cpp is the twin for builds without CUDA).
//
// Invariants:
// - device_count() never throws: any failure of cudaGetDeviceCount (no driver, stub libcuda, no
//   device, driver too old, ...) means 0 devices, so GPU tests can ask it and GTEST_SKIP.
// - A CUDA error that a call deliberately ignores (device_count, free_bytes, stream_destroy, a
//   failed cudaMalloc) is cleared with cudaGetLastError so that the next SSIAT_LAUNCH_CHECK does
//   not report it against an innocent kernel.
// - Host<->device copies are cudaMemcpyAsync on `s` followed by cudaStreamSynchronize(s): they
//   are ordered after the work already queued on `s` (a plain cudaMemcpy would use the legacy
//   stream, which does not wait for the cudaStreamNonBlocking streams made here) and the host
//   memory, pinned or pageable, may be reused as soon as they return.
// - malloc_bytes uses cudaMalloc only (never managed memory).
#include <algorithm>
#include <iomanip>
#include <sstream>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cublaslt_api.h"
#include "kernels/device.h"

namespace ssiat::kernels::cuda {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr int kCastThreads = 256;
constexpr unsigned int kMaxGridStrideBlocks = 8192;  // grid-stride kernels: enough to fill any GPU

// "13.0" from 13000 (cudaRuntimeGetVersion / cudaDriverGetVersion encode 1000*major + 10*minor).
std::string cuda_version_text(int v) {
  std::ostringstream os;
  os << v / 1000 << "." << (v % 1000) / 10;
  return os.str();
}

void check_ordinal(const char* op, int ordinal) {
  const int n = device_count();
  SSIAT_CHECK(ordinal >= 0 && ordinal < n)
      << op << ": device ordinal " << ordinal << " is outside [0, " << n << ") (devices found: " << n << ")";
}

__global__ void cast_to_bf16_kernel(__nv_bfloat16* __restrict__ out,  // (n)
                                    const float* __restrict__ in,     // (n)
                                    int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = __float2bfloat16_rn(in[i]);
}

void launch_cast_to_bf16(bf16* out, const float* in, int64_t n, Stream s) {
  const unsigned int blocks = std::min(detail::grid_1d(n, kCastThreads), kMaxGridStrideBlocks);
  cast_to_bf16_kernel<<<blocks, kCastThreads, 0, s>>>(detail::as_nv(out), in, n);
  SSIAT_LAUNCH_CHECK();
}

}  // namespace

bool compiled() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver / no device: not an error for the caller
    return 0;
  }
  return n;
}

std::string device_name(int ordinal) {
  check_ordinal("device_name", ordinal);
  cudaDeviceProp prop{};
  SSIAT_GPU_CHECK(cudaGetDeviceProperties(&prop, ordinal));
  std::ostringstream os;
  os << prop.name << " (sm_" << prop.major << prop.minor << ", " << std::fixed << std::setprecision(1)
     << static_cast<double>(prop.totalGlobalMem) / kGiB << " GiB)";
  return os.str();
}

std::string runtime_versions() {
  // Never throws: the driver version is 0 ("none") when no driver is installed.
  int runtime = 0, driver = 0;
  const bool have_runtime = cudaRuntimeGetVersion(&runtime) == cudaSuccess;
  const bool have_driver = cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0;
  (void)cudaGetLastError();
  std::ostringstream os;
  os << "CUDA runtime " << (have_runtime ? cuda_version_text(runtime) : std::string("unknown")) << ", driver "
     << (have_driver ? cuda_version_text(driver) : std::string("none")) << ", cuBLASLt "
     << lt::version_text();
  return os.str();
}

int compute_capability(int ordinal) {
  check_ordinal("compute_capability", ordinal);
  int major = 0, minor = 0;
  SSIAT_GPU_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, ordinal));
  SSIAT_GPU_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, ordinal));
  return major * 10 + minor;
}

double peak_bf16_tflops(int ordinal) {
  // Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, for MFU. The sm_90
  // form factors share the compute capability, so the marketing name tells them apart.
  const int cc = compute_capability(ordinal);
  const std::string name = device_name(ordinal);
  const auto has = [&name](const char* s) { return name.find(s) != std::string::npos; };
  if (cc == 90) {
    if (has("H100") && has("PCIe")) return 756.0;
    if ((has("H100") || has("H200")) && has("NVL")) return 835.5;
    if (has("H100") || has("H200") || has("GH200")) return 989.4;  // SXM and Grace Hopper
    return 0.0;
  }
  if (cc == 80 && has("A100")) return 312.0;
  return 0.0;  // unknown: MFU is not reported
}

void set_device(int ordinal) {
  check_ordinal("set_device", ordinal);
  SSIAT_GPU_CHECK(cudaSetDevice(ordinal));
}

Stream stream_create() {
  cudaStream_t s = nullptr;
  SSIAT_GPU_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

void stream_destroy(Stream s) {
  // Never throws (called from destructors); nullptr (the legacy stream) is not destroyed.
  if (s == nullptr) return;
  if (cudaStreamDestroy(s) != cudaSuccess) (void)cudaGetLastError();
}

void synchronize(Stream s) { SSIAT_GPU_CHECK(cudaStreamSynchronize(s)); }

void* malloc_bytes(int64_t bytes) {
  SSIAT_CHECK(bytes >= 0) << "malloc_bytes: negative size " << bytes << " bytes";
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, static_cast<size_t>(bytes));
  if (e == cudaSuccess) return p;
  (void)cudaGetLastError();
  size_t free_b = 0, total_b = 0;
  const bool have_info = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
  (void)cudaGetLastError();
  int dev = -1;
  (void)cudaGetDevice(&dev);
  (void)cudaGetLastError();
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << "malloc_bytes: cudaMalloc of " << bytes << " bytes ("
     << static_cast<double>(bytes) / kGiB << " GiB) on device " << dev << " failed: " << detail::gpu_status_text(e);
  if (have_info)
    os << "; " << static_cast<double>(free_b) / kGiB << " GiB free of " << static_cast<double>(total_b) / kGiB
       << " GiB";
  throw Error(os.str());
}

void free_bytes(void* p) {
  if (p == nullptr) return;
  if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
}

void memset_zero(void* p, int64_t bytes, Stream s) {
  SSIAT_CHECK(bytes >= 0) << "memset_zero: negative size " << bytes << " bytes";
  if (bytes == 0) return;
  SSIAT_CHECK(p != nullptr) << "memset_zero: null pointer for " << bytes << " bytes";
  SSIAT_GPU_CHECK(cudaMemsetAsync(p, 0, static_cast<size_t>(bytes), s));
}

void copy_bytes(void* dst, const void* src, int64_t bytes, Copy dir, Stream s) {
  SSIAT_CHECK(bytes >= 0) << "copy_bytes: negative size " << bytes << " bytes";
  if (bytes == 0) return;
  SSIAT_CHECK(dst != nullptr && src != nullptr) << "copy_bytes: null pointer (dst=" << dst << ", src=" << src
                                                << ") for " << bytes << " bytes";
  const size_t n = static_cast<size_t>(bytes);
  switch (dir) {
    case Copy::kHostToDevice:
      SSIAT_GPU_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s));
      SSIAT_GPU_CHECK(cudaStreamSynchronize(s));
      return;
    case Copy::kDeviceToHost:
      SSIAT_GPU_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s));
      SSIAT_GPU_CHECK(cudaStreamSynchronize(s));
      return;
    case Copy::kDeviceToDevice:
      SSIAT_GPU_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s));
      return;
  }
  SSIAT_CHECK(false) << "copy_bytes: unknown direction " << static_cast<int>(dir);
}

void cast_to_bf16(bf16* out, const float* in, int64_t n, Stream s) {
  SSIAT_CHECK(n >= 0) << "cast_to_bf16: negative size n=" << n;
  if (n == 0) return;
  SSIAT_CHECK(out != nullptr && in != nullptr) << "cast_to_bf16: null pointer for n=" << n;
  launch_cast_to_bf16(out, in, n, s);
}

}  // namespace ssiat::kernels::cuda
