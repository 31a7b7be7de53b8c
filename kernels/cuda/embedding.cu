// CUDA token embedding (contract in kernels/embedding.h), the twin of kernels/cpu/embedding.cpp.
//
// forward: out[n, :] = wte[tokens[n], :]; a grid-stride loop over rows, the block's threads over
//   the columns (float4 when C and both pointers allow). Tokens are not checked on the device
//   (precondition: every token is in [0, V)).
// backward: dwte[tokens[n], :] += dout[n, :] with no atomics and the CPU's order. The CPU adds
//   the rows n = 0..N-1 one after another, so element dwte[v, c] receives
//   ((dwte[v,c] + dout[n0,c]) + dout[n1,c]) + ... over the positions n0 < n1 < ... of token v.
//   Here:
//   1. keys = tokens, vals = 0..N-1 (scratch);
//   2. a stable LSD radix sort of (key, position) pairs by key over the low bit_width(V-1) bits
//      (CUB DeviceRadixSort::SortPairs, double-buffered): equal keys keep increasing positions;
//   3. run starts: the sorted indices i with i == 0 or key[i] != key[i-1], compacted in order
//      (CUB DeviceSelect::If over 0..N-1), and their count;
//   4. one block per (run, 128-column chunk), grid-stride over runs: each thread keeps
//      acc = dwte[v, c], adds dout[n, c] for the run's positions in sorted (= increasing n)
//      order, and stores acc once. Each dwte element is owned by one thread, and its additions
//      happen in the CPU's order in f32 (plain adds, nothing to contract): the result is the
//      CPU's bits, whatever the schedule. The sort and the compaction are exact integer
//      permutations, so they cannot change the result either.
// Scratch (embedding_backward_scratch_bytes(N, V), 256-byte aligned regions): keys[2][N] u32,
//   vals[2][N] i32, run_starts[N] i32, num_runs i32, then CUB's temporary storage (the larger of
//   the sort's and the select's; both run in it one after the other). CUB sizes that storage
//   from the current device, so the size query needs a CUDA device (call it after set_device).
#include <thrust/iterator/counting_iterator.h>

#include <algorithm>
#include <bit>
#include <cub/cub.cuh>

#include "kernels/cuda/common.cuh"
#include "kernels/device.h"
#include "kernels/embedding.h"

namespace ssiat::kernels::cuda {
namespace {

constexpr int kForwardThreads = 256;
constexpr unsigned int kMaxGridStrideBlocks = 8192;  // enough to fill any GPU
constexpr int kCols = 128;                           // backward: columns (= threads) per block
constexpr int kTile = kCols;                         // backward: positions staged per step
constexpr int kUnroll = 8;                           // backward: loads in flight per thread
constexpr int64_t kMaxRunBlocks = 8192;              // backward: blocks along the runs
constexpr int64_t kAlign = 256;

int64_t align_up(int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Key bits the sort looks at: enough for V - 1 (at least one).
int key_bits(int64_t V) { return std::max(1, static_cast<int>(std::bit_width(static_cast<uint64_t>(V - 1)))); }

// True at the first index of each run of equal sorted keys.
struct IsRunStart {
  const uint32_t* keys;  // (N) sorted
  __host__ __device__ bool operator()(int32_t i) const { return i == 0 || keys[i] != keys[i - 1]; }
};

// Byte offsets of the scratch regions (from the first 256-byte aligned address).
struct ScratchLayout {
  int64_t keys0, keys1, vals0, vals1, run_starts, num_runs, temp, temp_bytes, total;
};

ScratchLayout scratch_layout(int64_t N, int64_t V) {
  const int n = static_cast<int>(N);
  size_t sort_bytes = 0, select_bytes = 0;
  cub::DoubleBuffer<uint32_t> keys(nullptr, nullptr);
  cub::DoubleBuffer<int32_t> vals(nullptr, nullptr);
  SSIAT_GPU_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys, vals, n, 0, key_bits(V)));
  SSIAT_GPU_CHECK(cub::DeviceSelect::If(nullptr, select_bytes, thrust::counting_iterator<int32_t>(0),
                                        static_cast<int32_t*>(nullptr), static_cast<int32_t*>(nullptr), N,
                                        IsRunStart{nullptr}));
  const int64_t array = align_up(N * static_cast<int64_t>(sizeof(int32_t)));
  ScratchLayout l{};
  l.keys0 = 0;
  l.keys1 = l.keys0 + array;
  l.vals0 = l.keys1 + array;
  l.vals1 = l.vals0 + array;
  l.run_starts = l.vals1 + array;
  l.num_runs = l.run_starts + array;
  l.temp = l.num_runs + kAlign;
  l.temp_bytes = align_up(static_cast<int64_t>(std::max(sort_bytes, select_bytes)));
  l.total = l.temp + l.temp_bytes + (kAlign - 1);  // + room to align the base pointer
  return l;
}

template <typename Vec>
__global__ void embedding_forward_kernel(Vec* __restrict__ out,             // (N, C / width)
                                         const int32_t* __restrict__ tokens,  // (N)
                                         const Vec* __restrict__ wte,         // (V, C / width)
                                         int64_t N, int64_t row) {            // row = C / width
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const Vec* src = wte + static_cast<int64_t>(tokens[n]) * row;
    Vec* dst = out + n * row;
    for (int64_t c = threadIdx.x; c < row; c += blockDim.x) dst[c] = src[c];
  }
}

