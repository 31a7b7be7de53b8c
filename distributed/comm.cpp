// Communicators (contract: distributed/comm.h): the single-process communicator and MPI on
// MPI_COMM_WORLD.
//
// Determinism of allreduce_sum: the buffer is cut into chunks of at most kChunkBytes; each chunk
// is split into R contiguous slices (slice r owned by rank r). MPI_Alltoallv hands rank r its
// slice from every rank, rank r sums them in rank order 0..R-1 (acc = x_0; acc += x_1; ...; in
// the element type, FMA contraction off), and MPI_Allgatherv copies the reduced slices back to
// every rank. MPI only moves bytes, so every rank ends with identical bits, independent of the
// MPI implementation, its reduction tree and its algorithm choice. Traffic per rank is ~2N bytes
// (not R·N as with a plain allgather), and the extra memory is bounded by kChunkBytes.
// Integer sums wrap modulo 2^64 (kI64) or 2^8 (kU8) instead of overflowing.
//
// make_mpi_communicator is collective over MPI_COMM_WORLD (it duplicates it, so our traffic never
// matches user messages). If it initialised MPI it also finalises it at process exit through a
// function-local static guard; if the caller initialised MPI, the caller finalises it. Errors
// throw ssiat::Error naming the call and the rank (MPI_ERRORS_RETURN on the duplicate).
#include "distributed/comm.h"

// (OMPI_SKIP_MPICXX comes from the ssiat_distributed target: C API only.)
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/check.h"

namespace ssiat::distributed {
namespace {

constexpr size_t kChunkBytes = size_t{8} << 20;  // bound on the per-call receive buffer

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF64: return 8;
    case DType::kI64: return 8;
    case DType::kU8: return 1;
  }
  SSIAT_CHECK(false) << "unknown DType " << static_cast<int>(t);
  return 0;
}

// out[i] = parts[0][i] + parts[1][i] + ... + parts[R-1][i], left to right. `parts` holds R
// arrays of n elements back to back.
template <typename T>
void sum_in_rank_order(const unsigned char* parts, size_t n, int nranks, unsigned char* out) {
  std::vector<T> acc(n);
  std::memcpy(acc.data(), parts, n * sizeof(T));
  for (int r = 1; r < nranks; r++) {
    const unsigned char* p = parts + static_cast<size_t>(r) * n * sizeof(T);
    for (size_t i = 0; i < n; i++) {
      T v;
      std::memcpy(&v, p + i * sizeof(T), sizeof(T));
      acc[i] = acc[i] + v;
    }
  }
  std::memcpy(out, acc.data(), n * sizeof(T));
}

// Unsigned twin for integers: wrapping addition is defined, bit pattern equals two's complement.
void sum_slice(DType t, const unsigned char* parts, size_t n, int nranks, unsigned char* out) {
  switch (t) {
    case DType::kF32: return sum_in_rank_order<float>(parts, n, nranks, out);
    case DType::kF64: return sum_in_rank_order<double>(parts, n, nranks, out);
    case DType::kI64: return sum_in_rank_order<uint64_t>(parts, n, nranks, out);
    case DType::kU8: {
      std::vector<uint8_t> acc(parts, parts + n);
      for (int r = 1; r < nranks; r++)
        for (size_t i = 0; i < n; i++) acc[i] = static_cast<uint8_t>(acc[i] + parts[static_cast<size_t>(r) * n + i]);
      std::memcpy(out, acc.data(), n);
      return;
    }
  }
}

class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(void* buf, size_t count, DType dtype) override {
    dtype_size(dtype);
    SSIAT_CHECK(buf != nullptr || count == 0) << "allreduce_sum: null buffer with count " << count;
  }
  void broadcast(void* buf, size_t count, DType dtype, int root) override {
    dtype_size(dtype);
    SSIAT_CHECK(root == 0) << "broadcast: root " << root << " out of range for size 1";
    SSIAT_CHECK(buf != nullptr || count == 0) << "broadcast: null buffer with count " << count;
  }
  void barrier() override {}
};

