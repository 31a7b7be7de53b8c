// Linear layer without bias through BLAS: out = inp @ weight^T (nn.Linear / Hugging Face layout).
//
// Shapes: inp (N, C), weight (OC, C) row-major, out (N, OC).
// Contract: forward writes `=` into out. backward writes `=` into dinp and accumulates `+=`
// into dweight (gradient accumulation over micro-batches); dinp may be nullptr (skipped).
// Backends: ssiat::kernels::cpu (OpenBLAS sgemm/dgemm), later ssiat::kernels::cuda.
#pragma once
#include <cstdint>

namespace ssiat::kernels::cpu {

template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, int64_t N, int64_t C, int64_t OC);

template <typename T>
void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, int64_t N,
                     int64_t C, int64_t OC);

}  // namespace ssiat::kernels::cpu
