// Linear layer without bias through BLAS: out = inp @ weight^T (nn.Linear / Hugging Face layout).
//
// Shapes: inp (N, C), weight (OC, C) row-major, out (N, OC).
// Contract: forward writes `=` into out. backward writes `=` into dinp and accumulates `+=`
// into dweight (gradient accumulation over micro-batches); dinp may be nullptr (skipped).
// Bits: the same for any thread count (a fixed tile grid, K never split; kernels/cpu/matmul.cpp),
// and fixed for a given BLAS core type (hardware class), which blas_core_name() reports.
// Backends: ssiat::kernels::cpu (OpenBLAS sgemm/dgemm); ssiat::kernels::cuda (cuBLASLt), with
// f32 operands (TF32 off: the parity path) or bf16 operands (a bf16 weight copy; inp and dout
// rounded to bf16 in the Gemm's own scratch), always f32 accumulation, f32 out, dinp and dweight.
// CUDA bits: one algorithm pinned per shape (chosen once, kept in the Gemm), never split-K
// reductions, so two runs on one device and build give identical bits.
#pragma once
#include <cstdint>

#include "kernels/backend.h"

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

namespace ssiat::kernels::cuda {

// cuBLASLt handle, its workspace, the per-shape algorithm cache and the bf16 scratch used to
// round inp/dout: created once at start-up for a stream, sized for the largest GEMM
// (max_rows * max_cols_total >= N*C + N*OC of every call made with bf16 weights).
struct Gemm;
Gemm* gemm_create(Stream s, int64_t bf16_scratch_elems);
void gemm_destroy(Gemm* g);  // nullptr is fine

void matmul_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC, Gemm& g);
void matmul_forward(float* out, const float* inp, const bf16* weight, int64_t N, int64_t C, int64_t OC, Gemm& g);
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     int64_t N, int64_t C, int64_t OC, Gemm& g);
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const bf16* weight,
                     int64_t N, int64_t C, int64_t OC, Gemm& g);

}  // namespace ssiat::kernels::cuda
