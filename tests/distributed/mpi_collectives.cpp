// The collectives of distributed/comm.h on the MPI communicator, under mpirun -np 2 and -np 4:
// reduce_scatter_sum, all_gather, allreduce_sum, broadcast and split for f32, f64, bf16 and i32,
// odd counts, in place and not, against a serial rank-ordered reference every rank computes
// itself (each rank's input is a pure function of its world rank and the index), bit for bit;
// allreduce == reduce_scatter + all_gather; sub-communicators (tp groups of adjacent ranks, dp
// groups strided, a reversed key order); byte counters against the analytic counts; one-line
// errors naming the rank and the collective.
//
// EXPECT only (never ASSERT), so every rank runs the same sequence of collectives even when a
// check fails. Only rank 0 prints GoogleTest output; other ranks print only their failures.
// (OMPI_SKIP_MPICXX comes from the ssiat_distributed target: C API only.)
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "distributed/comm.h"
#include "tests/distributed/mpi_test_util.h"
#include "kernels/backend.h"
#include "kernels/check.h"

namespace ssiat::distributed {
namespace {

using ssiat::testing::same_bits_on_all_ranks;
using ssiat::testing::world_rank;
using ssiat::testing::world_size;

using kernels::bf16;

uint64_t mix(int r, size_t i) {
  return (i * 0x9E3779B97F4A7C15ull) ^ (static_cast<uint64_t>(r + 1) * 0xBF58476D1CE4E5B9ull);
}

// Mixed magnitudes and signs, so that a float sum depends on the order of the ranks.
double real_input(int r, size_t i) {
  const uint64_t h = mix(r, i);
  static const double kScale[4] = {1e-3, 1.0, 3e4, 1e8};
  const double frac = 1.0 + static_cast<double>((h >> 20) % 100003) / 100003.0;
  return (((h >> 40) & 1) ? -1.0 : 1.0) * kScale[(h >> 7) % 4] * frac;
}

// Per element type: the DType, the input of world rank r at index i, and the reference sum over
// `ranks` (world ranks, in communicator rank order) written out independently of comm.cpp.
template <typename T>
struct Traits;

template <>
struct Traits<float> {
  static constexpr DType kType = DType::kF32;
  static float input(int r, size_t i) { return static_cast<float>(real_input(r, i)); }
  static float sum(const std::vector<int>& ranks, size_t i) {
    float acc = input(ranks[0], i);
    for (size_t k = 1; k < ranks.size(); k++) acc = acc + input(ranks[k], i);
    return acc;
  }
};

template <>
struct Traits<double> {
  static constexpr DType kType = DType::kF64;
  static double input(int r, size_t i) { return real_input(r, i); }
  static double sum(const std::vector<int>& ranks, size_t i) {
    double acc = input(ranks[0], i);
    for (size_t k = 1; k < ranks.size(); k++) acc = acc + input(ranks[k], i);
    return acc;
  }
};

template <>
struct Traits<bf16> {
  static constexpr DType kType = DType::kBF16;
  static bf16 input(int r, size_t i) { return kernels::bf16_from_float(static_cast<float>(real_input(r, i))); }
  static bf16 sum(const std::vector<int>& ranks, size_t i) {  // f32 accumulator, one rounding
    float acc = kernels::float_from_bf16(input(ranks[0], i));
    for (size_t k = 1; k < ranks.size(); k++) acc = acc + kernels::float_from_bf16(input(ranks[k], i));
    return kernels::bf16_from_float(acc);
  }
};

template <>
struct Traits<int32_t> {
  static constexpr DType kType = DType::kI32;
  static int32_t input(int r, size_t i) {
    if (i == 0) return INT32_MAX;  // overflows when summed: must wrap
    return static_cast<int32_t>(static_cast<uint32_t>(mix(r, i) >> 17));
  }
  static int32_t sum(const std::vector<int>& ranks, size_t i) {
    uint32_t acc = 0;
    for (int r : ranks) acc += static_cast<uint32_t>(input(r, i));
    return static_cast<int32_t>(acc);
  }
};

template <typename T>
bool same_bytes(const T* a, const T* b, size_t n) {
  return n == 0 || std::memcmp(a, b, n * sizeof(T)) == 0;
}

// Every collective of `comm` on `n` elements of T; `members` are the world ranks of comm's ranks
// 0..R-1. Checks bits against the serial reference and the byte counter against comm.h.
template <typename T>
void check_collectives(Communicator& comm, const std::vector<int>& members, size_t n) {
  using Tr = Traits<T>;
  const int R = comm.size();
  const int me = comm.rank();
  const int wr = world_rank();
  const size_t es = sizeof(T);
  const std::string ctx = std::string(dtype_name(Tr::kType)) + " n=" + std::to_string(n) + " R=" +
                          std::to_string(R) + " rank=" + std::to_string(me);
  EXPECT_EQ(dtype_bytes(Tr::kType), es);
  std::vector<T> input(n), want(n);
  for (size_t i = 0; i < n; i++) {
    input[i] = Tr::input(wr, i);
    want[i] = Tr::sum(members, i);
  }
  const Slice mine = slice_of(n, R, me);
  comm.reset_stats();

  // reduce_scatter_sum, out of place and in place.
  std::vector<T> slice(mine.count);
  comm.reduce_scatter_sum(input.data(), slice.data(), n, Tr::kType);
  EXPECT_TRUE(same_bytes(slice.data(), want.data() + mine.offset, mine.count)) << "reduce_scatter " << ctx;
  std::vector<T> inplace = input;
  comm.reduce_scatter_sum(inplace.data(), inplace.data() + mine.offset, n, Tr::kType);
  EXPECT_TRUE(same_bytes(inplace.data() + mine.offset, want.data() + mine.offset, mine.count))
      << "reduce_scatter in place " << ctx;

  // all_gather of the reduced slices, out of place and in place: reduce_scatter + all_gather.
  std::vector<T> gathered(n);
  comm.all_gather(slice.data(), gathered.data(), n, Tr::kType);
  EXPECT_TRUE(same_bytes(gathered.data(), want.data(), n)) << "reduce_scatter + all_gather " << ctx;
  comm.all_gather(inplace.data() + mine.offset, inplace.data(), n, Tr::kType);
  EXPECT_TRUE(same_bytes(inplace.data(), want.data(), n)) << "all_gather in place " << ctx;

  // allreduce_sum: the same bits as reduce_scatter + all_gather.
  std::vector<T> all = input;
  comm.allreduce_sum(all.data(), n, Tr::kType);
  EXPECT_TRUE(same_bytes(all.data(), want.data(), n)) << "allreduce " << ctx;
  EXPECT_TRUE(same_bytes(all.data(), gathered.data(), n)) << "allreduce != reduce_scatter + all_gather " << ctx;

  // broadcast from the last rank.
  const int root = R - 1;
  std::vector<T> b(n);
  for (size_t i = 0; i < n; i++) b[i] = Tr::input(me == root ? wr : members[root], i);
  if (me != root && n > 0) std::memset(b.data(), 0xAB, n * es);
  comm.broadcast(b.data(), n, Tr::kType, root);
  bool ok = true;
  for (size_t i = 0; i < n; i++) {
    const T w = Tr::input(members[root], i);
    ok = ok && std::memcmp(&b[i], &w, es) == 0;
  }
  EXPECT_TRUE(ok) << "broadcast " << ctx;

  // Byte counters (comm.h): B = n·es bytes, S = own slice bytes.
  const CommStats& st = comm.stats();
  const uint64_t B = n * es, S = mine.count * es, R1 = static_cast<uint64_t>(R - 1);
  EXPECT_EQ(st.bytes(Collective::kReduceScatter), 2 * (B - S)) << ctx;
  EXPECT_EQ(st.bytes(Collective::kAllGather), 2 * R1 * S) << ctx;
  EXPECT_EQ(st.bytes(Collective::kAllReduce), (B - S) + R1 * S) << ctx;
  EXPECT_EQ(st.bytes(Collective::kBroadcast), me == root ? R1 * B : 0) << ctx;
  EXPECT_EQ(st.calls[static_cast<int>(Collective::kReduceScatter)], 2u);
  EXPECT_EQ(st.calls[static_cast<int>(Collective::kAllGather)], 2u);
  EXPECT_EQ(st.calls[static_cast<int>(Collective::kAllReduce)], 1u);
  EXPECT_EQ(st.calls[static_cast<int>(Collective::kBroadcast)], 1u);
  EXPECT_EQ(st.total_bytes(), 3 * (B - S) + 3 * R1 * S + (me == root ? R1 * B : 0)) << ctx;
}

std::vector<int> world_members() {
  std::vector<int> m(static_cast<size_t>(world_size()));
  for (size_t r = 0; r < m.size(); r++) m[r] = static_cast<int>(r);
  return m;
}

template <typename T>
void check_counts(Communicator& comm, const std::vector<int>& members) {
  const size_t R = static_cast<size_t>(comm.size());
  for (size_t n : {size_t{0}, size_t{1}, R - 1, R + 1, 2 * R + 3, size_t{1031}, size_t{4099}})
    check_collectives<T>(comm, members, n);
}

TEST(MpiCollectives, SliceContract) {
  // 10 over 4: 3, 3, 2, 2, contiguous in rank order.
  const size_t want_off[4] = {0, 3, 6, 8}, want_n[4] = {3, 3, 2, 2};
  for (int r = 0; r < 4; r++) {
    EXPECT_EQ(slice_of(10, 4, r).offset, want_off[r]);
    EXPECT_EQ(slice_of(10, 4, r).count, want_n[r]);
  }
  EXPECT_EQ(slice_of(2, 4, 3).count, 0u);
  EXPECT_EQ(slice_of(2, 4, 3).offset, 2u);
  EXPECT_THROW(slice_of(2, 4, 4), ssiat::Error);
}

TEST(MpiCollectives, F32) {
  auto comm = make_mpi_communicator();
  check_counts<float>(*comm, world_members());
}
TEST(MpiCollectives, F64) {
  auto comm = make_mpi_communicator();
  check_counts<double>(*comm, world_members());
}
TEST(MpiCollectives, BF16) {
  auto comm = make_mpi_communicator();
  check_counts<bf16>(*comm, world_members());
}
TEST(MpiCollectives, I32Wraps) {
  auto comm = make_mpi_communicator();
  check_counts<int32_t>(*comm, world_members());
}

// Several steps of comm.cpp's 8 MiB per step, with uneven slices.
TEST(MpiCollectives, LargeBuffersInSteps) {
  auto comm = make_mpi_communicator();
  check_collectives<float>(*comm, world_members(), 3000017);
  check_collectives<bf16>(*comm, world_members(), 4194311);
}

// bf16 sums accumulate in f32 and round once: 1 + (R-1)·2^-8 with R >= 3 is 1 + 2^-7 after one
// rounding, but 1 when rounded after every add (1 + 2^-8 ties to even, down to 1).
TEST(MpiCollectives, BF16RoundsOnce) {
  auto comm = make_mpi_communicator();
  const int R = comm->size();
  bf16 x = kernels::bf16_from_float(comm->rank() == 0 ? 1.0f : 0.00390625f);
  comm->allreduce_sum(&x, 1, DType::kBF16);
  const float want = R == 2 ? 1.0f : R == 3 ? 1.0078125f : 1.01171875f;
  EXPECT_EQ(x.bits, kernels::bf16_from_float(want).bits) << kernels::float_from_bf16(x);
  if (R >= 3) {
    EXPECT_NE(kernels::float_from_bf16(x), 1.0f);
  }
}

// The inputs make the order observable: the reversed rank order gives other bits (3+ ranks).
TEST(MpiCollectives, InputsAreOrderSensitive) {
  const std::vector<int> fwd = world_members();
  if (fwd.size() < 3) GTEST_SKIP() << "a + b == b + a in IEEE-754; needs 3+ ranks";
  const std::vector<int> rev(fwd.rbegin(), fwd.rend());
  bool differs = false;
  for (size_t i = 0; i < 1031; i++) differs = differs || Traits<float>::sum(fwd, i) != Traits<float>::sum(rev, i);
  EXPECT_TRUE(differs);
}

// tp groups of adjacent ranks (color = rank / tp), dp groups strided (color = rank % tp), and one
// group of every rank in reverse order (key = -rank): sums follow the new communicator's order.
TEST(MpiCollectives, SplitGroups) {
  auto world = make_mpi_communicator();
  const int W = world->size(), wr = world->rank();
  const int tp = 2, dp = W / tp;
  auto tpc = world->split(wr / tp, wr);
  auto dpc = world->split(wr % tp, wr);
  auto rev = world->split(0, -wr);
  EXPECT_EQ(tpc->size(), tp);
  EXPECT_EQ(tpc->rank(), wr % tp);
  EXPECT_EQ(dpc->size(), dp);
  EXPECT_EQ(dpc->rank(), wr / tp);
  EXPECT_EQ(rev->size(), W);
  EXPECT_EQ(rev->rank(), W - 1 - wr);
  std::vector<int> tp_members, dp_members, rev_members;
  for (int k = 0; k < tp; k++) tp_members.push_back(wr / tp * tp + k);
  for (int k = 0; k < dp; k++) dp_members.push_back(k * tp + wr % tp);
  for (int k = W - 1; k >= 0; k--) rev_members.push_back(k);
  for (size_t n : {size_t{0}, size_t{5}, size_t{1031}}) {
    check_collectives<float>(*tpc, tp_members, n);
    check_collectives<bf16>(*tpc, tp_members, n);
    check_collectives<double>(*dpc, dp_members, n);
    check_collectives<int32_t>(*dpc, dp_members, n);
    check_collectives<float>(*rev, rev_members, n);
    check_collectives<bf16>(*rev, rev_members, n);
  }
  // A split of a split; each communicator counts only its own traffic.
  auto one = tpc->split(tpc->rank(), 0);
  EXPECT_EQ(one->size(), 1);
  EXPECT_EQ(one->rank(), 0);
  check_collectives<float>(*one, {wr}, 7);
  EXPECT_EQ(world->stats().total_bytes(), 0u);
  world->barrier();
  EXPECT_EQ(world->stats().calls[static_cast<int>(Collective::kBarrier)], 1u);
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ssiat::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Errors are one line naming the collective and the rank, thrown before any communication.
TEST(MpiCollectives, ErrorsNameRankAndCollective) {
  auto world = make_mpi_communicator();
  const int W = world->size(), wr = world->rank();
  float x = 1.0f;
  const std::string bad_root = message_of([&] { world->broadcast(&x, 1, DType::kF32, W); });
  EXPECT_NE(bad_root.find("broadcast on rank " + std::to_string(wr) + " of " + std::to_string(W)), std::string::npos)
      << bad_root;
  EXPECT_EQ(bad_root.find('\n'), std::string::npos) << bad_root;
  const std::string null_rs = message_of([&] { world->reduce_scatter_sum(nullptr, &x, 3, DType::kF32); });
  EXPECT_NE(null_rs.find("reduce_scatter_sum on rank " + std::to_string(wr)), std::string::npos) << null_rs;
  const std::string null_ag = message_of([&] { world->all_gather(&x, nullptr, 3, DType::kBF16); });
  EXPECT_NE(null_ag.find("all_gather on rank " + std::to_string(wr)), std::string::npos) << null_ag;
  EXPECT_NE(null_ag.find("bf16"), std::string::npos) << null_ag;
  const std::string bad_color = message_of([&] { world->split(-1, 0); });
  EXPECT_NE(bad_color.find("split on rank " + std::to_string(wr)), std::string::npos) << bad_color;
  // In a sub-communicator the world rank is named too (where it differs).
  auto tpc = world->split(wr / 2, wr);
  const std::string sub = message_of([&] { tpc->broadcast(&x, 1, DType::kF32, -1); });
  EXPECT_NE(sub.find("broadcast on rank " + std::to_string(tpc->rank()) + " of 2"), std::string::npos) << sub;
  if (tpc->rank() != wr) {
    EXPECT_NE(sub.find("world rank " + std::to_string(wr)), std::string::npos) << sub;
  }
  EXPECT_EQ(world->stats().total_bytes(), 0u);
  world->barrier();
}

TEST(MpiCollectives, AllRanksHoldTheSameBits) {
  auto comm = make_mpi_communicator();
  std::vector<bf16> b(1031);
  std::vector<double> d(1031);
  for (size_t i = 0; i < b.size(); i++) {
    b[i] = Traits<bf16>::input(comm->rank(), i);
    d[i] = Traits<double>::input(comm->rank(), i);
  }
  comm->allreduce_sum(b.data(), b.size(), DType::kBF16);
  comm->allreduce_sum(d.data(), d.size(), DType::kF64);
  EXPECT_TRUE(same_bits_on_all_ranks(b.data(), b.size() * sizeof(bf16)));
  EXPECT_TRUE(same_bits_on_all_ranks(d.data(), d.size() * sizeof(double)));
}

TEST(MpiCollectives, NcclIsCompiledOnlyWithCuda) {
  auto comm = make_mpi_communicator();
  if (nccl_built()) GTEST_SKIP() << "CUDA build: the NCCL communicator is tested in mpi_nccl";
  const std::string m = message_of([&] { make_nccl_communicator(*comm, 0, nullptr); });
  EXPECT_NE(m.find("without CUDA"), std::string::npos) << m;
}

}  // namespace
}  // namespace ssiat::distributed

#include "tests/distributed/mpi_test_main.h"
