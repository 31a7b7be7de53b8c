// Linear layer without bias through BLAS: out = inp @ weight^T (nn.Linear / Hugging Face layout).
//
// Shapes: inp (N, C), weight (OC, C) row-major, out (N, OC).
// Contract: forward writes `=` into out. backward writes `=` into dinp and accumulates `+=`
// into dweight (gradient accumulation over micro-batches); dinp may be nullptr (skipped).
// Bits: the same for any thread count (a fixed tile grid, K never split; kernels/cpu/matmul.cpp),
// and fixed for a given BLAS core type (hardware class), which blas_core_name() reports.
// Backends: ssiat::kernels::cpu (OpenBLAS sgemm/dgemm), later ssiat::kernels::cuda.
#pragma once
#include <cstdint>

namespace ssiat::kernels::cpu {

template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, int64_t N, int64_t C, int64_t OC);

template <typename T>
void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, int64_t N,
                     int64_t C, int64_t OC);

// The core type whose kernels OpenBLAS runs ("Haswell", "Cooperlake", ...): recorded in run.json;
// a bit-exact replay on another CPU pins the same one with OPENBLAS_CORETYPE.
const char* blas_core_name();

}  // namespace ssiat::kernels::cpu
