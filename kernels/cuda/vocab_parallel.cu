// CUDA vocabulary-parallel embedding and cross-entropy statistics (contract in
// kernels/vocab_parallel.h; oracle kernels/cpu/vocab_parallel.cpp). This rank holds vocabulary
// rows [v0, v0 + Vl); a token or target t is "in range" when v0 <= t < v0 + Vl (64-bit compare).
//
// embedding_shard_forward: one block per row n (grid-stride beyond kMaxRowBlocks), its threads over
//   the columns (float4 when C and both pointers allow): a copy of wte row t - v0, or zeros.
// (kernels/cuda/embedding.cu's ops are these with the whole vocabulary as one shard.)
// embedding_shard_backward: a deterministic sort-based backward with a sentinel: keys[n] = t - v0 for an in-range token, else Vl; a stable LSD radix sort (CUB
//   DeviceRadixSort::SortPairs over bit_width(Vl) bits, enough for the Vl + 1 keys 0..Vl) of
//   (key, n) puts the out-of-range positions last and keeps every key's positions increasing;
//   the run starts of the keys < Vl are compacted in order (CUB DeviceSelect::If); one thread per
//   (run, column) loads dwte[v, c], adds dout[n, c] over the run's positions in increasing n and
//   stores once. So each element gets the CPU's additions in the CPU's order (plain f32 adds),
//   whatever the schedule; the sort and the compaction are exact integer permutations.
// ce_shard_max / ce_shard_sums: one block of kThreads per row (grid-stride beyond kMaxRowBlocks).
//   Thread i folds columns i, i + kThreads, ... in increasing order, then a fixed tree combines the
//   threads (warp shuffles down 16..1, then warp 0 over the per-warp results). The tree's shape
//   depends only on kThreads (a constant, never derived from the device) and Vl, so the sum has
//   the same bits on every run and every GPU. max uses `x > m ? x : m` (the CPU's: exact, order
//   free, NaN never wins). exp is the accurate expf (no __expf); sums match the CPU's (which uses
//   its own exp and 16-lane order) to rounding, not bit for bit.
// ce_shard_max_combine / ce_shard_loss: elementwise over n. combine folds r = 1..R-1 in order into
//   m = gathered[0, n] with the same `?:` (the CPU's: a NaN from rank 0 propagates, a later one
//   is dropped); loss uses the accurate logf.
// ce_shard_grad: blocks over (column chunk, row), elementwise: no reduction, so no order. Computed
//   in the CPU twin's form e^(x - m) * (dloss / S) - dloss * [v0 + v == t] (the header's formula
//   up to rounding).
// Shapes are checked as the CPU twin's: N >= 0, Vl >= 1, v0 >= 0.
// All index math is 64-bit: N * Vl and N * C may exceed 2^31.
#include <thrust/iterator/counting_iterator.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cub/cub.cuh>

#include "kernels/cuda/common.cuh"
#include "kernels/device.h"
#include "kernels/vocab_parallel.h"

namespace ssiat::kernels::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 256;  // row kernels; part of ce_shard_sums' summation order
constexpr int kWarps = kThreads / kWarp;
constexpr int64_t kMaxRowBlocks = int64_t{1} << 16;
constexpr int64_t kMaxColBlocks = 1024;   // ce_shard_grad: blocks along a row
constexpr int64_t kMaxFlatBlocks = 8192;  // elementwise over n
constexpr int kCols = 128;                // backward: columns (= threads) per block
constexpr int kTile = kCols;              // backward: positions staged per step
constexpr int kUnroll = 8;                // backward: loads in flight per thread
constexpr int64_t kMaxRunBlocks = 8192;   // backward: blocks along the runs
constexpr int64_t kAlign = 256;

