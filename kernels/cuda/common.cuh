// Shared by every kernels/cuda/*.cu file: the one check-macro family for CUDA, cuBLAS(Lt),
// cuDNN and NCCL status codes, bf16 conversions and launch-size helpers.
//
// SSIAT_GPU_CHECK(expr) evaluates a library call once and, unless it returned success, throws
// ssiat::Error "<library> error <code> (<name>: <description>) in `expr` at file:line". The
// library is chosen by the status type (overloads of detail::gpu_status_ok/_text below; cuDNN
// and NCCL add theirs where their headers are included). SSIAT_LAUNCH_CHECK() checks the last
// kernel launch. Each .cu file is laid out ggml's way: __global__ kernel -> launcher (grid
// choice, launch check) -> entry point (validates shapes and pointers, then calls the launcher).
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <sstream>
#include <string>

#include "kernels/backend.h"
#include "kernels/check.h"

namespace ssiat::kernels::cuda::detail {

inline bool gpu_status_ok(cudaError_t e) { return e == cudaSuccess; }
inline std::string gpu_status_text(cudaError_t e) {
  return std::string("CUDA error ") + std::to_string(static_cast<int>(e)) + " (" + cudaGetErrorName(e) + ": " +
         cudaGetErrorString(e) + ")";
}
inline bool gpu_status_ok(cublasStatus_t e) { return e == CUBLAS_STATUS_SUCCESS; }
// Named here rather than by cublasLtGetStatusName: cuBLASLt is loaded on demand (cublaslt_api.h).
inline std::string gpu_status_text(cublasStatus_t e) {
  const char* name = "unknown status";
  switch (e) {
    case CUBLAS_STATUS_SUCCESS: name = "CUBLAS_STATUS_SUCCESS"; break;
    case CUBLAS_STATUS_NOT_INITIALIZED: name = "CUBLAS_STATUS_NOT_INITIALIZED"; break;
    case CUBLAS_STATUS_ALLOC_FAILED: name = "CUBLAS_STATUS_ALLOC_FAILED"; break;
    case CUBLAS_STATUS_INVALID_VALUE: name = "CUBLAS_STATUS_INVALID_VALUE"; break;
    case CUBLAS_STATUS_ARCH_MISMATCH: name = "CUBLAS_STATUS_ARCH_MISMATCH"; break;
    case CUBLAS_STATUS_MAPPING_ERROR: name = "CUBLAS_STATUS_MAPPING_ERROR"; break;
    case CUBLAS_STATUS_EXECUTION_FAILED: name = "CUBLAS_STATUS_EXECUTION_FAILED"; break;
    case CUBLAS_STATUS_INTERNAL_ERROR: name = "CUBLAS_STATUS_INTERNAL_ERROR"; break;
    case CUBLAS_STATUS_NOT_SUPPORTED: name = "CUBLAS_STATUS_NOT_SUPPORTED"; break;
    case CUBLAS_STATUS_LICENSE_ERROR: name = "CUBLAS_STATUS_LICENSE_ERROR"; break;
  }
  return std::string("cuBLAS error ") + std::to_string(static_cast<int>(e)) + " (" + name + ")";
}

[[noreturn]] inline void gpu_fail(const std::string& status, const char* expr, const char* file, int line) {
  std::ostringstream os;
  os << status << " in `" << expr << "` at " << file << ":" << line;
  throw ::ssiat::Error(os.str());
}

// Blocks for a 1-D grid over n items with `threads` per block (64-bit n; at most 2^31-1 blocks).
inline unsigned int grid_1d(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  SSIAT_CHECK(blocks < (int64_t{1} << 31)) << "grid of " << blocks << " blocks is too large";
  return static_cast<unsigned int>(blocks < 1 ? 1 : blocks);
}

inline __nv_bfloat16* as_nv(bf16* p) { return reinterpret_cast<__nv_bfloat16*>(p); }
inline const __nv_bfloat16* as_nv(const bf16* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }

}  // namespace ssiat::kernels::cuda::detail

#define SSIAT_GPU_CHECK(expr)                                                                    \
  do {                                                                                           \
    const auto ssiat_status_ = (expr);                                                           \
    if (!::ssiat::kernels::cuda::detail::gpu_status_ok(ssiat_status_))                           \
      ::ssiat::kernels::cuda::detail::gpu_fail(::ssiat::kernels::cuda::detail::gpu_status_text(ssiat_status_), \
                                               #expr, __FILE__, __LINE__);                       \
  } while (0)

#define SSIAT_LAUNCH_CHECK() SSIAT_GPU_CHECK(cudaGetLastError())
