// CUDA RMSNorm (contract and formula in kernels/rmsnorm.h; oracle kernels/cpu/rmsnorm.cpp, whose
// formulas and operation order are followed here: r = 1 / sqrt(sum_sq / C + eps), out = x * r * w,
//   dinp[n, c] += r * w[c] * g[c] - (r^3 / C) * x[c] * sum_j g[j] w[j] x[j]
//   dweight[c] += sum_n g[n, c] * x[n, c] * rstd[n]).
//
// Row-wise parts (forward, residual forward, dinp): one warp per row, kWarpsPerBlock rows per
// block, grid-striding over rows. Lane l takes columns l, l + 32, ... in order; the 32 lane sums
// are combined by a butterfly of warp shuffles (a fixed tree), all in f32.
// dweight, without atomics: rows are cut into chunks of kChunkRows (a constant, never derived from
// the device); kernel 1 sums each (chunk, column) in row order into partial[chunk, c] (scratch),
// kernel 2 adds the partials of each column in chunk order and then `+=` the total into dweight.
// Every sum therefore has one fixed order for a given (N, C): the bits never depend on the grid,
// the device or the run.
// rmsnorm_residual_forward shares the forward kernel (same arithmetic on res = a + b), so its bits
// equal cuda::add followed by cuda::rmsnorm_forward.
#include "kernels/cuda/common.cuh"
#include "kernels/rmsnorm.h"

namespace ssiat::kernels::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;  // rows per block in the row-wise kernels
constexpr int kRowThreads = kWarp * kWarpsPerBlock;
constexpr int64_t kMaxRowBlocks = int64_t{1} << 16;  // grid-stride beyond this (any count gives the same bits)
constexpr int64_t kChunkRows = 256;  // rows per dweight partial sum (fixed: part of the summation order)
constexpr int kColThreads = 256;     // columns per block in the dweight kernels
constexpr int64_t kMaxGridY = 65535;

// Sum over the 32 lanes by a butterfly; every lane gets the same bits (a + b == b + a in IEEE).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

enum class Residual { kNo, kYes };

// kNo:  x = a;                 out, rstd = rmsnorm(x).
// kYes: x = res = a + b (res may alias a: each element is read before the same thread writes it),
//       then out, rstd = rmsnorm(res).
// a, b, res, out (N, C); weight (C); rstd (N).
template <Residual kMode>
__global__ void rmsnorm_forward_kernel(float* res, float* out, float* rstd, const float* a, const float* b,
                                       const float* __restrict__ weight, int64_t N, int64_t C, float eps) {
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const float inv_c = 1.0f / static_cast<float>(C);
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp; n < N;
       n += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const int64_t row = n * C;
    float acc = 0.0f;
    if constexpr (kMode == Residual::kYes) {
      for (int64_t c = lane; c < C; c += kWarp) {
        const float x = a[row + c] + b[row + c];
        res[row + c] = x;
        acc += x * x;
      }
    } else {
      for (int64_t c = lane; c < C; c += kWarp) {
        const float x = a[row + c];
        acc += x * x;
      }
    }
    acc = warp_sum(acc);
    const float r = 1.0f / sqrtf(acc * inv_c + eps);
    if (lane == 0) rstd[n] = r;
    // Each lane reads back only the elements it wrote itself (same columns), so no barrier.
    const float* x = kMode == Residual::kYes ? res : a;
    for (int64_t c = lane; c < C; c += kWarp) out[row + c] = x[row + c] * r * weight[c];
  }
}

// dinp[n, :] += r * w * g - b * x with b = r^3 / C * sum_j g[j] w[j] x[j]; one warp per row.
// dinp, dout, inp (N, C); weight (C); rstd (N).
__global__ void rmsnorm_backward_dinp_kernel(float* __restrict__ dinp, const float* __restrict__ dout,
                                             const float* __restrict__ inp, const float* __restrict__ weight,
                                             const float* __restrict__ rstd, int64_t N, int64_t C) {
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const float inv_c = 1.0f / static_cast<float>(C);
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp; n < N;
       n += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const int64_t row = n * C;
    float acc = 0.0f;
    for (int64_t c = lane; c < C; c += kWarp) acc += dout[row + c] * weight[c] * inp[row + c];
    const float dot = warp_sum(acc);
    const float r = rstd[n];
    const float bcoef = r * r * r * inv_c * dot;
    for (int64_t c = lane; c < C; c += kWarp)
      dinp[row + c] += r * weight[c] * dout[row + c] - bcoef * inp[row + c];
  }
}

// partial[k, c] = sum_{n in chunk k, in order} dout[n, c] * inp[n, c] * rstd[n].
// Grid (chunks, column blocks). dout, inp (N, C); rstd (N); partial (chunks, C).
__global__ void rmsnorm_dweight_partial_kernel(float* __restrict__ partial, const float* __restrict__ dout,
                                               const float* __restrict__ inp, const float* __restrict__ rstd,
                                               int64_t N, int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kColThreads + threadIdx.x;
  if (c >= C) return;
  const int64_t chunk = blockIdx.x;
  const int64_t n0 = chunk * kChunkRows;
  const int64_t n1 = n0 + kChunkRows < N ? n0 + kChunkRows : N;
  float acc = 0.0f;
  for (int64_t n = n0; n < n1; n++) acc += dout[n * C + c] * inp[n * C + c] * rstd[n];
  partial[chunk * C + c] = acc;
}