unsigned int row_blocks(int64_t N) { return static_cast<unsigned int>(std::min(N, kMaxRowBlocks)); }
unsigned int flat_blocks(int64_t n) { return std::min(detail::grid_1d(n, kThreads), unsigned(kMaxFlatBlocks)); }
int64_t align_up(int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// ---- block reductions: fixed trees, every thread gets the result ------------------------------
// `shared` holds kWarps + 1 values. Safe to call back to back: every read of shared[w] happens
// before the second barrier, every write of the next call after it.

__device__ __forceinline__ float max_of(float a, float b) { return b > a ? b : a; }

template <bool kMax>
__device__ float block_reduce(float x, float* shared) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const float o = __shfl_down_sync(0xffffffffu, x, offset);
    x = kMax ? max_of(x, o) : x + o;
  }
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  if (warp == 0) {
    x = lane < kWarps ? shared[lane] : (kMax ? -INFINITY : 0.0f);
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      const float o = __shfl_down_sync(0xffffffffu, x, offset);
      x = kMax ? max_of(x, o) : x + o;
    }
    if (lane == 0) shared[kWarps] = x;
  }
  __syncthreads();
  return shared[kWarps];
}

// ---- embedding --------------------------------------------------------------------------------

template <typename Vec>
__global__ void shard_forward_kernel(Vec* __restrict__ out,              // (N, C / width)
                                     const int32_t* __restrict__ tokens,  // (N)
                                     const Vec* __restrict__ wte,         // (Vl, C / width)
                                     int64_t N, int64_t row, int64_t Vl, int64_t v0) {  // row = C / width
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const int64_t v = static_cast<int64_t>(tokens[n]) - v0;
    Vec* dst = out + n * row;
    if (v >= 0 && v < Vl) {
      const Vec* src = wte + v * row;
      for (int64_t c = threadIdx.x; c < row; c += blockDim.x) dst[c] = src[c];
    } else {
      const Vec zero{};
      for (int64_t c = threadIdx.x; c < row; c += blockDim.x) dst[c] = zero;
    }
  }
}

// keys[n] = tokens[n] - v0 in range, else the sentinel Vl; pos[n] = n.
__global__ void shard_keys_kernel(uint32_t* __restrict__ keys, int32_t* __restrict__ pos,  // (N), (N)
                                  const int32_t* __restrict__ tokens, int64_t N, int64_t Vl, int64_t v0) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; n < N; n += stride) {
    const int64_t v = static_cast<int64_t>(tokens[n]) - v0;
    keys[n] = static_cast<uint32_t>(v >= 0 && v < Vl ? v : Vl);
    pos[n] = static_cast<int32_t>(n);
  }
}

// True at the first sorted index of each run of one in-range key (the sentinel run is skipped).
struct IsShardRunStart {
  const uint32_t* keys;  // (N) sorted
  uint32_t sentinel;     // Vl
  __host__ __device__ bool operator()(int32_t i) const {
    return keys[i] != sentinel && (i == 0 || keys[i] != keys[i - 1]);
  }
};

// dwte[v, c] += dout[n, c] for each run (local row v, its sorted positions n), in the run's order.
// blockDim.x == kCols; blockIdx.y picks the column chunk; grid-stride over runs on x.
__global__ void __launch_bounds__(kCols, 8)
    shard_accumulate_kernel(float* __restrict__ dwte,                // (Vl, C)
                            const float* __restrict__ dout,          // (N, C)
                            const uint32_t* __restrict__ keys,       // (N) sorted local rows, sentinel last
                            const int32_t* __restrict__ pos,         // (N) positions in key order
                            const int32_t* __restrict__ run_starts,  // (num_runs)
                            const int32_t* __restrict__ num_runs,    // (1)
                            int64_t N, int64_t C) {
  __shared__ int32_t tile_pos[kTile];
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kCols + threadIdx.x;
  const bool active = c < C;
  const int runs = *num_runs;
  for (int64_t r = blockIdx.x; r < runs; r += gridDim.x) {
    const int64_t start = run_starts[r];
    const uint32_t v = keys[start];
    float* dst = dwte + static_cast<int64_t>(v) * C + c;
    float acc = active ? *dst : 0.0f;
    for (int64_t base = start;; base += kTile) {
      // The run's next kTile positions: keys are sorted, so they form a prefix of the tile.
      const int64_t j = base + threadIdx.x;
      const bool in_run = j < N && keys[j] == v;
      tile_pos[threadIdx.x] = in_run ? pos[j] : 0;
      const int count = __syncthreads_count(in_run);  // also publishes tile_pos
      if (active) {
        int k = 0;
        for (; k + kUnroll <= count; k += kUnroll) {
          float x[kUnroll];
#pragma unroll
          for (int u = 0; u < kUnroll; u++) x[u] = dout[static_cast<int64_t>(tile_pos[k + u]) * C + c];
#pragma unroll
          for (int u = 0; u < kUnroll; u++) acc += x[u];  // strictly in position order
        }
        for (; k < count; k++) acc += dout[static_cast<int64_t>(tile_pos[k]) * C + c];
      }
      __syncthreads();           // everyone is done with tile_pos before it is overwritten
      if (count < kTile) break;  // block-uniform
    }
    if (active) *dst = acc;
  }
}