// Finalises MPI at process exit if this library initialised it.
struct MpiFinalizer {
  ~MpiFinalizer() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      SSIAT_CHECK(rc == MPI_SUCCESS) << "MPI_Init_thread failed (code " << rc << ")";
      static MpiFinalizer finalizer;  // destroyed at exit, after main returns
      (void)finalizer;
    }
    int finalized = 0;
    MPI_Finalized(&finalized);
    SSIAT_CHECK(!finalized) << "make_mpi_communicator: MPI has already been finalised";
    SSIAT_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_) == MPI_SUCCESS) << "MPI_Comm_dup failed";
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(void* buf, size_t count, DType dtype) override {
    const size_t es = dtype_size(dtype);
    SSIAT_CHECK(buf != nullptr || count == 0) << "allreduce_sum: null buffer with count " << count << " on rank "
                                             << rank_;
    if (size_ == 1 || count == 0) return;
    unsigned char* bytes = static_cast<unsigned char*>(buf);
    const size_t R = static_cast<size_t>(size_);
    // Elements per chunk: the receive buffer (R slices of ~chunk/R elements) stays ~kChunkBytes.
    const size_t chunk_elems = std::max<size_t>(R, kChunkBytes / es);
    std::vector<int> counts(R), displs(R), recv_counts(R), recv_displs(R);
    std::vector<unsigned char> recv, reduced;
    for (size_t off = 0; off < count; off += chunk_elems) {
      const size_t n = std::min(chunk_elems, count - off);
      unsigned char* chunk = bytes + off * es;
      // Slice r: elements [start_r, start_r + len_r) of the chunk, in bytes for MPI_BYTE.
      size_t start = 0;
      for (size_t r = 0; r < R; r++) {
        const size_t len = n / R + (r < n % R ? 1 : 0);
        counts[r] = static_cast<int>(len * es);
        displs[r] = static_cast<int>(start * es);
        start += len;
      }
      const size_t mine = static_cast<size_t>(counts[rank_]) / es;
      for (size_t r = 0; r < R; r++) {
        recv_counts[r] = counts[rank_];
        recv_displs[r] = static_cast<int>(r * mine * es);
      }
      recv.resize(R * mine * es);
      reduced.resize(mine * es);
      check(MPI_Alltoallv(chunk, counts.data(), displs.data(), MPI_BYTE, recv.data(), recv_counts.data(),
                          recv_displs.data(), MPI_BYTE, comm_),
            "MPI_Alltoallv");
      sum_slice(dtype, recv.data(), mine, size_, reduced.data());
      check(MPI_Allgatherv(reduced.data(), counts[rank_], MPI_BYTE, chunk, counts.data(), displs.data(), MPI_BYTE,
                           comm_),
            "MPI_Allgatherv");
    }
  }

  void broadcast(void* buf, size_t count, DType dtype, int root) override {
    const size_t es = dtype_size(dtype);
    SSIAT_CHECK(root >= 0 && root < size_) << "broadcast: root " << root << " out of range for size " << size_;
    SSIAT_CHECK(buf != nullptr || count == 0) << "broadcast: null buffer with count " << count << " on rank "
                                             << rank_;
    unsigned char* bytes = static_cast<unsigned char*>(buf);
    const size_t total = count * es;
    constexpr size_t kMaxMsg = size_t{1} << 30;  // MPI counts are int
    for (size_t off = 0; off < total; off += kMaxMsg) {
      const size_t n = std::min(kMaxMsg, total - off);
      check(MPI_Bcast(bytes + off, static_cast<int>(n), MPI_BYTE, root, comm_), "MPI_Bcast");
    }
  }

  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }

 private:
  void check(int rc, const char* what) const {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    SSIAT_CHECK(false) << what << " failed on rank " << rank_ << ": " << std::string(msg, len);
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator() { return std::make_unique<SelfCommunicator>(); }

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace ssiat::distributed