// dweight[c] += sum_{k = 0..chunks-1, in order} partial[k, c]. partial (chunks, C); dweight (C).
__global__ void rmsnorm_dweight_combine_kernel(float* __restrict__ dweight, const float* __restrict__ partial,
                                               int64_t chunks, int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColThreads + threadIdx.x;
  if (c >= C) return;
  float acc = 0.0f;
  for (int64_t k = 0; k < chunks; k++) acc += partial[k * C + c];
  dweight[c] += acc;
}

int64_t dweight_chunks(int64_t N) { return (N + kChunkRows - 1) / kChunkRows; }

unsigned int row_blocks(int64_t N) {
  const int64_t blocks = (N + kWarpsPerBlock - 1) / kWarpsPerBlock;
  return static_cast<unsigned int>(blocks < kMaxRowBlocks ? blocks : kMaxRowBlocks);
}

template <Residual kMode>
void launch_forward(float* res, float* out, float* rstd, const float* a, const float* b, const float* weight,
                    int64_t N, int64_t C, float eps, Stream s) {
  rmsnorm_forward_kernel<kMode><<<row_blocks(N), kRowThreads, 0, s>>>(res, out, rstd, a, b, weight, N, C, eps);
  SSIAT_LAUNCH_CHECK();
}

void launch_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     const float* rstd, int64_t N, int64_t C, float* partial, Stream s) {
  rmsnorm_backward_dinp_kernel<<<row_blocks(N), kRowThreads, 0, s>>>(dinp, dout, inp, weight, rstd, N, C);
  SSIAT_LAUNCH_CHECK();
  const int64_t chunks = dweight_chunks(N);
  const int64_t col_blocks = (C + kColThreads - 1) / kColThreads;
  SSIAT_CHECK(chunks < (int64_t{1} << 31) && col_blocks <= kMaxGridY)
      << "rmsnorm_backward: grid too large for N=" << N << " C=" << C;
  const dim3 grid(static_cast<unsigned int>(chunks), static_cast<unsigned int>(col_blocks));
  rmsnorm_dweight_partial_kernel<<<grid, kColThreads, 0, s>>>(partial, dout, inp, rstd, N, C);
  SSIAT_LAUNCH_CHECK();
  rmsnorm_dweight_combine_kernel<<<detail::grid_1d(C, kColThreads), kColThreads, 0, s>>>(dweight, partial, chunks,
                                                                                          C);
  SSIAT_LAUNCH_CHECK();
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps,
                     Stream s) {
  SSIAT_CHECK(N >= 0 && C > 0) << "rmsnorm_forward: bad shape N=" << N << " C=" << C;
  if (N == 0) return;
  SSIAT_CHECK(out && rstd && inp && weight) << "rmsnorm_forward: null pointer (N=" << N << " C=" << C << ")";
  launch_forward<Residual::kNo>(nullptr, out, rstd, inp, nullptr, weight, N, C, eps, s);
}

void rmsnorm_residual_forward(float* res, float* out, float* rstd, const float* a, const float* b, const float* weight,
                              int64_t N, int64_t C, float eps, Stream s) {
  SSIAT_CHECK(N >= 0 && C > 0) << "rmsnorm_residual_forward: bad shape N=" << N << " C=" << C;
  if (N == 0) return;
  SSIAT_CHECK(res && out && rstd && a && b && weight)
      << "rmsnorm_residual_forward: null pointer (N=" << N << " C=" << C << ")";
  launch_forward<Residual::kYes>(res, out, rstd, a, b, weight, N, C, eps, s);
}

int64_t rmsnorm_backward_scratch_bytes(int64_t N, int64_t C) {
  SSIAT_CHECK(N >= 0 && C > 0) << "rmsnorm_backward_scratch_bytes: bad shape N=" << N << " C=" << C;
  return dweight_chunks(N) * C * static_cast<int64_t>(sizeof(float));
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C, Scratch scratch, Stream s) {
  SSIAT_CHECK(N >= 0 && C > 0) << "rmsnorm_backward: bad shape N=" << N << " C=" << C;
  if (N == 0) return;
  SSIAT_CHECK(dinp && dweight && dout && inp && weight && rstd)
      << "rmsnorm_backward: null pointer (N=" << N << " C=" << C << ")";
  const int64_t need = rmsnorm_backward_scratch_bytes(N, C);
  SSIAT_CHECK(scratch.ptr != nullptr && scratch.bytes >= need)
      << "rmsnorm_backward: scratch of " << scratch.bytes << " bytes, need " << need << " (N=" << N << " C=" << C
      << ")";
  launch_backward(dinp, dweight, dout, inp, weight, rstd, N, C, static_cast<float*>(scratch.ptr), s);
}

}  // namespace ssiat::kernels::cuda