// Keys 0..Vl (Vl: the sentinel) need bit_width(Vl) bits (at least one).
int shard_key_bits(int64_t Vl) { return std::max(1, static_cast<int>(std::bit_width(static_cast<uint64_t>(Vl)))); }

// Byte offsets of the scratch regions (from the first 256-byte aligned address): keys[2][N] u32,
// pos[2][N] i32, run_starts[N] i32, num_runs i32, then CUB's temporary storage (the larger of
// the sort's and the select's; they run in it one after the other).
struct ScratchLayout {
  int64_t keys0, keys1, pos0, pos1, run_starts, num_runs, temp, temp_bytes, total;
};

ScratchLayout scratch_layout(int64_t N, int64_t Vl) {
  size_t sort_bytes = 0, select_bytes = 0;
  cub::DoubleBuffer<uint32_t> keys(nullptr, nullptr);
  cub::DoubleBuffer<int32_t> pos(nullptr, nullptr);
  SSIAT_GPU_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys, pos, static_cast<int>(N), 0,
                                                  shard_key_bits(Vl)));
  SSIAT_GPU_CHECK(cub::DeviceSelect::If(nullptr, select_bytes, thrust::counting_iterator<int32_t>(0),
                                        static_cast<int32_t*>(nullptr), static_cast<int32_t*>(nullptr), N,
                                        IsShardRunStart{nullptr, 0}));
  const int64_t array = align_up(N * static_cast<int64_t>(sizeof(int32_t)));
  ScratchLayout l{};
  l.keys0 = 0;
  l.keys1 = l.keys0 + array;
  l.pos0 = l.keys1 + array;
  l.pos1 = l.pos0 + array;
  l.run_starts = l.pos1 + array;
  l.num_runs = l.run_starts + array;
  l.temp = l.num_runs + kAlign;
  l.temp_bytes = align_up(static_cast<int64_t>(std::max(sort_bytes, select_bytes)));
  l.total = l.temp + l.temp_bytes + (kAlign - 1);  // + room to align the base pointer
  return l;
}

// ---- cross-entropy statistics -----------------------------------------------------------------

// rowmax (N); logits (N, Vl).
__global__ void __launch_bounds__(kThreads)
    shard_max_kernel(float* __restrict__ rowmax, const float* __restrict__ logits, int64_t N, int64_t Vl) {
  __shared__ float shared[kWarps + 1];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* x = logits + n * Vl;
    float m = -INFINITY;
    int64_t v = threadIdx.x;
    for (; v + 3 * kThreads < Vl; v += 4 * kThreads) {
      const float x0 = x[v], x1 = x[v + kThreads], x2 = x[v + 2 * kThreads], x3 = x[v + 3 * kThreads];
      m = max_of(max_of(max_of(max_of(m, x0), x1), x2), x3);
    }
    for (; v < Vl; v += kThreads) m = max_of(m, x[v]);
    m = block_reduce<true>(m, shared);
    if (threadIdx.x == 0) rowmax[n] = m;
  }
}

// rowmax (N) = max over r of gathered (R, N), r = 0..R-1 in order.
__global__ void shard_max_combine_kernel(float* __restrict__ rowmax, const float* __restrict__ gathered, int64_t R,
                                         int64_t N) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; n < N; n += stride) {
    float m = gathered[n];  // as the CPU: a NaN from rank 0 stays, a later one never wins
    for (int64_t r = 1; r < R; r++) m = max_of(m, gathered[r * N + n]);
    rowmax[n] = m;
  }
}

