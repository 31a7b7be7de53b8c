// The CUDA runtime as the rest of ssiat sees it: devices, streams, memory, copies, the one
// bf16 cast. Declared for every build; in a build without CUDA (SSIAT_CUDA=OFF or no nvcc)
// compiled() is false, device_count() is 0 and everything else throws ssiat::Error saying so
// (kernels/cuda/no_cuda.cpp), so callers need no #ifdef.
//
// Contract: every failure throws ssiat::Error naming the call, the CUDA error and its cause;
// malloc_bytes names the byte count (never managed memory: cudaMalloc only). Copies to or from
// the host are synchronous with respect to the host; everything else is ordered on `s`.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/backend.h"

namespace ssiat::kernels::cuda {

bool compiled();                    // this build has the CUDA backend
int device_count();                 // devices the driver reports; 0 without driver or device
std::string device_name(int ordinal);  // "NVIDIA H200 (sm_90, 139.8 GiB)"
std::string runtime_versions();     // "CUDA runtime 13.0, driver 13.0, cuBLASLt 13.0.0"
int compute_capability(int ordinal);  // 90 for sm_90
double peak_bf16_tflops(int ordinal);  // dense bf16 tensor-core peak used for MFU (0 if unknown)
void set_device(int ordinal);

Stream stream_create();
void stream_destroy(Stream s);
void synchronize(Stream s);

void* malloc_bytes(int64_t bytes);  // cudaMalloc; throws naming the bytes and the free memory
void free_bytes(void* p);           // nullptr is fine; never throws
void memset_zero(void* p, int64_t bytes, Stream s);

enum class Copy { kHostToDevice, kDeviceToHost, kDeviceToDevice };
void copy_bytes(void* dst, const void* src, int64_t bytes, Copy dir, Stream s);

// out[i] = bf16_from_float(in[i]) on the device (round to nearest even).
void cast_to_bf16(bf16* out, const float* in, int64_t n, Stream s);

}  // namespace ssiat::kernels::cuda
