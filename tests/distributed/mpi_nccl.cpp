// The NCCL communicator (distributed/nccl_comm.cu) under mpirun -np 2 and -np 4: every
// collective on device buffers gives the same bits as the MPI communicator on the same inputs
// (itself checked against a serial rank-ordered reference in mpi_collectives.cpp), and split
// works. Skips without CUDA (build or device). With fewer GPUs per node than ranks per node
// (NCCL refuses two ranks of one communicator on one GPU) each rank tests a 1-rank NCCL
// communicator of its own (the copy paths only). EXPECT only, so every rank runs the same
// sequence of collectives.
// (OMPI_SKIP_MPICXX comes from the ssiat_distributed target: C API only.)
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "distributed/comm.h"

#if SSIAT_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace ssiat::distributed {
namespace {

#if SSIAT_HAVE_CUDA
// Bytes of rank r's input: mixed-magnitude floats reinterpreted for every dtype.
std::vector<unsigned char> input_bytes(int r, size_t n, DType t) {
  const size_t es = dtype_bytes(t);
  std::vector<unsigned char> out(n * es);
  for (size_t i = 0; i < n * es; i++) {
    const uint64_t h = ((i / es) * 0x9E3779B97F4A7C15ull) ^ (static_cast<uint64_t>(r + 1) * 0xBF58476D1CE4E5B9ull);
    out[i] = static_cast<unsigned char>(h >> (8 * (i % es) + 3));
  }
  if (t == DType::kF32 || t == DType::kF64 || t == DType::kBF16)  // no NaN/Inf: clear the top exponent bit
    for (size_t i = 0; i < n; i++) out[i * es + es - 1] &= 0xBF;
  return out;
}

void check_against_mpi(Communicator& nc, Communicator& mc, DType t, size_t n) {
  const size_t es = dtype_bytes(t), B = n * es;
  const Slice mine = slice_of(n, mc.size(), mc.rank());
  const std::vector<unsigned char> in = input_bytes(mc.rank(), n, t);
  // Reference: MPI reduce_scatter, allreduce.
  std::vector<unsigned char> want_rs(mine.count * es), want_all = in;
  mc.reduce_scatter_sum(in.data(), want_rs.data(), n, t);
  mc.allreduce_sum(want_all.data(), n, t);
  void* d = nullptr;
  void* s = nullptr;
  ASSERT_EQ(cudaMalloc(&d, B + 16), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&s, mine.count * es + 16), cudaSuccess);
  std::vector<unsigned char> got(B), got_rs(mine.count * es);
  cudaMemcpy(d, in.data(), B, cudaMemcpyHostToDevice);
  nc.reduce_scatter_sum(d, s, n, t);
  cudaMemcpy(got_rs.data(), s, mine.count * es, cudaMemcpyDeviceToHost);
  EXPECT_EQ(got_rs, want_rs) << "reduce_scatter " << dtype_name(t) << " n=" << n;
  nc.all_gather(s, d, n, t);
  cudaMemcpy(got.data(), d, B, cudaMemcpyDeviceToHost);
  EXPECT_EQ(got, want_all) << "reduce_scatter + all_gather " << dtype_name(t) << " n=" << n;
  cudaMemcpy(d, in.data(), B, cudaMemcpyHostToDevice);
  nc.allreduce_sum(d, n, t);
  cudaMemcpy(got.data(), d, B, cudaMemcpyDeviceToHost);
  EXPECT_EQ(got, want_all) << "allreduce " << dtype_name(t) << " n=" << n;
  const int root = nc.size() - 1;
  cudaMemcpy(d, in.data(), B, cudaMemcpyHostToDevice);
  nc.broadcast(d, n, t, root);
  std::vector<unsigned char> want_b = in;
  mc.broadcast(want_b.data(), n, t, root);
  cudaMemcpy(got.data(), d, B, cudaMemcpyDeviceToHost);
  EXPECT_EQ(got, want_b) << "broadcast " << dtype_name(t) << " n=" << n;
  nc.barrier();
  cudaFree(d);
  cudaFree(s);
}
#endif

TEST(NcclCommunicator, MatchesMpiBitForBit) {
  if (!nccl_built()) GTEST_SKIP() << "built without CUDA";
#if SSIAT_HAVE_CUDA
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) GTEST_SKIP() << "no CUDA device";
  auto world = make_mpi_communicator();
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int local = 0, local_size = 1;
  MPI_Comm_rank(node, &local);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  int enough = devices >= local_size ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &enough, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  // One GPU per rank, or else every rank alone on device 0.
  auto mpi = enough ? world->split(0, world->rank()) : world->split(world->rank(), 0);
  auto nc = make_nccl_communicator(*mpi, enough ? local : 0, nullptr);
  EXPECT_EQ(nc->size(), mpi->size());
  EXPECT_EQ(nc->rank(), mpi->rank());
  const size_t R = static_cast<size_t>(nc->size());
  for (DType t : {DType::kF32, DType::kF64, DType::kBF16, DType::kI32})
    for (size_t n : {size_t{0}, size_t{1}, R + 1, size_t{1031}}) check_against_mpi(*nc, *mpi, t, n);
  check_against_mpi(*nc, *mpi, DType::kF32, 3000017);  // several scratch steps
  // Split: adjacent pairs, as tp groups.
  auto nsub = nc->split(nc->rank() / 2, nc->rank());
  auto msub = mpi->split(mpi->rank() / 2, mpi->rank());
  EXPECT_EQ(nsub->rank(), msub->rank());
  EXPECT_EQ(nsub->size(), msub->size());
  check_against_mpi(*nsub, *msub, DType::kBF16, 1031);
  EXPECT_EQ(nc->stats().bytes(Collective::kAllReduce), mpi->stats().bytes(Collective::kAllReduce));
#endif
}

}  // namespace
}  // namespace ssiat::distributed

#include "tests/distributed/mpi_test_main.h"