// sumexp, target_logit, rowmax (N); logits (N, Vl); targets (N).
__global__ void __launch_bounds__(kThreads)
    shard_sums_kernel(float* __restrict__ sumexp, float* __restrict__ target_logit, const float* __restrict__ logits,
                      const int32_t* __restrict__ targets, const float* __restrict__ rowmax, int64_t N, int64_t Vl,
                      int64_t v0) {
  __shared__ float shared[kWarps + 1];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* x = logits + n * Vl;
    const float m = rowmax[n];
    float s = 0.0f;
    int64_t v = threadIdx.x;
    for (; v + 3 * kThreads < Vl; v += 4 * kThreads) {
      const float x0 = x[v], x1 = x[v + kThreads], x2 = x[v + 2 * kThreads], x3 = x[v + 3 * kThreads];
      s += expf(x0 - m);  // strictly in column order
      s += expf(x1 - m);
      s += expf(x2 - m);
      s += expf(x3 - m);
    }
    for (; v < Vl; v += kThreads) s += expf(x[v] - m);
    s = block_reduce<false>(s, shared);
    if (threadIdx.x == 0) {
      const int32_t t = targets[n];
      const int64_t local = static_cast<int64_t>(t) - v0;
      sumexp[n] = s;
      target_logit[n] = t >= 0 && local >= 0 && local < Vl ? x[local] : 0.0f;
    }
  }
}

// losses, rowmax, target_logit, sumexp, targets (N).
__global__ void shard_loss_kernel(float* __restrict__ losses, const float* __restrict__ rowmax,
                                  const float* __restrict__ target_logit, const float* __restrict__ sumexp,
                                  const int32_t* __restrict__ targets, int64_t N) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; n < N; n += stride)
    losses[n] = targets[n] < 0 ? 0.0f : (rowmax[n] - target_logit[n]) + logf(sumexp[n]);
}

// logits (N, Vl) replaced by their gradient; targets, rowmax, sumexp (N). Grid: x over column
// chunks, y over rows, both grid-stride.
__global__ void shard_grad_kernel(float* __restrict__ logits, const int32_t* __restrict__ targets,
                                  const float* __restrict__ rowmax, const float* __restrict__ sumexp, int64_t N,
                                  int64_t Vl, int64_t v0, float dloss) {
  const int64_t col_stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    float* x = logits + n * Vl;
    const int64_t t = targets[n];
    const float m = rowmax[n], scale = dloss / sumexp[n];
    for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < Vl; v += col_stride) {
      float g = t < 0 ? 0.0f : expf(x[v] - m) * scale;  // the CPU's form: e * (dloss / S), then - dloss
      if (v0 + v == t) g -= dloss;                      // never true for t < 0 (v0 + v >= 0)
      x[v] = g;
    }
  }
}

// ---- launchers --------------------------------------------------------------------------------

void launch_forward(float* out, const int32_t* tokens, const float* wte, int64_t N, int64_t C, int64_t Vl, int64_t v0,
                    Stream s) {
  const bool vec4 = C % 4 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0 && reinterpret_cast<uintptr_t>(wte) % 16 == 0;
  if (vec4)
    shard_forward_kernel<float4><<<row_blocks(N), kThreads, 0, s>>>(
        reinterpret_cast<float4*>(out), tokens, reinterpret_cast<const float4*>(wte), N, C / 4, Vl, v0);
  else
    shard_forward_kernel<float><<<row_blocks(N), kThreads, 0, s>>>(out, tokens, wte, N, C, Vl, v0);
  SSIAT_LAUNCH_CHECK();
}

