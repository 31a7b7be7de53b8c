// Communicators (contract: distributed/comm.h): the shared helpers, the single-process
// communicator and MPI. The NCCL communicator is in nccl_comm.cu (CUDA builds) or no_nccl.cpp.
//
// MPI algorithm. reduce_scatter_sum works in steps of at most kChunkBytes: step j packs, for
// every rank r, elements [j, j + n_r) of r's slice into one contiguous send buffer (so MPI's int
// counts and displacements stay small whatever the buffer size), MPI_Alltoallv hands each rank
// that part of its slice from every rank, and the rank sums the R parts in rank order 0..R-1
// (acc = x_0; acc += x_1; ...; FMA contraction is off and there are only adds). all_gather is the
// mirror: MPI_Allgatherv of each rank's step-j part into a staging buffer, then copied into
// place. allreduce_sum is the two in place. MPI only moves bytes (MPI_BYTE), so every rank ends
// with identical bits, independent of the MPI implementation, its reduction tree and its
// algorithm choice; all ranks run the same number of steps (from `count`, the same everywhere).
//
// make_mpi_communicator is collective over MPI_COMM_WORLD (it duplicates it, so our traffic never
// matches user messages). If it initialised MPI it also finalises it at process exit through a
// function-local static guard; if the caller initialised MPI, the caller finalises it. Errors
// throw ssiat::Error naming the call and the rank (MPI_ERRORS_RETURN on the duplicate).
#include "distributed/comm.h"

// (OMPI_SKIP_MPICXX comes from the ssiat_distributed target: C API only.)
#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "distributed/comm_detail.h"
#include "kernels/check.h"

namespace ssiat::distributed {

size_t dtype_bytes(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF64: return 8;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kU8: return 1;
  }
  SSIAT_CHECK(false) << "unknown DType " << static_cast<int>(t);
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kF64: return "f64";
    case DType::kBF16: return "bf16";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
    case DType::kU8: return "u8";
  }
  return "unknown";
}

const char* collective_name(Collective c) {
  switch (c) {
    case Collective::kAllReduce: return "allreduce_sum";
    case Collective::kReduceScatter: return "reduce_scatter_sum";
    case Collective::kAllGather: return "all_gather";
    case Collective::kBroadcast: return "broadcast";
    case Collective::kBarrier: return "barrier";
  }
  return "unknown";
}

Slice slice_of(size_t count, int nranks, int r) {
  SSIAT_CHECK(nranks >= 1 && r >= 0 && r < nranks) << "slice_of: rank " << r << " out of range for " << nranks
                                                   << " ranks";
  const size_t R = static_cast<size_t>(nranks);
  const size_t q = count / R;
  const size_t extra = count % R;
  const size_t ur = static_cast<size_t>(r);
  return Slice{ur * q + std::min(ur, extra), q + (ur < extra ? 1 : 0)};
}

uint64_t CommStats::total_bytes() const {
  uint64_t t = 0;
  for (uint64_t b : bytes_sent) t += b;
  return t;
}

namespace detail {

std::string where(Collective c, int rank, int size, int world_rank) {
  std::string s = std::string(collective_name(c)) + " on rank " + std::to_string(rank) + " of " +
                  std::to_string(size);
  if (world_rank >= 0 && world_rank != rank) s += " (world rank " + std::to_string(world_rank) + ")";
  return s;
}

void count_traffic(CommStats& st, Collective c, size_t count, DType dtype, int rank, int size, int root) {
  const uint64_t es = dtype_bytes(dtype);
  const uint64_t B = count * es;
  const uint64_t S = (size > 0 ? slice_of(count, size, rank).count : 0) * es;
  const uint64_t R1 = size > 0 ? static_cast<uint64_t>(size - 1) : 0;
  uint64_t b = 0;
  switch (c) {
    case Collective::kReduceScatter: b = B - S; break;
    case Collective::kAllGather: b = R1 * S; break;
    case Collective::kAllReduce: b = (B - S) + R1 * S; break;
    case Collective::kBroadcast: b = rank == root ? R1 * B : 0; break;
    case Collective::kBarrier: b = 0; break;
  }
  st.bytes_sent[static_cast<int>(c)] += b;
  st.calls[static_cast<int>(c)] += 1;
}

}  // namespace detail