__global__ void iota_kernel(int32_t* __restrict__ vals, int64_t N) {  // (N)
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < N; i += stride)
    vals[i] = static_cast<int32_t>(i);
}

// dwte[v, c] += dout[n, c] for each run (token v, its sorted positions n), in the run's order.
// blockDim.x == kCols; blockIdx.y picks the column chunk; grid-stride over runs on x.
__global__ void __launch_bounds__(kCols, 8)
    accumulate_runs_kernel(float* __restrict__ dwte,              // (V, C)
                           const float* __restrict__ dout,        // (N, C)
                           const uint32_t* __restrict__ keys,     // (N) sorted tokens
                           const int32_t* __restrict__ pos,       // (N) positions in key order
                           const int32_t* __restrict__ run_starts,  // (num_runs)
                           const int32_t* __restrict__ num_runs,  // (1)
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
      // Stage the next kTile positions of this run; keys are sorted, so they form a prefix.
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
      __syncthreads();  // everyone is done with tile_pos before it is overwritten
      if (count < kTile) break;  // block-uniform
    }
    if (active) *dst = acc;
  }
}

void launch_forward(float* out, const int32_t* tokens, const float* wte, int64_t N, int64_t C, Stream s) {
  const unsigned int blocks = static_cast<unsigned int>(std::min<int64_t>(N, kMaxGridStrideBlocks));
  const bool vec4 = C % 4 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0 && reinterpret_cast<uintptr_t>(wte) % 16 == 0;
  if (vec4)
    embedding_forward_kernel<float4><<<blocks, kForwardThreads, 0, s>>>(
        reinterpret_cast<float4*>(out), tokens, reinterpret_cast<const float4*>(wte), N, C / 4);
  else
    embedding_forward_kernel<float><<<blocks, kForwardThreads, 0, s>>>(out, tokens, wte, N, C);
  SSIAT_LAUNCH_CHECK();
}

