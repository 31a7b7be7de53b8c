// Communicators on raw buffers: one interface, implemented by a single-process communicator and
// by MPI (CPU); NCCL (CUDA) comes with the GPU issue. Collectives are deterministic:
// allreduce_sum is a fixed-order reduce-scatter (each rank sums its slice over ranks 0..R-1 in
// order) followed by an allgather, so every rank holds identical bits that do not depend on the
// MPI implementation's reduction tree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace ssiat::distributed {

enum class DType { kF32, kF64, kI64, kU8 };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // buf[i] = sum over ranks r = 0..size-1 (in that order) of buf_r[i].
  virtual void allreduce_sum(void* buf, size_t count, DType dtype) = 0;
  // buf on every rank = buf on root.
  virtual void broadcast(void* buf, size_t count, DType dtype, int root) = 0;
  virtual void barrier() = 0;
};

// Size 1, rank 0; every collective is a no-op.
std::unique_ptr<Communicator> make_self_communicator();

// MPI_COMM_WORLD (initialises MPI if needed; finalised at exit).
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace ssiat::distributed
