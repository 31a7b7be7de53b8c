// The main() every tests/distributed/mpi_*.cpp executable shares: MPI_Init, GoogleTest with
// rank 0 printing as usual and the other ranks printing only their failed assertions (tagged
// "[rank N]"), then a MAX-reduction of the failures so every rank exits non-zero if any failed.
// Include it once, at the end of a test file; it defines main().
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

namespace ssiat::testing {

class FailureOnlyPrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailureOnlyPrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                 r.summary());
  }

 private:
  int rank_;
};

}  // namespace ssiat::testing

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new ssiat::testing::FailureOnlyPrinter(rank));
  }
  const int rc = RUN_ALL_TESTS();
  int failed = rc != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && failed && rc == 0) std::fprintf(stderr, "FAILED on another rank (see [rank N] lines)\n");
  MPI_Finalize();
  return failed;
}