namespace {

using detail::where;

class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void reduce_scatter_sum(const void* send, void* recv, size_t count, DType dtype) override {
    copy(Collective::kReduceScatter, send, recv, count, dtype);
  }
  void all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    copy(Collective::kAllGather, send, recv, count, dtype);
  }
  void allreduce_sum(void* buf, size_t count, DType dtype) override {
    dtype_bytes(dtype);
    SSIAT_CHECK(buf != nullptr || count == 0) << where(Collective::kAllReduce, 0, 1, -1) << ": null buffer with count "
                                             << count;
    detail::count_traffic(stats_, Collective::kAllReduce, count, dtype, 0, 1, 0);
  }
  void broadcast(void* buf, size_t count, DType dtype, int root) override {
    dtype_bytes(dtype);
    SSIAT_CHECK(root == 0) << where(Collective::kBroadcast, 0, 1, -1) << ": root " << root
                           << " out of range for size 1";
    SSIAT_CHECK(buf != nullptr || count == 0) << where(Collective::kBroadcast, 0, 1, -1)
                                             << ": null buffer with count " << count;
    detail::count_traffic(stats_, Collective::kBroadcast, count, dtype, 0, 1, 0);
  }
  void barrier() override { detail::count_traffic(stats_, Collective::kBarrier, 0, DType::kU8, 0, 1, 0); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    SSIAT_CHECK(color >= 0) << "split on rank 0 of 1: color " << color << " must be >= 0";
    return std::make_unique<SelfCommunicator>();
  }
  const CommStats& stats() const override { return stats_; }
  void reset_stats() override { stats_ = CommStats{}; }

 private:
  void copy(Collective c, const void* send, void* recv, size_t count, DType dtype) {
    const size_t es = dtype_bytes(dtype);
    SSIAT_CHECK((send != nullptr && recv != nullptr) || count == 0)
        << where(c, 0, 1, -1) << ": null " << (send == nullptr ? "send" : "recv") << " buffer with count " << count
        << " (" << dtype_name(dtype) << ")";
    if (count > 0 && send != recv) std::memmove(recv, send, count * es);
    detail::count_traffic(stats_, c, count, dtype, 0, 1, 0);
  }
  CommStats stats_;
};

// Finalises MPI at process exit if this library initialised it.
struct MpiFinalizer {
  ~MpiFinalizer() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
};

