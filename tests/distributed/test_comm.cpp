// The single-process communicator (distributed/comm.h): rank 0 of 1, collectives leave buffers
// untouched bit for bit, bad arguments throw. The MPI communicator is tested under mpirun in
// mpi_allreduce.cpp.
#include "distributed/comm.h"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/backend.h"
#include "kernels/check.h"

namespace ssiat::distributed {
namespace {

TEST(SelfCommunicator, IsRankZeroOfOne) {
  auto comm = make_self_communicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
}

TEST(SelfCommunicator, CollectivesLeaveBitsUnchanged) {
  auto comm = make_self_communicator();
  std::vector<float> f = {1.5f, -0.0f, 3e-45f, 1e30f};
  std::vector<double> d = {-2.25, 0.1, 1e-310};
  std::vector<int64_t> i = {INT64_MIN, -1, 7};
  std::vector<uint8_t> u = {0, 255, 17};
  const auto f0 = f;
  const auto d0 = d;
  const auto i0 = i;
  const auto u0 = u;
  comm->allreduce_sum(f.data(), f.size(), DType::kF32);
  comm->allreduce_sum(d.data(), d.size(), DType::kF64);
  comm->allreduce_sum(i.data(), i.size(), DType::kI64);
  comm->allreduce_sum(u.data(), u.size(), DType::kU8);
  comm->broadcast(f.data(), f.size(), DType::kF32, 0);
  comm->broadcast(d.data(), d.size(), DType::kF64, 0);
  comm->barrier();
  EXPECT_EQ(std::memcmp(f.data(), f0.data(), f.size() * sizeof(float)), 0);  // -0.0f stays -0.0f
  EXPECT_EQ(std::memcmp(d.data(), d0.data(), d.size() * sizeof(double)), 0);
  EXPECT_EQ(i, i0);
  EXPECT_EQ(u, u0);
}

TEST(SelfCommunicator, EmptyBuffersAreAllowed) {
  auto comm = make_self_communicator();
  EXPECT_NO_THROW(comm->allreduce_sum(nullptr, 0, DType::kF32));
  EXPECT_NO_THROW(comm->broadcast(nullptr, 0, DType::kF64, 0));
}

TEST(SelfCommunicator, BadArgumentsThrow) {
  auto comm = make_self_communicator();
  float x = 1.0f;
  EXPECT_THROW(comm->broadcast(&x, 1, DType::kF32, 1), ssiat::Error);
  EXPECT_THROW(comm->broadcast(&x, 1, DType::kF32, -1), ssiat::Error);
  EXPECT_THROW(comm->allreduce_sum(nullptr, 3, DType::kF32), ssiat::Error);
  EXPECT_EQ(x, 1.0f);
}

TEST(SelfCommunicator, ScatterGatherSplitAndCounters) {
  auto comm = make_self_communicator();
  std::vector<kernels::bf16> b = {{0x3f80}, {0x7fff}, {0x8000}};
  std::vector<int32_t> i = {INT32_MIN, -1, 7};
  std::vector<kernels::bf16> rb(3);
  std::vector<int32_t> ri(3);
  comm->reduce_scatter_sum(b.data(), rb.data(), 3, DType::kBF16);
  comm->all_gather(i.data(), ri.data(), 3, DType::kI32);
  comm->allreduce_sum(i.data(), 3, DType::kI32);
  EXPECT_EQ(std::memcmp(rb.data(), b.data(), 6), 0);
  EXPECT_EQ(ri, i);
  auto sub = comm->split(3, 0);
  EXPECT_EQ(sub->size(), 1);
  EXPECT_THROW(comm->split(-1, 0), ssiat::Error);
  EXPECT_EQ(comm->stats().total_bytes(), 0u);  // nothing leaves a single rank
  EXPECT_EQ(comm->stats().calls[static_cast<int>(Collective::kReduceScatter)], 1u);
  EXPECT_EQ(comm->stats().calls[static_cast<int>(Collective::kAllGather)], 1u);
  comm->reset_stats();
  EXPECT_EQ(comm->stats().calls[static_cast<int>(Collective::kReduceScatter)], 0u);
  EXPECT_EQ(dtype_bytes(DType::kBF16), 2u);
  EXPECT_EQ(dtype_bytes(DType::kI32), 4u);
  EXPECT_STREQ(dtype_name(DType::kBF16), "bf16");
}

}  // namespace
}  // namespace ssiat::distributed
