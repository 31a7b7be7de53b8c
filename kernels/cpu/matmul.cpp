// CPU linear layer through OpenBLAS (contract in kernels/matmul.h):
//   forward   out (N, OC)     = inp (N, C) @ weight (OC, C)^T           (beta = 0: writes `=`)
//   backward  dinp (N, C)     = dout (N, OC) @ weight (OC, C)           (beta = 0: writes `=`)
//             dweight (OC, C) += dout (N, OC)^T @ inp (N, C)            (beta = 1: accumulates)
// OpenBLAS threads GEMM over the M and N dimensions only (never K), so each output element is the
// same dot product for any BLAS thread count. Degenerate shapes (a zero dimension) never reach
// BLAS, whose argument checks reject leading dimensions of 0.
#include "kernels/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <climits>

#include "kernels/check.h"

namespace ssiat::kernels::cpu {
namespace {

void check_dims(const char* op, int64_t N, int64_t C, int64_t OC) {
  SSIAT_CHECK(N >= 0 && C >= 0 && OC >= 0)
      << op << ": negative shape N=" << N << " C=" << C << " OC=" << OC;
  SSIAT_CHECK(N <= INT_MAX && C <= INT_MAX && OC <= INT_MAX)
      << op << ": shape N=" << N << " C=" << C << " OC=" << OC << " exceeds the BLAS int range";
}

// C (M, Nc) = alpha * op(A) @ op(B) + beta * C, row-major, through the matching BLAS routine.
template <typename T>
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t Nc, int64_t K, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

template <>
void gemm<float>(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t Nc, int64_t K,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                 int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(Nc), static_cast<int>(K),
              1.0f, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

template <>
void gemm<double>(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t Nc, int64_t K,
                  const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
                  int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(Nc), static_cast<int>(K),
              1.0, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

}  // namespace

template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, int64_t N, int64_t C, int64_t OC) {
  check_dims("matmul_forward", N, C, OC);
  if (N == 0 || OC == 0) return;
  if (C == 0) {  // empty sum
    std::fill(out, out + N * OC, T(0));
    return;
  }
  // out (N, OC) = inp (N, C) @ weight^T (C, OC)
  gemm<T>(CblasNoTrans, CblasTrans, N, OC, C, inp, C, weight, C, T(0), out, OC);
}

template <typename T>
void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, int64_t N,
                     int64_t C, int64_t OC) {
  check_dims("matmul_backward", N, C, OC);
  if (N == 0 || C == 0) return;
  if (dinp != nullptr) {
    if (OC == 0) {
      std::fill(dinp, dinp + N * C, T(0));
    } else {
      // dinp (N, C) = dout (N, OC) @ weight (OC, C)
      gemm<T>(CblasNoTrans, CblasNoTrans, N, C, OC, dout, OC, weight, C, T(0), dinp, C);
    }
  }
  if (OC == 0) return;
  // dweight (OC, C) += dout^T (OC, N) @ inp (N, C)
  gemm<T>(CblasTrans, CblasNoTrans, OC, C, N, dout, OC, inp, C, T(1), dweight, C);
}

template void matmul_forward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t);
template void matmul_forward<double>(double*, const double*, const double*, int64_t, int64_t,
                                     int64_t);
template void matmul_backward<float>(float*, float*, const float*, const float*, const float*,
                                     int64_t, int64_t, int64_t);
template void matmul_backward<double>(double*, double*, const double*, const double*, const double*,
                                      int64_t, int64_t, int64_t);

}  // namespace ssiat::kernels::cpu
