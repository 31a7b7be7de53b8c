// CPU linear layer through OpenBLAS (contract in kernels/matmul.h):
//   forward   out (N, OC)     = inp (N, C) @ weight (OC, C)^T           (beta = 0: writes `=`)
//   backward  dinp (N, C)     = dout (N, OC) @ weight (OC, C)           (beta = 0: writes `=`)
//             dweight (OC, C) += dout (N, OC)^T @ inp (N, C)            (beta = 1: accumulates)
//
// Thread-count independence by construction (DESIGN invariant 4): every GEMM C (M, Nc) is cut
// into a grid of output tiles that depends on the shape alone, never on the thread count
// (tile_grid below); the reduction dimension K is never split. Each tile is one single-threaded
// BLAS call, and our OpenMP team hands out whole tiles. OpenBLAS's own threading is never used:
// its partition of M and N depends on the thread count, and its micro-kernels treat edge blocks
// differently from inner ones on some core types (OPENBLAS_CORETYPE=Haswell), so a threaded call
// gives other bits for 1 and 2 threads. Which kernel OpenBLAS picks for the core type still
// matters: that is the hardware class, recorded in run.json (blas_core).
//
// Single-threaded BLAS: OpenBLAS's OpenMP build sizes each call by omp_get_max_threads() of the
// calling task; every tile is computed inside our parallel region after omp_set_num_threads(1),
// which sets that per-task value for the region's implicit task only (the caller's is untouched).
// Degenerate shapes (a zero dimension) never reach BLAS, whose argument checks reject leading
// dimensions of 0.
#include "kernels/matmul.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <climits>

#include "kernels/check.h"

namespace ssiat::kernels::cpu {
namespace {

// Output tiles: at most kMaxTile x kMaxTile, halved (the longer side first) until the grid has
// kMinTiles tiles or the tiles are kMinTile on a side. Large tiles keep OpenBLAS's packing
// (O(K·(TM+TN)) per tile) small against the O(K·TM·TN) work; kMinTiles keeps small GEMMs (a
// (256, 512) dweight) from running on one thread. Measured on ko-tiny and a GPT-2-small-sized
// Llama (tools/bench): within 2% of OpenBLAS's own threading; fixed 256 x 256 tiles lost 4%.
constexpr int64_t kMaxTile = 512;
constexpr int64_t kMinTile = 64;
constexpr int64_t kMinTiles = 8;

struct TileGrid {
  int64_t tm, tn;          // tile shape (the last row and column of tiles may be smaller)
  int64_t tiles_m, tiles_n;
};

// A function of (M, Nc) only: the same grid, hence the same bits, for every thread count.
TileGrid tile_grid(int64_t M, int64_t Nc) {
  int64_t tm = std::min(kMaxTile, M), tn = std::min(kMaxTile, Nc);
  auto tiles = [&] { return ((M + tm - 1) / tm) * ((Nc + tn - 1) / tn); };
  while (tiles() < kMinTiles && std::max(tm, tn) > kMinTile) {
    if (tm >= tn) tm = (tm + 1) / 2;
    else tn = (tn + 1) / 2;
  }
  return {tm, tn, (M + tm - 1) / tm, (Nc + tn - 1) / tn};
}

void check_dims(const char* op, int64_t N, int64_t C, int64_t OC) {
  SSIAT_CHECK(N >= 0 && C >= 0 && OC >= 0)
      << op << ": negative shape N=" << N << " C=" << C << " OC=" << OC;
  SSIAT_CHECK(N <= INT_MAX && C <= INT_MAX && OC <= INT_MAX)
      << op << ": shape N=" << N << " C=" << C << " OC=" << OC << " exceeds the BLAS int range";
}

// C (M, Nc) = op(A) @ op(B) + beta * C, row-major, through the matching BLAS routine.
void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t Nc, int64_t K, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(Nc), static_cast<int>(K), 1.0f, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t Nc, int64_t K, const double* A,
               int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(Nc), static_cast<int>(K), 1.0, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

// The same product over the tile grid of (M, Nc). Row-major storage: op(A) is (M, K), so A is (M, K)
// untransposed or (K, M) transposed; op(B) is (K, Nc), so B is (K, Nc) or (Nc, K).
template <typename T>
void gemm_tiled(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t Nc, int64_t K, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  const TileGrid g = tile_grid(M, Nc);
  const int64_t tiles = g.tiles_m * g.tiles_n;
  const int team = static_cast<int>(std::min<int64_t>(tiles, omp_get_max_threads()));
#pragma omp parallel num_threads(team)
  {
    omp_set_num_threads(1);  // BLAS calls below run on this thread alone
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; t++) {
      const int64_t i0 = t / g.tiles_n * g.tm, j0 = t % g.tiles_n * g.tn;
      const int64_t m = std::min(g.tm, M - i0), n = std::min(g.tn, Nc - j0);
      const T* a = ta == CblasNoTrans ? A + i0 * lda : A + i0;
      const T* b = tb == CblasNoTrans ? B + j0 : B + j0 * ldb;
      blas_gemm(ta, tb, m, n, K, a, lda, b, ldb, beta, C + i0 * ldc + j0, ldc);
    }
  }
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
  gemm_tiled<T>(CblasNoTrans, CblasTrans, N, OC, C, inp, C, weight, C, T(0), out, OC);
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
      gemm_tiled<T>(CblasNoTrans, CblasNoTrans, N, C, OC, dout, OC, weight, C, T(0), dinp, C);
    }
  }
  if (OC == 0) return;
  // dweight (OC, C) += dout^T (OC, N) @ inp (N, C)
  gemm_tiled<T>(CblasTrans, CblasNoTrans, OC, C, N, dout, OC, inp, C, T(1), dweight, C);
}

const char* blas_core_name() { return openblas_get_corename(); }

template void matmul_forward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t);
template void matmul_forward<double>(double*, const double*, const double*, int64_t, int64_t,
                                     int64_t);
template void matmul_backward<float>(float*, float*, const float*, const float*, const float*,
                                     int64_t, int64_t, int64_t);
template void matmul_backward<double>(double*, double*, const double*, const double*, const double*,
                                      int64_t, int64_t, int64_t);

}  // namespace ssiat::kernels::cpu