void launch_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t Vl,
                     int64_t v0, const ScratchLayout& l, char* base, Stream s) {
  auto* keys0 = reinterpret_cast<uint32_t*>(base + l.keys0);
  auto* keys1 = reinterpret_cast<uint32_t*>(base + l.keys1);
  auto* pos0 = reinterpret_cast<int32_t*>(base + l.pos0);
  auto* pos1 = reinterpret_cast<int32_t*>(base + l.pos1);
  auto* run_starts = reinterpret_cast<int32_t*>(base + l.run_starts);
  auto* num_runs = reinterpret_cast<int32_t*>(base + l.num_runs);
  void* temp = base + l.temp;
  // 1. keys = local rows (sentinel Vl when out of range), pos = 0..N-1.
  shard_keys_kernel<<<flat_blocks(N), kThreads, 0, s>>>(keys0, pos0, tokens, N, Vl, v0);
  SSIAT_LAUNCH_CHECK();
  // 2. Stable sort by key; Current() names the buffers that hold the result.
  cub::DoubleBuffer<uint32_t> keys(keys0, keys1);
  cub::DoubleBuffer<int32_t> pos(pos0, pos1);
  size_t temp_bytes = static_cast<size_t>(l.temp_bytes);
  SSIAT_GPU_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys, pos, static_cast<int>(N), 0,
                                                  shard_key_bits(Vl), s));
  // 3. Starts of the in-range runs in increasing order, and their count.
  temp_bytes = static_cast<size_t>(l.temp_bytes);
  SSIAT_GPU_CHECK(cub::DeviceSelect::If(temp, temp_bytes, thrust::counting_iterator<int32_t>(0), run_starts,
                                        num_runs, N, IsShardRunStart{keys.Current(), static_cast<uint32_t>(Vl)}, s));
  // 4. Accumulate each run into its dwte row.
  const dim3 grid(static_cast<unsigned int>(std::min({N, Vl, kMaxRunBlocks})),
                  static_cast<unsigned int>((C + kCols - 1) / kCols));
  shard_accumulate_kernel<<<grid, kCols, 0, s>>>(dwte, dout, keys.Current(), pos.Current(), run_starts, num_runs, N,
                                                 C);
  SSIAT_LAUNCH_CHECK();
}

void check_embedding_shapes(const char* op, int64_t N, int64_t C, int64_t Vl, int64_t v0) {
  SSIAT_CHECK(N >= 0 && C >= 0 && Vl >= 1 && v0 >= 0)
      << op << ": bad shape N=" << N << " C=" << C << " Vl=" << Vl << " v0=" << v0;
  SSIAT_CHECK(N <= INT32_MAX) << op << ": N=" << N << " positions exceed the int32 index range";
  SSIAT_CHECK(Vl <= INT32_MAX) << op << ": Vl=" << Vl << " exceeds the int32 token range";
  SSIAT_CHECK((C + kCols - 1) / kCols <= 65535) << op << ": C=" << C << " columns exceed the grid's y range";
}

void check_ce_shapes(const char* op, int64_t N, int64_t Vl, int64_t v0) {
  SSIAT_CHECK(N >= 0 && Vl > 0 && v0 >= 0) << op << ": bad shape N=" << N << " Vl=" << Vl << " v0=" << v0;
}

}  // namespace

void embedding_shard_forward(float* out, const int32_t* tokens, const float* wte, int64_t N, int64_t C, int64_t Vl,
                             int64_t v0, Stream s) {
  check_embedding_shapes("embedding_shard_forward", N, C, Vl, v0);
  if (N == 0 || C == 0) return;
  SSIAT_CHECK(out != nullptr && tokens != nullptr && wte != nullptr)
      << "embedding_shard_forward: null pointer (out=" << out << ", tokens=" << tokens << ", wte=" << wte
      << ") for N=" << N << " C=" << C << " Vl=" << Vl;
  launch_forward(out, tokens, wte, N, C, Vl, v0, s);
}

int64_t embedding_shard_backward_scratch_bytes(int64_t N, int64_t Vl) {
  check_embedding_shapes("embedding_shard_backward_scratch_bytes", N, 0, Vl, 0);
  if (N == 0) return 0;
  SSIAT_CHECK(device_count() > 0) << "embedding_shard_backward_scratch_bytes(N=" << N << ", Vl=" << Vl
                                  << "): CUB sizes its temporary storage from the current CUDA device, and none was "
                                     "found";
  return scratch_layout(N, Vl).total;
}

void embedding_shard_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t Vl,
                              int64_t v0, Scratch scratch, Stream s) {
  check_embedding_shapes("embedding_shard_backward", N, C, Vl, v0);
  if (N == 0 || C == 0) return;
  SSIAT_CHECK(dwte != nullptr && dout != nullptr && tokens != nullptr)
      << "embedding_shard_backward: null pointer (dwte=" << dwte << ", dout=" << dout << ", tokens=" << tokens
      << ") for N=" << N << " C=" << C << " Vl=" << Vl;
  const ScratchLayout l = scratch_layout(N, Vl);
  SSIAT_CHECK(scratch.ptr != nullptr && scratch.bytes >= l.total)
      << "embedding_shard_backward: scratch of " << scratch.bytes << " bytes at " << scratch.ptr
      << " is too small, need " << l.total << " bytes (embedding_shard_backward_scratch_bytes(N=" << N << ", Vl=" << Vl
      << "))";
  const uintptr_t p = reinterpret_cast<uintptr_t>(scratch.ptr);
  char* base = reinterpret_cast<char*>((p + kAlign - 1) / kAlign * kAlign);
  launch_backward(dwte, dout, tokens, N, C, Vl, v0, l, base, s);
}

