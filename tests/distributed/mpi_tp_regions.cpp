// Tensor-parallel regions (distributed/tp_regions.h) under mpirun -np 2 and 4, the whole world
// and split tp groups of 2 adjacent ranks:
// - each region's forward and backward against its definition, bit for bit (the sums against a
//   rank-ordered serial sum);
// - scatter and gather invert each other, and each forward/backward pair is adjoint;
// - a Megatron MLP block Z = (X A) B with A split by columns and B by rows, built from copy and
//   reduce, gives Z, dX, dA and dB of the one-rank computation (f64, 1e-12 relative);
// - with one rank every region is a no-op that sends nothing.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "distributed/comm.h"
#include "distributed/tp_regions.h"
#include "kernels/check.h"

namespace ssiat::distributed {
namespace {

namespace region = tp_region;

// Value of element i on rank r: differs by rank, magnitudes spread so the sum order matters.
double value(int r, size_t i) {
  const double mantissa = 1.0 + 0.37 * static_cast<double>((i * 7 + static_cast<size_t>(r) * 13) % 11);
  const int exponent = static_cast<int>((static_cast<size_t>(r) * 5 + i) % 9) - 4;
  return std::ldexp(mantissa, exponent) * ((i + static_cast<size_t>(r)) % 3 ? 1 : -1);
}

std::vector<double> filled(int r, size_t n) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; i++) v[i] = value(r, i);
  return v;
}

// The groups a test runs on: the world, and (with 4 ranks) tp groups of 2 adjacent ranks.
std::vector<std::unique_ptr<Communicator>> groups() {
  std::vector<std::unique_ptr<Communicator>> g;
  auto world = make_mpi_communicator();
  if (world->size() >= 4) g.push_back(world->split(world->rank() / 2, world->rank()));
  g.push_back(std::move(world));
  return g;
}

TEST(TpRegions, CopyAndReduceAreIdentityOneWayAndRankOrderedSumsTheOther) {
  for (auto& tp : groups()) {
    const size_t n = 37;
    std::vector<double> x = filled(tp->rank(), n);
    const std::vector<double> before = x;
    region::copy_forward(*tp, x.data(), n, DType::kF64);
    region::reduce_backward(*tp, x.data(), n, DType::kF64);
    EXPECT_EQ(0, std::memcmp(x.data(), before.data(), n * sizeof(double)));
    std::vector<double> sum(n, 0.0);  // serial, in rank order
    for (int r = 0; r < tp->size(); r++)
      for (size_t i = 0; i < n; i++) sum[i] = r == 0 ? value(0, i) : sum[i] + value(r, i);
    std::vector<double> y = x;
    region::reduce_forward(*tp, y.data(), n, DType::kF64);
    EXPECT_EQ(0, std::memcmp(y.data(), sum.data(), n * sizeof(double)));
    region::copy_backward(*tp, x.data(), n, DType::kF64);
    EXPECT_EQ(0, std::memcmp(x.data(), sum.data(), n * sizeof(double)));
  }
}

TEST(TpRegions, ScatterAndGatherMoveColumnBlocksAndInvertEachOther) {
  for (auto& tp : groups()) {
    const size_t p = static_cast<size_t>(tp->size()), rows = 5, bc = 3, cols = bc * p;
    const std::vector<double> full = filled(99, rows * cols);  // the same on every rank
    std::vector<double> block(rows * bc), back(rows * cols, NAN);
    region::scatter_forward(*tp, full.data(), block.data(), rows, cols, DType::kF64);
    for (size_t r = 0; r < rows; r++)
      for (size_t c = 0; c < bc; c++)
        EXPECT_EQ(block[r * bc + c], full[r * cols + static_cast<size_t>(tp->rank()) * bc + c]);
    region::gather_forward(*tp, block.data(), back.data(), rows, cols, DType::kF64);
    EXPECT_EQ(0, std::memcmp(back.data(), full.data(), full.size() * sizeof(double)));
    // The backward passes are the same moves the other way.
    std::vector<double> dblock(rows * bc), dfull(rows * cols, NAN);
    region::gather_backward(*tp, full.data(), dblock.data(), rows, cols, DType::kF64);
    EXPECT_EQ(0, std::memcmp(dblock.data(), block.data(), block.size() * sizeof(double)));
    region::scatter_backward(*tp, dblock.data(), dfull.data(), rows, cols, DType::kF64);
    EXPECT_EQ(0, std::memcmp(dfull.data(), full.data(), full.size() * sizeof(double)));
  }
}

// <gather_forward(x), y> = <x, gather_backward(y)> summed over ranks (the pair is adjoint), and
// likewise for scatter; f32 blocks with ranks holding different data.
TEST(TpRegions, ForwardAndBackwardArePairedAsAdjoints) {
  for (auto& tp : groups()) {
    const size_t p = static_cast<size_t>(tp->size()), rows = 4, bc = 2, cols = bc * p;
    std::vector<float> x(rows * bc), y(rows * cols), gx(rows * cols), by(rows * bc);
    for (size_t i = 0; i < x.size(); i++) x[i] = static_cast<float>(value(tp->rank(), i));
    for (size_t i = 0; i < y.size(); i++) y[i] = static_cast<float>(value(7, i));  // same on all ranks
    region::gather_forward(*tp, x.data(), gx.data(), rows, cols, DType::kF32);
    region::gather_backward(*tp, y.data(), by.data(), rows, cols, DType::kF32);
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < y.size(); i++) lhs += static_cast<double>(gx[i]) * y[i];  // every rank: the whole
    for (size_t i = 0; i < x.size(); i++) rhs += static_cast<double>(x[i]) * by[i];  // every rank: its block
    double rhs_all = rhs;
    tp->allreduce_sum(&rhs_all, 1, DType::kF64);
    EXPECT_NEAR(lhs, rhs_all, 1e-12 * std::abs(lhs));
  }
}