void launch_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t V,
                     const ScratchLayout& l, char* base, Stream s) {
  auto* keys0 = reinterpret_cast<uint32_t*>(base + l.keys0);
  auto* keys1 = reinterpret_cast<uint32_t*>(base + l.keys1);
  auto* vals0 = reinterpret_cast<int32_t*>(base + l.vals0);
  auto* vals1 = reinterpret_cast<int32_t*>(base + l.vals1);
  auto* run_starts = reinterpret_cast<int32_t*>(base + l.run_starts);
  auto* num_runs = reinterpret_cast<int32_t*>(base + l.num_runs);
  void* temp = base + l.temp;
  const int n = static_cast<int>(N);

  // 1. keys = tokens (non-negative int32, so the same bits as uint32), vals = 0..N-1.
  SSIAT_GPU_CHECK(cudaMemcpyAsync(keys0, tokens, N * sizeof(int32_t), cudaMemcpyDeviceToDevice, s));
  iota_kernel<<<std::min(detail::grid_1d(N, kForwardThreads), kMaxGridStrideBlocks), kForwardThreads, 0, s>>>(vals0,
                                                                                                              N);
  SSIAT_LAUNCH_CHECK();
  // 2. Stable sort by key; Current() names the buffers that hold the result.
  cub::DoubleBuffer<uint32_t> keys(keys0, keys1);
  cub::DoubleBuffer<int32_t> vals(vals0, vals1);
  size_t temp_bytes = static_cast<size_t>(l.temp_bytes);
  SSIAT_GPU_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys, vals, n, 0, key_bits(V), s));
  // 3. Run starts in increasing order, and their count.
  temp_bytes = static_cast<size_t>(l.temp_bytes);
  SSIAT_GPU_CHECK(cub::DeviceSelect::If(temp, temp_bytes, thrust::counting_iterator<int32_t>(0), run_starts,
                                        num_runs, N, IsRunStart{keys.Current()}, s));
  // 4. Accumulate each run into its dwte row.
  const dim3 grid(static_cast<unsigned int>(std::min({N, V, kMaxRunBlocks})),
                  static_cast<unsigned int>((C + kCols - 1) / kCols));
  accumulate_runs_kernel<<<grid, kCols, 0, s>>>(dwte, dout, keys.Current(), vals.Current(), run_starts, num_runs,
                                                N, C);
  SSIAT_LAUNCH_CHECK();
}

void check_shapes(const char* op, int64_t N, int64_t C, int64_t V) {
  SSIAT_CHECK(N >= 0 && C >= 0 && V >= 0) << op << ": negative shape N=" << N << " C=" << C << " V=" << V;
  SSIAT_CHECK(N <= INT32_MAX) << op << ": N=" << N << " positions exceed the int32 index range";
  SSIAT_CHECK(N == 0 || V > 0) << op << ": N=" << N << " tokens but an empty vocabulary V=" << V;
  SSIAT_CHECK(V <= int64_t{INT32_MAX} + 1) << op << ": V=" << V << " exceeds the int32 token range";
  SSIAT_CHECK((C + kCols - 1) / kCols <= 65535) << op << ": C=" << C << " columns exceed the grid's y range";
}

}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int64_t N, int64_t C, int64_t V,
                       Stream s) {
  check_shapes("embedding_forward", N, C, V);
  if (N == 0 || C == 0) return;
  SSIAT_CHECK(out != nullptr && tokens != nullptr && wte != nullptr)
      << "embedding_forward: null pointer (out=" << out << ", tokens=" << tokens << ", wte=" << wte << ") for N=" << N
      << " C=" << C;
  launch_forward(out, tokens, wte, N, C, s);
}

int64_t embedding_backward_scratch_bytes(int64_t N, int64_t V) {
  check_shapes("embedding_backward_scratch_bytes", N, 0, V);
  if (N == 0) return 0;
  SSIAT_CHECK(device_count() > 0) << "embedding_backward_scratch_bytes(N=" << N << ", V=" << V
                                  << "): CUB sizes its temporary storage from the current CUDA device, and none was found";
  return scratch_layout(N, V).total;
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t V,
                        Scratch scratch, Stream s) {
  check_shapes("embedding_backward", N, C, V);
  if (N == 0 || C == 0) return;
  SSIAT_CHECK(dwte != nullptr && dout != nullptr && tokens != nullptr)
      << "embedding_backward: null pointer (dwte=" << dwte << ", dout=" << dout << ", tokens=" << tokens
      << ") for N=" << N << " C=" << C;
  const ScratchLayout l = scratch_layout(N, V);
  SSIAT_CHECK(scratch.ptr != nullptr && scratch.bytes >= l.total)
      << "embedding_backward: scratch of " << scratch.bytes << " bytes at " << scratch.ptr << " is too small, need "
      << l.total << " bytes (embedding_backward_scratch_bytes(N=" << N << ", V=" << V << "))";
  const uintptr_t p = reinterpret_cast<uintptr_t>(scratch.ptr);
  char* base = reinterpret_cast<char*>((p + kAlign - 1) / kAlign * kAlign);
  launch_backward(dwte, dout, tokens, N, C, V, l, base, s);
}

}  // namespace ssiat::kernels::cuda