constexpr size_t kChunkBytes = size_t{8} << 20;  // bound on each step's send and receive buffers
constexpr size_t kMaxMsg = size_t{1} << 30;      // MPI counts are int

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (a duplicate or a split of MPI_COMM_WORLD).
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
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

  void reduce_scatter_sum(const void* send, void* recv, size_t count, DType dtype) override {
    check_buffers(Collective::kReduceScatter, send, recv, count, dtype);
    reduce_scatter(Collective::kReduceScatter, static_cast<const unsigned char*>(send),
                   static_cast<unsigned char*>(recv), count, dtype);
    detail::count_traffic(stats_, Collective::kReduceScatter, count, dtype, rank_, size_, 0);
  }

  void all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    check_buffers(Collective::kAllGather, send, recv, count, dtype);
    gather(Collective::kAllGather, static_cast<const unsigned char*>(send), static_cast<unsigned char*>(recv),
           count, dtype);
    detail::count_traffic(stats_, Collective::kAllGather, count, dtype, rank_, size_, 0);
  }

  void allreduce_sum(void* buf, size_t count, DType dtype) override {
    check_buffers(Collective::kAllReduce, buf, buf, count, dtype);
    unsigned char* bytes = static_cast<unsigned char*>(buf);
    unsigned char* own = bytes + slice_of(count, size_, rank_).offset * dtype_bytes(dtype);
    reduce_scatter(Collective::kAllReduce, bytes, own, count, dtype);
    gather(Collective::kAllReduce, own, bytes, count, dtype);
    detail::count_traffic(stats_, Collective::kAllReduce, count, dtype, rank_, size_, 0);
  }

  void broadcast(void* buf, size_t count, DType dtype, int root) override {
    const size_t es = dtype_bytes(dtype);
    const std::string at = where(Collective::kBroadcast, rank_, size_, world_rank_);
    SSIAT_CHECK(root >= 0 && root < size_) << at << ": root " << root << " out of range for size " << size_;
    SSIAT_CHECK(buf != nullptr || count == 0) << at << ": null buffer with count " << count;
    unsigned char* bytes = static_cast<unsigned char*>(buf);
    const size_t total = count * es;
    for (size_t off = 0; off < total; off += kMaxMsg) {
      const size_t n = std::min(kMaxMsg, total - off);
      check(MPI_Bcast(bytes + off, static_cast<int>(n), MPI_BYTE, root, comm_), Collective::kBroadcast, "MPI_Bcast");
    }
    detail::count_traffic(stats_, Collective::kBroadcast, count, dtype, rank_, size_, root);
  }

  void barrier() override {
    check(MPI_Barrier(comm_), Collective::kBarrier, "MPI_Barrier");
    detail::count_traffic(stats_, Collective::kBarrier, 0, DType::kU8, rank_, size_, 0);
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    SSIAT_CHECK(color >= 0) << "split on rank " << rank_ << " of " << size_ << " (world rank " << world_rank_
                            << "): color " << color << " must be >= 0";
    MPI_Comm sub = MPI_COMM_NULL;
    const int rc = MPI_Comm_split(comm_, color, key, &sub);
    if (rc != MPI_SUCCESS) fail(rc, "split", "MPI_Comm_split");
    return std::make_unique<MpiCommunicator>(sub);
  }

  const CommStats& stats() const override { return stats_; }
  void reset_stats() override { stats_ = CommStats{}; }

 private:
  // A buffer may be null only where it holds no element: reduce_scatter's recv and all_gather's
  // send hold this rank's slice, which is empty when count < size.
  void check_buffers(Collective c, const void* send, const void* recv, size_t count, DType dtype) const {
    dtype_bytes(dtype);
    const size_t own = slice_of(count, size_, rank_).count;
    const size_t send_n = c == Collective::kAllGather ? own : count;
    const size_t recv_n = c == Collective::kReduceScatter ? own : count;
    SSIAT_CHECK((send != nullptr || send_n == 0) && (recv != nullptr || recv_n == 0))
        << where(c, rank_, size_, world_rank_) << ": null " << (send == nullptr ? "send" : "recv")
        << " buffer with count " << count << " (" << dtype_name(dtype) << ")";
  }

  // Elements per rank and step: R parts of `step` elements stay within kChunkBytes.
  size_t step_elems(size_t es) const {
    return std::max<size_t>(1, kChunkBytes / (es * static_cast<size_t>(size_)));
  }

  // Elements [j, j + step) of a slice of n elements: how many there are.
  static size_t part(size_t n, size_t j, size_t step) { return n > j ? std::min(step, n - j) : 0; }

  // recv = own slice of the rank-ordered sum of every rank's send (recv may be send + own offset).
  void reduce_scatter(Collective c, const unsigned char* send, unsigned char* recv, size_t count, DType dtype) {
    const size_t es = dtype_bytes(dtype);
    const Slice mine = slice_of(count, size_, rank_);
    if (count == 0) return;
    if (size_ == 1) {
      if (recv != send) std::memmove(recv, send, count * es);
      return;
    }
    const size_t R = static_cast<size_t>(size_);
    const size_t step = step_elems(es);
    const size_t longest = slice_of(count, size_, 0).count;  // rank 0's slice is never shorter
    std::vector<int> sc(R), sd(R), rc(R), rd(R);
    std::vector<unsigned char> packed, parts;
    for (size_t j = 0; j < longest; j += step) {
      size_t at = 0;
      for (size_t r = 0; r < R; r++) {
        const Slice s = slice_of(count, size_, static_cast<int>(r));
        const size_t n = part(s.count, j, step);
        sc[r] = static_cast<int>(n * es);
        sd[r] = static_cast<int>(at);
        at += n * es;
      }
      packed.resize(at);
      for (size_t r = 0; r < R; r++) {
        const Slice s = slice_of(count, size_, static_cast<int>(r));
        if (sc[r] > 0) std::memcpy(packed.data() + sd[r], send + (s.offset + j) * es, static_cast<size_t>(sc[r]));
      }
      const size_t my_n = part(mine.count, j, step);
      for (size_t r = 0; r < R; r++) {
        rc[r] = static_cast<int>(my_n * es);
        rd[r] = static_cast<int>(r * my_n * es);
      }
      parts.resize(R * my_n * es);
      check(MPI_Alltoallv(packed.data(), sc.data(), sd.data(), MPI_BYTE, parts.data(), rc.data(), rd.data(),
                          MPI_BYTE, comm_),
            c, "MPI_Alltoallv");
      if (my_n > 0) detail::sum_in_rank_order(dtype, parts.data(), my_n, size_, recv + j * es);
    }
  }

  // recv[slice r] = rank r's send, for every r (send may be recv + own offset).
  void gather(Collective c, const unsigned char* send, unsigned char* recv, size_t count, DType dtype) {
    const size_t es = dtype_bytes(dtype);
    const Slice mine = slice_of(count, size_, rank_);
    if (count == 0) return;
    if (size_ == 1) {
      if (recv != send) std::memmove(recv, send, count * es);
      return;
    }
    const size_t R = static_cast<size_t>(size_);
    const size_t step = step_elems(es);
    const size_t longest = slice_of(count, size_, 0).count;
    std::vector<int> rc(R), rd(R);
    std::vector<unsigned char> staged;
    for (size_t j = 0; j < longest; j += step) {
      size_t at = 0;
      for (size_t r = 0; r < R; r++) {
        const size_t n = part(slice_of(count, size_, static_cast<int>(r)).count, j, step);
        rc[r] = static_cast<int>(n * es);
        rd[r] = static_cast<int>(at);
        at += n * es;
      }
      staged.resize(at);
      const size_t my_n = part(mine.count, j, step);
      check(MPI_Allgatherv(send + j * es, static_cast<int>(my_n * es), MPI_BYTE, staged.data(), rc.data(),
                           rd.data(), MPI_BYTE, comm_),
            c, "MPI_Allgatherv");
      for (size_t r = 0; r < R; r++) {
        const Slice s = slice_of(count, size_, static_cast<int>(r));
        if (rc[r] > 0) std::memmove(recv + (s.offset + j) * es, staged.data() + rd[r], static_cast<size_t>(rc[r]));
      }
    }
  }

  void check(int rc, Collective c, const char* what) const {
    if (rc != MPI_SUCCESS) fail(rc, collective_name(c), what);
  }

  [[noreturn]] void fail(int rc, const char* op, const char* what) const {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    SSIAT_CHECK(false) << op << " on rank " << rank_ << " of " << size_ << " (world rank " << world_rank_
                       << "): " << what << " failed: " << std::string(msg, static_cast<size_t>(len));
    throw Error("unreachable");
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int world_rank_ = 0;
  CommStats stats_;
};

MPI_Comm dup_world() {
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
  MPI_Comm comm = MPI_COMM_NULL;
  SSIAT_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm) == MPI_SUCCESS) << "MPI_Comm_dup failed";
  return comm;
}

}  // namespace

std::unique_ptr<Communicator> make_self_communicator() { return std::make_unique<SelfCommunicator>(); }

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(dup_world()); }

namespace {
bool mpi_live() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return false;
  MPI_Finalized(&finalized);
  return !finalized;
}
}  // namespace

bool in_multi_rank_world() {
  if (!mpi_live()) return false;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size > 1;
}

int world_rank() {
  if (!mpi_live()) return 0;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

NodePlace node_place() {
  if (!mpi_live()) return {};
  MPI_Comm node = MPI_COMM_NULL;
  SSIAT_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank(), MPI_INFO_NULL, &node) ==
              MPI_SUCCESS)
      << "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed on world rank " << world_rank();
  NodePlace p;
  MPI_Comm_rank(node, &p.rank);
  MPI_Comm_size(node, &p.size);
  MPI_Comm_free(&node);
  return p;
}

void abort_world_if_multi_rank(int code) {
  if (in_multi_rank_world()) MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace ssiat::distributed
