// Internal to distributed/: helpers shared by the communicators (comm.cpp, nccl_comm.cu).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "distributed/comm.h"
#include "kernels/backend.h"

namespace ssiat::distributed::detail {

// "reduce_scatter_sum on rank 2 of 4 (world rank 5)"; the world rank only where it differs
// (world_rank < 0: unknown).
std::string where(Collective c, int rank, int size, int world_rank);

// Adds one call of `c` and its bytes (comm.h's byte-counter contract) to `st`.
void count_traffic(CommStats& st, Collective c, size_t count, DType dtype, int rank, int size, int root);

// out[i] = parts[0][i] + parts[1][i] + ... + parts[R-1][i], left to right in Acc, then stored as
// T. `parts` holds R arrays of n elements of T back to back; out may not overlap parts.
template <typename T, typename Acc, typename Load, typename Store>
void sum_parts(const unsigned char* parts, size_t n, int nranks, unsigned char* out, Load load, Store store) {
  std::vector<Acc> acc(n);
  for (size_t i = 0; i < n; i++) {
    T v;
    std::memcpy(&v, parts + i * sizeof(T), sizeof(T));
    acc[i] = load(v);
  }
  for (int r = 1; r < nranks; r++) {
    const unsigned char* p = parts + static_cast<size_t>(r) * n * sizeof(T);
    for (size_t i = 0; i < n; i++) {
      T v;
      std::memcpy(&v, p + i * sizeof(T), sizeof(T));
      acc[i] = static_cast<Acc>(acc[i] + load(v));
    }
  }
  for (size_t i = 0; i < n; i++) {
    const T v = store(acc[i]);
    std::memcpy(out + i * sizeof(T), &v, sizeof(T));
  }
}

// The rank-ordered sum for each dtype: floats in their own type, bf16 in f32 rounded once,
// integers in the unsigned type of their width (wrapping, two's complement bits).
inline void sum_in_rank_order(DType t, const unsigned char* parts, size_t n, int nranks, unsigned char* out) {
  auto same = [](auto v) { return v; };
  switch (t) {
    case DType::kF32: return sum_parts<float, float>(parts, n, nranks, out, same, same);
    case DType::kF64: return sum_parts<double, double>(parts, n, nranks, out, same, same);
    case DType::kBF16:
      return sum_parts<kernels::bf16, float>(parts, n, nranks, out, kernels::float_from_bf16, kernels::bf16_from_float);
    case DType::kI32: return sum_parts<uint32_t, uint32_t>(parts, n, nranks, out, same, same);
    case DType::kI64: return sum_parts<uint64_t, uint64_t>(parts, n, nranks, out, same, same);
    case DType::kU8: return sum_parts<uint8_t, uint8_t>(parts, n, nranks, out, same, same);
  }
}

}  // namespace ssiat::distributed::detail
