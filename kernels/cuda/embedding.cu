// CUDA token embedding (contract in kernels/embedding.h), the twin of kernels/cpu/embedding.cpp:
// the whole vocabulary as one shard (v0 = 0, Vl = V) of the vocabulary-parallel kernels in
// kernels/cuda/vocab_parallel.cu, which hold the algorithms:
// forward: out[n, :] = wte[tokens[n], :], a grid-stride loop over rows (float4 when C and both
//   pointers allow). Tokens are not checked on the device (precondition: every token is in
//   [0, V), so none takes the shard's zero-row path).
// backward: dwte[tokens[n], :] += dout[n, :] with no atomics and the CPU's order: a stable CUB
//   radix sort of (token, position), the run starts compacted in order, one thread per (run,
//   column) adding the run's rows in increasing n (the CPU's bits, whatever the schedule).
// Scratch: embedding_backward_scratch_bytes(N, V) = the shard backward's for (N, V); CUB sizes
//   its temporary storage from the current device, so the size query needs a CUDA device.
#include "kernels/cuda/common.cuh"
#include "kernels/embedding.h"
#include "kernels/vocab_parallel.h"

namespace ssiat::kernels::cuda {
namespace {

void check_shapes(const char* op, int64_t N, int64_t C, int64_t V) {
  SSIAT_CHECK(N >= 0 && C >= 0 && V >= 0) << op << ": negative shape N=" << N << " C=" << C << " V=" << V;
  SSIAT_CHECK(N == 0 || V > 0) << op << ": N=" << N << " tokens but an empty vocabulary V=" << V;
}

}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int64_t N, int64_t C, int64_t V,
                       Stream s) {
  check_shapes("embedding_forward", N, C, V);
  if (N == 0 || C == 0) return;
  embedding_shard_forward(out, tokens, wte, N, C, V, 0, s);
}

int64_t embedding_backward_scratch_bytes(int64_t N, int64_t V) {
  check_shapes("embedding_backward_scratch_bytes", N, 0, V);
  if (N == 0) return 0;
  return embedding_shard_backward_scratch_bytes(N, V);
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t V,
                        Scratch scratch, Stream s) {
  check_shapes("embedding_backward", N, C, V);
  if (N == 0 || C == 0) return;
  embedding_shard_backward(dwte, dout, tokens, N, C, V, 0, scratch, s);
}

}  // namespace ssiat::kernels::cuda
