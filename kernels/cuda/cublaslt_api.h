// cuBLASLt loaded at first use with dlopen ("libcublasLt.so.<major>", the major version we were
// compiled against) instead of linked: a process that never creates a CUDA Gemm (every CPU run)
// never maps the 540 MB library, which cost about 210 MB of resident memory at start-up when
// linked. Internal to kernels/cuda.
//
// Contract: lt::api() loads the library and every symbol once (thread-safe; a failure throws
// ssiat::Error naming the library, dlerror() and the LD_LIBRARY_PATH remedy, and is retried by the
// next call). lt::Create(...), lt::Matmul(...), ... forward to the loaded cublasLt<Name>.
// lt::version_text() never throws ("13.1.0", or "not found: <why>").
#pragma once

#include <cublasLt.h>

#include <string>

namespace ssiat::kernels::cuda::lt {

// X(name): the cuBLASLt entry points kernels/cuda uses (cublasLt<name>).
#define SSIAT_LT_FUNCTIONS(X)                                                                          \
  X(Create) X(Destroy) X(GetVersion) X(MatrixLayoutCreate) X(MatrixLayoutDestroy) X(MatmulDescCreate) \
  X(MatmulDescDestroy) X(MatmulDescSetAttribute) X(MatmulPreferenceCreate) X(MatmulPreferenceDestroy)  \
  X(MatmulPreferenceSetAttribute) X(MatmulAlgoGetHeuristic) X(MatmulAlgoConfigGetAttribute) X(Matmul)

struct Api {
#define SSIAT_LT_POINTER(name) decltype(&::cublasLt##name) name = nullptr;
  SSIAT_LT_FUNCTIONS(SSIAT_LT_POINTER)
#undef SSIAT_LT_POINTER
};

const Api& api();
std::string version_text();

#define SSIAT_LT_FORWARD(name)                    \
  template <typename... Args>                     \
  auto name(Args... args) {                       \
    return api().name(args...);                   \
  }
SSIAT_LT_FUNCTIONS(SSIAT_LT_FORWARD)
#undef SSIAT_LT_FORWARD

}  // namespace ssiat::kernels::cuda::lt
