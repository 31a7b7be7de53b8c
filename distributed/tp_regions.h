// Megatron's tensor-parallel regions (Shoeybi et al. 2019, arXiv:1909.08053, section 3;
// megatron/core/tensor_parallel/mappings.py), each a forward paired with its backward, over the
// tensor-parallel group `tp` (a Communicator, distributed/comm.h). The column- and row-parallel
// linear layers are built from them outside the model code:
//   column-parallel  Y_i = X A_i, A = [A_1 ... A_p] split by output columns: copy_* on X
//   row-parallel     Y = sum_i X_i B_i, B split by input rows:               reduce_* on the sum
//   copy    forward Y = X (identity)            backward dX = sum over ranks of dY (all-reduce)
//   reduce  forward Y = sum over ranks of X     backward dX = dY (identity)
//   scatter forward Y = own column block of X   backward dX = all-gather of the dY blocks
//   gather  forward Y = all-gather of X blocks  backward dX = own column block of dY
// Shapes: for scatter/gather, full tensors are (rows, cols) row-major and blocks (rows, cols/tp),
// block k holding columns [k*cols/tp, (k+1)*cols/tp); cols must be a multiple of tp.
// Sums are the communicator's (rank order, fixed bits). With one rank every region is an exact
// no-op: no communication, and scatter/gather copy (or, in place, leave) the bits unchanged.
// Buffers: copy/reduce act in place on any buffer the communicator moves (host for MPI, device
// for NCCL); scatter/gather rearrange host memory.
#pragma once

#include <cstddef>

#include "distributed/comm.h"

namespace ssiat::distributed::tp_region {

inline void copy_forward(Communicator&, void*, size_t, DType) {}  // Y = X: nothing to do
void copy_backward(Communicator& tp, void* dy, size_t count, DType dtype);

void reduce_forward(Communicator& tp, void* x, size_t count, DType dtype);
inline void reduce_backward(Communicator&, void*, size_t, DType) {}  // dX = dY: nothing to do

// x (rows, cols) -> y (rows, cols/tp); dy (rows, cols/tp) -> dx (rows, cols).
void scatter_forward(Communicator& tp, const void* x, void* y, size_t rows, size_t cols, DType dtype);
void scatter_backward(Communicator& tp, const void* dy, void* dx, size_t rows, size_t cols, DType dtype);

// x (rows, cols/tp) -> y (rows, cols); dy (rows, cols) -> dx (rows, cols/tp).
void gather_forward(Communicator& tp, const void* x, void* y, size_t rows, size_t cols, DType dtype);
void gather_backward(Communicator& tp, const void* dy, void* dx, size_t rows, size_t cols, DType dtype);

}  // namespace ssiat::distributed::tp_region