// Row-major (n, k) @ (k, m), f64.
std::vector<double> mm(const std::vector<double>& a, const std::vector<double>& b, size_t n, size_t k, size_t m) {
  std::vector<double> c(n * m, 0.0);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < k; j++)
      for (size_t l = 0; l < m; l++) c[i * m + l] += a[i * k + j] * b[j * m + l];
  return c;
}
std::vector<double> transpose(const std::vector<double>& a, size_t n, size_t m) {
  std::vector<double> t(n * m);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < m; j++) t[j * n + i] = a[i * m + j];
  return t;
}
double rel_err(const std::vector<double>& a, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) num += (a[i] - ref[i]) * (a[i] - ref[i]), den += ref[i] * ref[i];
  return std::sqrt(num / den);
}

// Z = (X A) B, A (C, H) column-parallel, B (H, C) row-parallel: the Megatron MLP without its
// activation. Each rank holds A_i = A[:, i-th block] and B_i = B[i-th block, :].
TEST(TpRegions, ColumnThenRowParallelMatchesOneRank) {
  for (auto& tp : groups()) {
    const size_t p = static_cast<size_t>(tp->size()), N = 6, C = 5, hb = 3, H = hb * p;
    const std::vector<double> X = filled(1, N * C), A = filled(2, C * H), B = filled(3, H * C), dZ = filled(4, N * C);
    // One rank: Z, and the gradients for dZ.
    const auto Y = mm(X, A, N, C, H);
    const auto Z = mm(Y, B, N, H, C);
    const auto dY = mm(dZ, transpose(B, H, C), N, C, H);
    const auto dX = mm(dY, transpose(A, C, H), N, H, C);
    const auto dA = mm(transpose(X, N, C), dY, C, N, H);
    const auto dB = mm(transpose(Y, N, H), dZ, H, N, C);
    // tp ranks: the shards, then the layers built from the regions.
    std::vector<double> Ai(C * hb), Bi(hb * C);
    region::scatter_forward(*tp, A.data(), Ai.data(), C, H, DType::kF64);  // own column block
    std::memcpy(Bi.data(), B.data() + static_cast<size_t>(tp->rank()) * hb * C, Bi.size() * sizeof(double));
    std::vector<double> x = X;
    region::copy_forward(*tp, x.data(), x.size(), DType::kF64);
    const auto Yi = mm(x, Ai, N, C, hb);
    auto Zi = mm(Yi, Bi, N, hb, C);
    region::reduce_forward(*tp, Zi.data(), Zi.size(), DType::kF64);
    EXPECT_LE(rel_err(Zi, Z), 1e-12);
    std::vector<double> dz = dZ;
    region::reduce_backward(*tp, dz.data(), dz.size(), DType::kF64);
    const auto dYi = mm(dz, transpose(Bi, hb, C), N, C, hb);
    const auto dBi = mm(transpose(Yi, N, hb), dz, hb, N, C);
    const auto dAi = mm(transpose(x, N, C), dYi, C, N, hb);
    auto dx = mm(dYi, transpose(Ai, C, hb), N, hb, C);
    region::copy_backward(*tp, dx.data(), dx.size(), DType::kF64);
    EXPECT_LE(rel_err(dx, dX), 1e-12);
    std::vector<double> dA_all(C * H);
    region::gather_forward(*tp, dAi.data(), dA_all.data(), C, H, DType::kF64);
    EXPECT_LE(rel_err(dA_all, dA), 1e-12);
    const std::vector<double> dB_mine(dB.begin() + static_cast<std::ptrdiff_t>(tp->rank() * hb * C),
                                      dB.begin() + static_cast<std::ptrdiff_t>((tp->rank() + 1) * hb * C));
    EXPECT_LE(rel_err(dBi, dB_mine), 1e-12);
  }
}

TEST(TpRegions, OneRankIsANoOpThatSendsNothing) {
  auto world = make_mpi_communicator();
  auto one = world->split(world->rank(), 0);  // a group of one
  ASSERT_EQ(one->size(), 1);
  std::vector<double> x = filled(world->rank(), 12), y(12, NAN);
  const std::vector<double> before = x;
  region::copy_backward(*one, x.data(), x.size(), DType::kF64);
  region::reduce_forward(*one, x.data(), x.size(), DType::kF64);
  region::scatter_forward(*one, x.data(), y.data(), 3, 4, DType::kF64);
  EXPECT_EQ(0, std::memcmp(y.data(), before.data(), y.size() * sizeof(double)));
  region::gather_forward(*one, x.data(), x.data(), 3, 4, DType::kF64);  // in place
  EXPECT_EQ(0, std::memcmp(x.data(), before.data(), x.size() * sizeof(double)));
  EXPECT_EQ(one->stats().total_bytes(), 0u);
  for (int c = 0; c < kNumCollectives; c++) EXPECT_EQ(one->stats().calls[c], 0u) << collective_name(static_cast<Collective>(c));
}

TEST(TpRegions, ColumnsThatDoNotSplitAreRefusedNamingBoth) {
  auto world = make_mpi_communicator();
  std::vector<double> x(2 * 5), y(2 * 5);
  try {
    region::scatter_forward(*world, x.data(), y.data(), 2, static_cast<size_t>(world->size()) * 2 + 1, DType::kF64);
    ADD_FAILURE() << "accepted";
  } catch (const ssiat::Error& e) {
    EXPECT_NE(std::string(e.what()).find("do not split over tp = " + std::to_string(world->size())), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ssiat::distributed

#include "tests/distributed/mpi_test_main.h"
