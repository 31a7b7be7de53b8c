// Tensor-parallel regions (contract in distributed/tp_regions.h).
#include "distributed/tp_regions.h"

#include <cstring>
#include <vector>

#include "kernels/check.h"

namespace ssiat::distributed::tp_region {
namespace {

size_t block_cols(const Communicator& tp, size_t cols, const char* op) {
  const auto p = static_cast<size_t>(tp.size());
  SSIAT_CHECK(cols % p == 0) << "tp_region::" << op << ": " << cols << " columns do not split over tp = " << p
                             << " ranks";
  return cols / p;
}

// dst (rows, bc) = columns [k*bc, (k+1)*bc) of src (rows, cols); elements of `es` bytes.
void take_block(const unsigned char* src, unsigned char* dst, size_t rows, size_t cols, size_t bc, size_t k,
                size_t es) {
  if (src + k * bc * es == dst && bc == cols) return;  // one rank, in place
  for (size_t r = 0; r < rows; r++) std::memmove(dst + r * bc * es, src + (r * cols + k * bc) * es, bc * es);
}

// y (rows, cols) from every rank's x (rows, cols/tp): all-gather (rank-major blocks), then
// interleave the blocks' rows.
void gather_columns(Communicator& tp, const void* x, void* y, size_t rows, size_t cols, DType dtype, const char* op) {
  const size_t bc = block_cols(tp, cols, op), es = dtype_bytes(dtype);
  const auto* in = static_cast<const unsigned char*>(x);
  auto* out = static_cast<unsigned char*>(y);
  if (tp.size() == 1) {
    if (in != out) std::memcpy(out, in, rows * cols * es);
    return;
  }
  std::vector<unsigned char> blocks(rows * cols * es);  // (tp, rows, bc)
  tp.all_gather(in, blocks.data(), rows * cols, dtype);
  for (size_t k = 0; k < static_cast<size_t>(tp.size()); k++)
    for (size_t r = 0; r < rows; r++)
      std::memcpy(out + (r * cols + k * bc) * es, blocks.data() + (k * rows + r) * bc * es, bc * es);
}

void own_columns(const Communicator& tp, const void* x, void* y, size_t rows, size_t cols, DType dtype,
                 const char* op) {
  const size_t bc = block_cols(tp, cols, op);
  take_block(static_cast<const unsigned char*>(x), static_cast<unsigned char*>(y), rows, cols, bc,
             static_cast<size_t>(tp.rank()), dtype_bytes(dtype));
}

}  // namespace

void copy_backward(Communicator& tp, void* dy, size_t count, DType dtype) {
  if (tp.size() > 1) tp.allreduce_sum(dy, count, dtype);
}

void reduce_forward(Communicator& tp, void* x, size_t count, DType dtype) {
  if (tp.size() > 1) tp.allreduce_sum(x, count, dtype);
}

void scatter_forward(Communicator& tp, const void* x, void* y, size_t rows, size_t cols, DType dtype) {
  own_columns(tp, x, y, rows, cols, dtype, "scatter_forward");
}

void scatter_backward(Communicator& tp, const void* dy, void* dx, size_t rows, size_t cols, DType dtype) {
  gather_columns(tp, dy, dx, rows, cols, dtype, "scatter_backward");
}

void gather_forward(Communicator& tp, const void* x, void* y, size_t rows, size_t cols, DType dtype) {
  gather_columns(tp, x, y, rows, cols, dtype, "gather_forward");
}

void gather_backward(Communicator& tp, const void* dy, void* dx, size_t rows, size_t cols, DType dtype) {
  own_columns(tp, dy, dx, rows, cols, dtype, "gather_backward");
}

}  // namespace ssiat::distributed::tp_region
