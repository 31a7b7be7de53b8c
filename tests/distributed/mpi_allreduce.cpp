// MPI communicator (distributed/comm.h) under mpirun -np 2 and -np 4.
//
// Every rank can compute every rank's input (a pure function of rank and index), so each rank
// computes the expected sum locally in rank order 0..R-1 and compares bits. Inputs mix
// magnitudes so that float addition order matters (checked with 3+ ranks: the reverse order gives
// other bits somewhere), and rank 0's result is broadcast with raw MPI_Bcast to check all ranks hold
// identical bits. Tests use EXPECT only (never ASSERT) so that every rank runs the same sequence
// of collectives even when a check fails. Only rank 0 prints GoogleTest output; other ranks
// print only their failures, prefixed with the rank; the exit code is non-zero on every rank if
// any rank failed.
// (OMPI_SKIP_MPICXX comes from the ssiat_distributed target: C API only.)
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "distributed/comm.h"
#include "tests/distributed/mpi_test_util.h"
#include "kernels/check.h"

namespace ssiat::distributed {
namespace {

using ssiat::testing::same_bits_on_all_ranks;
using ssiat::testing::world_rank;
using ssiat::testing::world_size;

// Input of rank r at index i: magnitudes from 1e-3 to 1e8 with both signs, so that the float
// (and double) sum depends on the order of the ranks.
template <typename T>
T input(int r, size_t i) {
  const uint64_t h = (i * 0x9E3779B97F4A7C15ull) ^ (static_cast<uint64_t>(r + 1) * 0xBF58476D1CE4E5B9ull);
  const int mag = static_cast<int>((h >> 7) % 4);
  static const double kScale[4] = {1e-3, 1.0, 3e4, 1e8};
  const double frac = 1.0 + static_cast<double>((h >> 20) % 100003) / 100003.0;
  const double sign = ((h >> 40) & 1) ? -1.0 : 1.0;
  return static_cast<T>(sign * kScale[mag] * frac);
}

// Expected buf[i] = ((x_0 + x_1) + x_2) + ... for the given rank order.
template <typename T>
std::vector<T> expected_sum(size_t n, int nranks, bool reverse = false) {
  std::vector<T> out(n);
  for (size_t i = 0; i < n; i++) {
    T acc = input<T>(reverse ? nranks - 1 : 0, i);
    for (int k = 1; k < nranks; k++) acc = acc + input<T>(reverse ? nranks - 1 - k : k, i);
    out[i] = acc;
  }
  return out;
}

template <typename T>
void check_float_allreduce(DType dtype, size_t n) {
  auto comm = make_mpi_communicator();
  const int R = comm->size();
  std::vector<T> buf(n);
  for (size_t i = 0; i < n; i++) buf[i] = input<T>(comm->rank(), i);
  comm->allreduce_sum(buf.data(), n, dtype);
  const std::vector<T> want = expected_sum<T>(n, R);
  EXPECT_TRUE(n == 0 || std::memcmp(buf.data(), want.data(), n * sizeof(T)) == 0) << "n = " << n;
  EXPECT_TRUE(same_bits_on_all_ranks(buf.data(), n * sizeof(T)));
  // The data must make the order observable, or this test proves nothing (with 3+ ranks; for
  // two ranks a + b == b + a exactly in IEEE-754).
  if (n >= 1000 && R >= 3) {
    const std::vector<T> rev = expected_sum<T>(n, R, /*reverse=*/true);
    EXPECT_NE(std::memcmp(rev.data(), want.data(), n * sizeof(T)), 0) << "inputs are not order-sensitive";
  }
}

TEST(MpiCommunicator, MatchesWorld) {
  auto comm = make_mpi_communicator();
  EXPECT_EQ(comm->rank(), world_rank());
  EXPECT_EQ(comm->size(), world_size());
  EXPECT_GE(comm->size(), 2);
  comm->barrier();
}

TEST(MpiCommunicator, AllreduceF32InRankOrder) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{3}, size_t{1031}}) check_float_allreduce<float>(DType::kF32, n);
}

