// The CUDA runtime API of kernels/device.h (and the GEMM context of kernels/matmul.h) in a build
// without the CUDA backend: compiled() is false, device_count() is 0, and every other call throws
// one line saying how to get CUDA. (core/ops.cpp never names a CUDA op in such a build.)
#include <string>

#include "kernels/check.h"
#include "kernels/device.h"
#include "kernels/matmul.h"

namespace ssiat::kernels::cuda {
namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw Error(std::string(what) +
              ": this ssiat build has no CUDA backend (configured with SSIAT_CUDA=OFF or without nvcc); "
              "rebuild with nvcc on PATH or -DSSIAT_CUDA=ON");
}
}  // namespace

bool compiled() { return false; }
int device_count() { return 0; }
std::string device_name(int) { no_cuda("device_name"); }
std::string runtime_versions() { return "no CUDA backend in this build"; }
int compute_capability(int) { no_cuda("compute_capability"); }
double peak_bf16_tflops(int) { return 0.0; }
void set_device(int) { no_cuda("set_device"); }
Stream stream_create() { no_cuda("stream_create"); }
void stream_destroy(Stream) {}
void synchronize(Stream) { no_cuda("synchronize"); }
void* malloc_bytes(int64_t) { no_cuda("malloc_bytes"); }
void free_bytes(void*) {}
void memset_zero(void*, int64_t, Stream) { no_cuda("memset_zero"); }
void copy_bytes(void*, const void*, int64_t, Copy, Stream) { no_cuda("copy_bytes"); }
void cast_to_bf16(bf16*, const float*, int64_t, Stream) { no_cuda("cast_to_bf16"); }
Gemm* gemm_create(Stream, int64_t) { no_cuda("gemm_create"); }
void gemm_destroy(Gemm*) {}

}  // namespace ssiat::kernels::cuda