void ce_shard_max(float* rowmax, const float* logits, int64_t N, int64_t Vl, Stream s) {
  check_ce_shapes("ce_shard_max", N, Vl, 0);
  if (N == 0) return;
  SSIAT_CHECK(rowmax && logits) << "ce_shard_max: null pointer (rowmax=" << rowmax << ", logits=" << logits
                                << ") for N=" << N << " Vl=" << Vl;
  shard_max_kernel<<<row_blocks(N), kThreads, 0, s>>>(rowmax, logits, N, Vl);
  SSIAT_LAUNCH_CHECK();
}

void ce_shard_max_combine(float* rowmax, const float* gathered, int64_t R, int64_t N, Stream s) {
  SSIAT_CHECK(R > 0 && N >= 0) << "ce_shard_max_combine: bad shape R=" << R << " N=" << N;
  if (N == 0) return;
  SSIAT_CHECK(rowmax && gathered) << "ce_shard_max_combine: null pointer (rowmax=" << rowmax
                                  << ", gathered=" << gathered << ") for R=" << R << " N=" << N;
  shard_max_combine_kernel<<<flat_blocks(N), kThreads, 0, s>>>(rowmax, gathered, R, N);
  SSIAT_LAUNCH_CHECK();
}

void ce_shard_sums(float* sumexp, float* target_logit, const float* logits, const int32_t* targets,
                   const float* rowmax, int64_t N, int64_t Vl, int64_t v0, Stream s) {
  check_ce_shapes("ce_shard_sums", N, Vl, v0);
  if (N == 0) return;
  SSIAT_CHECK(sumexp && target_logit && logits && targets && rowmax)
      << "ce_shard_sums: null pointer (sumexp=" << sumexp << ", target_logit=" << target_logit
      << ", logits=" << logits << ", targets=" << targets << ", rowmax=" << rowmax << ") for N=" << N
      << " Vl=" << Vl;
  shard_sums_kernel<<<row_blocks(N), kThreads, 0, s>>>(sumexp, target_logit, logits, targets, rowmax, N, Vl, v0);
  SSIAT_LAUNCH_CHECK();
}

void ce_shard_loss(float* losses, const float* rowmax, const float* target_logit, const float* sumexp,
                   const int32_t* targets, int64_t N, Stream s) {
  SSIAT_CHECK(N >= 0) << "ce_shard_loss: bad shape N=" << N;
  if (N == 0) return;
  SSIAT_CHECK(losses && rowmax && target_logit && sumexp && targets)
      << "ce_shard_loss: null pointer (losses=" << losses << ", rowmax=" << rowmax
      << ", target_logit=" << target_logit << ", sumexp=" << sumexp << ", targets=" << targets << ") for N=" << N;
  shard_loss_kernel<<<flat_blocks(N), kThreads, 0, s>>>(losses, rowmax, target_logit, sumexp, targets, N);
  SSIAT_LAUNCH_CHECK();
}

void ce_shard_grad(float* logits, const int32_t* targets, const float* rowmax, const float* sumexp, int64_t N,
                   int64_t Vl, int64_t v0, float dloss, Stream s) {
  check_ce_shapes("ce_shard_grad", N, Vl, v0);
  if (N == 0) return;
  SSIAT_CHECK(logits && targets && rowmax && sumexp)
      << "ce_shard_grad: null pointer (logits=" << logits << ", targets=" << targets << ", rowmax=" << rowmax
      << ", sumexp=" << sumexp << ") for N=" << N << " Vl=" << Vl;
  const dim3 grid(static_cast<unsigned int>(std::min((Vl + kThreads - 1) / kThreads, kMaxColBlocks)),
                  static_cast<unsigned int>(std::min<int64_t>(N, 65535)));
  shard_grad_kernel<<<grid, kThreads, 0, s>>>(logits, targets, rowmax, sumexp, N, Vl, v0, dloss);
  SSIAT_LAUNCH_CHECK();
}

}  // namespace ssiat::kernels::cuda