TEST(MpiCommunicator, AllreduceF64InRankOrder) {
  for (size_t n : {size_t{2}, size_t{4099}}) check_float_allreduce<double>(DType::kF64, n);
}

// 12 MB of floats and 24 MB of doubles: several chunks of comm.cpp's 8 MiB, odd counts.
TEST(MpiCommunicator, AllreduceLargeBuffersAreChunked) {
  check_float_allreduce<float>(DType::kF32, 3000017);
  check_float_allreduce<double>(DType::kF64, 3000017);
}

TEST(MpiCommunicator, AllreduceI64WrapsLikeTwosComplement) {
  auto comm = make_mpi_communicator();
  const int R = comm->size();
  const size_t n = 517;
  auto value = [](int r, size_t i) -> int64_t {
    if (i == 0) return INT64_MAX;  // overflows when summed: must wrap, not trap
    const uint64_t h = (i * 0x9E3779B97F4A7C15ull) ^ (static_cast<uint64_t>(r + 3) * 0x94D049BB133111EBull);
    return static_cast<int64_t>(h);
  };
  std::vector<int64_t> buf(n), want(n);
  for (size_t i = 0; i < n; i++) {
    buf[i] = value(comm->rank(), i);
    uint64_t acc = 0;
    for (int r = 0; r < R; r++) acc += static_cast<uint64_t>(value(r, i));
    want[i] = static_cast<int64_t>(acc);
  }
  comm->allreduce_sum(buf.data(), n, DType::kI64);
  EXPECT_EQ(buf, want);
  EXPECT_EQ(buf[0], static_cast<int64_t>(static_cast<uint64_t>(INT64_MAX) * static_cast<uint64_t>(R)));
  EXPECT_TRUE(same_bits_on_all_ranks(buf.data(), n * sizeof(int64_t)));
}

TEST(MpiCommunicator, AllreduceU8) {
  auto comm = make_mpi_communicator();
  const int R = comm->size();
  std::vector<uint8_t> buf(37), want(37, 0);
  for (size_t i = 0; i < buf.size(); i++) {
    buf[i] = static_cast<uint8_t>(comm->rank() * 70 + i);
    for (int r = 0; r < R; r++) want[i] = static_cast<uint8_t>(want[i] + r * 70 + i);
  }
  comm->allreduce_sum(buf.data(), buf.size(), DType::kU8);
  EXPECT_EQ(buf, want);
}

TEST(MpiCommunicator, BroadcastFromEveryRoot) {
  auto comm = make_mpi_communicator();
  for (int root = 0; root < comm->size(); root++) {
    std::vector<double> buf(1001);
    for (size_t i = 0; i < buf.size(); i++)
      buf[i] = comm->rank() == root ? input<double>(root, i) : -1.0 * static_cast<double>(comm->rank());
    comm->broadcast(buf.data(), buf.size(), DType::kF64, root);
    bool ok = true;
    for (size_t i = 0; i < buf.size(); i++) ok = ok && buf[i] == input<double>(root, i);
    EXPECT_TRUE(ok) << "root " << root;
    std::vector<int64_t> small = {comm->rank() == root ? int64_t{42} + root : int64_t{0}};
    comm->broadcast(small.data(), 1, DType::kI64, root);
    EXPECT_EQ(small[0], 42 + root);
  }
}

TEST(MpiCommunicator, BadRootThrowsBeforeCommunicating) {
  auto comm = make_mpi_communicator();
  double x = 1.0;
  EXPECT_THROW(comm->broadcast(&x, 1, DType::kF64, comm->size()), ssiat::Error);
  EXPECT_THROW(comm->broadcast(&x, 1, DType::kF64, -1), ssiat::Error);
  comm->barrier();
}

}  // namespace
}  // namespace ssiat::distributed

#include "tests/distributed/mpi_test_main.h"
