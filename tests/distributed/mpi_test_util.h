// Helpers the tests/distributed/mpi_*.cpp executables share, on raw MPI (not the code under
// test): this process's world rank and size, and whether every rank holds rank 0's bytes.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstring>
#include <vector>

namespace ssiat::testing {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

inline int world_size() {
  int s = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// True if every world rank's buffer has the same bytes as world rank 0's (every rank passes the
// same byte count).
inline bool same_bits_on_all_ranks(const void* buf, size_t bytes) {
  if (bytes == 0) return true;
  const auto* p = static_cast<const unsigned char*>(buf);
  std::vector<unsigned char> root(p, p + bytes);
  MPI_Bcast(root.data(), static_cast<int>(bytes), MPI_BYTE, 0, MPI_COMM_WORLD);
  int same = std::memcmp(root.data(), buf, bytes) == 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return same == 1;
}

}  // namespace ssiat::testing
