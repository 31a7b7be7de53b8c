// The NCCL communicator on CUDA device buffers (contract: distributed/comm.h), CUDA builds only
// (a build without CUDA compiles distributed/no_nccl.cpp instead).
//
// libnccl.so.2 is loaded with dlopen at the first make_nccl_communicator (as kernels/cuda loads
// cuBLASLt), never linked: CPU runs never map the library. Bootstrap: bootstrap rank 0 makes the
// ncclUniqueId, the bootstrap communicator (MPI) broadcasts its 128 bytes (then a barrier), every
// rank calls ncclCommInitRank with its bootstrap rank.
//
// Determinism: NCCL's own reductions (ncclReduceScatter, ncclAllReduce) pick ring or tree and
// their chunking at run time, so their float sums are not in a fixed order. We use NCCL only to
// move bytes: reduce_scatter_sum sends, in one ncclGroupStart/End, part j of every rank's slice
// r to rank r (ncclSend/ncclRecv of bytes; the own part is a device copy) into a scratch buffer
// of R parts, and sum_parts_kernel adds the R parts in rank order 0..R-1 per element (floats in
// f32/f64, bf16 in f32 rounded once with the host's bit formula, integers wrapping) — adds only,
// so no FMA contraction can occur, and the bits equal the MPI communicator's. all_gather is
// grouped sends/recvs of whole slices, broadcast is ncclBroadcast of bytes, barrier is a 1-element
// integer ncclAllReduce plus a stream synchronisation. Steps keep the scratch within kChunkBytes;
// every rank runs the same steps (from `count`) and skips the same empty sends and receives.
// Every call is enqueued on the communicator's stream and returns without waiting (barrier waits).
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <mpi.h>
#include <nccl.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <string>

#include "distributed/comm.h"
#include "distributed/comm_detail.h"
#include "kernels/check.h"

namespace ssiat::distributed {
namespace {

// ---- libnccl through dlopen ------------------------------------------------------------------

#define SSIAT_NCCL_FUNCTIONS(X)                                                                     \
  X(GetVersion) X(GetUniqueId) X(CommInitRank) X(CommDestroy) X(CommSplit) X(GetErrorString) X(Send) \
  X(Recv) X(Broadcast) X(AllReduce) X(GroupStart) X(GroupEnd) X(CommUserRank) X(CommCount) X(CommAbort)

struct NcclApi {
#define SSIAT_NCCL_POINTER(name) decltype(&::nccl##name) name = nullptr;
  SSIAT_NCCL_FUNCTIONS(SSIAT_NCCL_POINTER)
#undef SSIAT_NCCL_POINTER
};

NcclApi load_nccl() {
  const std::string name = "libnccl.so." + std::to_string(NCCL_MAJOR);
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    throw Error("NCCL: cannot load " + name + " (" + (why ? why : "unknown error") +
                "); put the directory that holds it (the CUDA toolkit's lib, or PyTorch's nvidia/nccl/lib) on "
                "LD_LIBRARY_PATH");
  }
  NcclApi api;
  auto symbol = [&](const char* s) {
    void* p = dlsym(lib, s);
    if (!p) throw Error("NCCL: " + name + " has no symbol " + s + " (NCCL older than 2.18?)");
    return p;
  };
#define SSIAT_NCCL_LOAD(fn) api.fn = reinterpret_cast<decltype(api.fn)>(symbol("nccl" #fn));
  SSIAT_NCCL_FUNCTIONS(SSIAT_NCCL_LOAD)
#undef SSIAT_NCCL_LOAD
  return api;  // the library stays loaded for the life of the process
}

const NcclApi& nccl() {
  static const NcclApi loaded = load_nccl();  // a failure throws and is retried by the next call
  return loaded;
}

// ---- the rank-ordered sum -------------------------------------------------------------------

constexpr size_t kChunkBytes = size_t{8} << 20;  // bound on the scratch (R parts per step)
constexpr int kThreads = 256;

struct SameLoad {
  template <typename V>
  __device__ V operator()(V v) const { return v; }
};
struct Bf16Load {  // bf16 bits -> f32 (exact)
  __device__ float operator()(uint16_t b) const { return __uint_as_float(static_cast<uint32_t>(b) << 16); }
};
struct Bf16Store {  // f32 -> bf16 bits, round to nearest even, canonical NaN: kernels::bf16_from_float
  __device__ uint16_t operator()(float f) const {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
  }
};

// out[i] = parts[0·n + i] + parts[1·n + i] + ... + parts[(R-1)·n + i], left to right in Acc.
// One thread per element (grid-stride); parts: [R, n], out: [n], not overlapping.
template <typename T, typename Acc, typename Load, typename Store>
__global__ void sum_parts_kernel(const T* __restrict__ parts, int64_t n, int nranks, T* __restrict__ out) {
  const Load load;
  const Store store;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    Acc acc = static_cast<Acc>(load(parts[i]));
    for (int r = 1; r < nranks; r++) acc = static_cast<Acc>(acc + static_cast<Acc>(load(parts[r * n + i])));
    out[i] = static_cast<T>(store(acc));
  }
}

template <typename T, typename Acc, typename Load = SameLoad, typename Store = SameLoad>
void launch_sum(const void* parts, int64_t n, int nranks, void* out, cudaStream_t stream) {
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t{1} << 20);
  sum_parts_kernel<T, Acc, Load, Store><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<const T*>(parts), n, nranks, static_cast<T*>(out));
}

void sum_in_rank_order(DType t, const void* parts, int64_t n, int nranks, void* out, cudaStream_t s) {
  switch (t) {
    case DType::kF32: return launch_sum<float, float>(parts, n, nranks, out, s);
    case DType::kF64: return launch_sum<double, double>(parts, n, nranks, out, s);
    case DType::kBF16: return launch_sum<uint16_t, float, Bf16Load, Bf16Store>(parts, n, nranks, out, s);
    case DType::kI32: return launch_sum<uint32_t, uint32_t>(parts, n, nranks, out, s);
    case DType::kI64: return launch_sum<unsigned long long, unsigned long long>(parts, n, nranks, out, s);
    case DType::kU8: return launch_sum<uint8_t, uint8_t>(parts, n, nranks, out, s);
  }
}

// ---- the communicator ------------------------------------------------------------------------

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, int rank, int size, int world_rank, int device, cudaStream_t stream)
      : comm_(comm), rank_(rank), size_(size), world_rank_(world_rank), device_(device), stream_(stream) {}
  // Never throws. The communicator goes first (destroy flushes its operations that may still use
  // the scratch; while an exception unwinds, abort, since peers may never match what is pending
  // and destroy would then wait for ever), then the scratch (cudaFree waits for the device).
  ~NcclCommunicator() override {
    cudaSetDevice(device_);
    if (comm_) (std::uncaught_exceptions() > 0 ? nccl().CommAbort : nccl().CommDestroy)(comm_);
    if (scratch_) cudaFree(scratch_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void reduce_scatter_sum(const void* send, void* recv, size_t count, DType dtype) override {
    const Collective c = Collective::kReduceScatter;
    check_buffers(c, send, recv, count, dtype);
    reduce_scatter(c, static_cast<const char*>(send), static_cast<char*>(recv), count, dtype);
    detail::count_traffic(stats_, c, count, dtype, rank_, size_, 0);
  }

  void all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    const Collective c = Collective::kAllGather;
    check_buffers(c, send, recv, count, dtype);
    gather(c, static_cast<const char*>(send), static_cast<char*>(recv), count, dtype);
    detail::count_traffic(stats_, c, count, dtype, rank_, size_, 0);
  }

  void allreduce_sum(void* buf, size_t count, DType dtype) override {
    const Collective c = Collective::kAllReduce;
    check_buffers(c, buf, buf, count, dtype);
    char* bytes = static_cast<char*>(buf);
    char* own = bytes + slice_of(count, size_, rank_).offset * dtype_bytes(dtype);
    reduce_scatter(c, bytes, own, count, dtype);
    gather(c, own, bytes, count, dtype);
    detail::count_traffic(stats_, c, count, dtype, rank_, size_, 0);
  }

  void broadcast(void* buf, size_t count, DType dtype, int root) override {
    const Collective c = Collective::kBroadcast;
    const size_t es = dtype_bytes(dtype);
    SSIAT_CHECK(root >= 0 && root < size_) << at(c) << ": root " << root << " out of range for size " << size_;
    SSIAT_CHECK(buf != nullptr || count == 0) << at(c) << ": null buffer with count " << count;
    if (count > 0) {
      cuda(c, cudaSetDevice(device_), "cudaSetDevice");
      check(c, nccl().Broadcast(buf, buf, count * es, ncclUint8, root, comm_, stream_), "ncclBroadcast");
    }
    detail::count_traffic(stats_, c, count, dtype, rank_, size_, root);
  }

  void barrier() override {
    const Collective c = Collective::kBarrier;
    cuda(c, cudaSetDevice(device_), "cudaSetDevice");
    ensure_scratch(c);
    check(c, nccl().AllReduce(scratch_, scratch_, 1, ncclInt32, ncclSum, comm_, stream_), "ncclAllReduce");
    cuda(c, cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    detail::count_traffic(stats_, c, 0, DType::kU8, rank_, size_, 0);
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    SSIAT_CHECK(color >= 0) << "split on rank " << rank_ << " of " << size_ << ": color " << color
                            << " must be >= 0";
    const cudaError_t ce = cudaSetDevice(device_);
    SSIAT_CHECK(ce == cudaSuccess) << "split on rank " << rank_ << " of " << size_ << ": cudaSetDevice failed: "
                                   << cudaGetErrorName(ce);
    ncclComm_t sub = nullptr;
    const ncclResult_t rc = nccl().CommSplit(comm_, color, key, &sub, nullptr);
    SSIAT_CHECK(rc == ncclSuccess) << "split on rank " << rank_ << " of " << size_ << ": ncclCommSplit failed: "
                                   << nccl().GetErrorString(rc);
    // Ranks of one color are ordered by (key, old rank), as MPI_Comm_split; NCCL says which.
    int sub_rank = 0, sub_size = 0;
    const ncclResult_t rr = nccl().CommUserRank(sub, &sub_rank), rs = nccl().CommCount(sub, &sub_size);
    SSIAT_CHECK(rr == ncclSuccess && rs == ncclSuccess) << "split on rank " << rank_ << " of " << size_
                                                        << ": ncclCommUserRank/ncclCommCount failed: "
                                                        << nccl().GetErrorString(rr != ncclSuccess ? rr : rs);
    return std::make_unique<NcclCommunicator>(sub, sub_rank, sub_size, world_rank_, device_, stream_);
  }

  const CommStats& stats() const override { return stats_; }
  void reset_stats() override { stats_ = CommStats{}; }

 private:
  std::string at(Collective c) const { return detail::where(c, rank_, size_, world_rank_); }

  void check(Collective c, ncclResult_t rc, const char* what) const {
    SSIAT_CHECK(rc == ncclSuccess) << at(c) << ": " << what << " failed: " << nccl().GetErrorString(rc);
  }
  void cuda(Collective c, cudaError_t rc, const char* what) const {
    SSIAT_CHECK(rc == cudaSuccess) << at(c) << ": " << what << " failed: " << cudaGetErrorName(rc) << " ("
                                   << cudaGetErrorString(rc) << ")";
  }

  // As comm.cpp: a null buffer only where it holds no element.
  void check_buffers(Collective c, const void* send, const void* recv, size_t count, DType dtype) const {
    dtype_bytes(dtype);
    const size_t own = slice_of(count, size_, rank_).count;
    const size_t send_n = c == Collective::kAllGather ? own : count;
    const size_t recv_n = c == Collective::kReduceScatter ? own : count;
    SSIAT_CHECK((send != nullptr || send_n == 0) && (recv != nullptr || recv_n == 0))
        << at(c) << ": null " << (send == nullptr ? "send" : "recv") << " buffer with count " << count << " ("
        << dtype_name(dtype) << ")";
  }

  // Runs `enqueue` (ncclSend/ncclRecv calls, each returning ncclResult_t through `keep`) inside
  // one ncclGroupStart/End; the group is closed even when a call fails, then the first failure
  // is reported (an exception out of an open group would leave NCCL's group depth raised).
  template <typename F>
  void grouped(Collective c, F enqueue) {
    check(c, nccl().GroupStart(), "ncclGroupStart");
    ncclResult_t first = ncclSuccess;
    const char* what = "";
    enqueue([&](ncclResult_t rc, const char* w) {
      if (first == ncclSuccess && rc != ncclSuccess) {
        first = rc;
        what = w;
      }
    });
    const ncclResult_t end = nccl().GroupEnd();
    check(c, first, what);
    check(c, end, "ncclGroupEnd");
  }

  void ensure_scratch(Collective c) {
    if (scratch_) return;
    cuda(c, cudaMalloc(&scratch_, kChunkBytes), "cudaMalloc of the scratch");
  }

  static size_t part(size_t n, size_t j, size_t step) { return n > j ? std::min(step, n - j) : 0; }

  void reduce_scatter(Collective c, const char* send, char* recv, size_t count, DType dtype) {
    const size_t es = dtype_bytes(dtype);
    const Slice mine = slice_of(count, size_, rank_);
    if (count == 0) return;
    cuda(c, cudaSetDevice(device_), "cudaSetDevice");
    if (size_ == 1) {
      if (recv != send) cuda(c, cudaMemcpyAsync(recv, send, count * es, cudaMemcpyDeviceToDevice, stream_), "copy");
      return;
    }
    ensure_scratch(c);
    char* parts = static_cast<char*>(scratch_);
    const size_t R = static_cast<size_t>(size_);
    const size_t step = std::max<size_t>(1, kChunkBytes / (es * R));
    const size_t longest = slice_of(count, size_, 0).count;
    for (size_t j = 0; j < longest; j += step) {
      const size_t my_n = part(mine.count, j, step);
      if (my_n > 0)  // the own part, stream-ordered before the group
        cuda(c, cudaMemcpyAsync(parts + static_cast<size_t>(rank_) * my_n * es, send + (mine.offset + j) * es,
                                my_n * es, cudaMemcpyDeviceToDevice, stream_),
             "copy of the own part");
      grouped(c, [&](auto keep) {
        for (int r = 0; r < size_; r++) {
          if (r == rank_) continue;
          const Slice s = slice_of(count, size_, r);
          const size_t n = part(s.count, j, step);  // what r receives from each rank in this step
          if (n > 0) keep(nccl().Send(send + (s.offset + j) * es, n * es, ncclUint8, r, comm_, stream_), "ncclSend");
          if (my_n > 0)
            keep(nccl().Recv(parts + static_cast<size_t>(r) * my_n * es, my_n * es, ncclUint8, r, comm_, stream_),
                 "ncclRecv");
        }
      });
      if (my_n > 0) {
        sum_in_rank_order(dtype, parts, static_cast<int64_t>(my_n), size_, recv + j * es, stream_);
        cuda(c, cudaGetLastError(), "sum_parts_kernel launch");
      }
    }
  }

  void gather(Collective c, const char* send, char* recv, size_t count, DType dtype) {
    const size_t es = dtype_bytes(dtype);
    const Slice mine = slice_of(count, size_, rank_);
    if (count == 0) return;
    cuda(c, cudaSetDevice(device_), "cudaSetDevice");
    char* own = recv + mine.offset * es;
    if (mine.count > 0 && own != send)
      cuda(c, cudaMemcpyAsync(own, send, mine.count * es, cudaMemcpyDeviceToDevice, stream_), "copy of the own slice");
    if (size_ == 1) return;
    grouped(c, [&](auto keep) {
      for (int r = 0; r < size_; r++) {
        if (r == rank_) continue;
        const Slice s = slice_of(count, size_, r);
        if (mine.count > 0) keep(nccl().Send(send, mine.count * es, ncclUint8, r, comm_, stream_), "ncclSend");
        if (s.count > 0)
          keep(nccl().Recv(recv + s.offset * es, s.count * es, ncclUint8, r, comm_, stream_), "ncclRecv");
      }
    });
  }

  ncclComm_t comm_ = nullptr;
  int rank_ = 0;
  int size_ = 1;
  int world_rank_ = -1;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  void* scratch_ = nullptr;  // kChunkBytes of device memory, allocated at first use
  CommStats stats_;
};

}  // namespace

bool nccl_built() { return true; }

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device, CUstream_st* stream) {
  const int rank = bootstrap.rank(), size = bootstrap.size();
  int world_rank = -1, mpi_up = 0;
  MPI_Initialized(&mpi_up);
  if (mpi_up) MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  const std::string at = "make_nccl_communicator on rank " + std::to_string(rank) + " of " + std::to_string(size);
  const cudaError_t ce = cudaSetDevice(device);
  SSIAT_CHECK(ce == cudaSuccess) << at << ": cudaSetDevice(" << device << ") failed: " << cudaGetErrorName(ce);
  // Every rank loads NCCL before the broadcast, so a rank without the library fails here; the
  // others then fail in the broadcast or in ncclCommInitRank (issue 9 point 7 ends the job).
  const NcclApi& api = nccl();
  ncclUniqueId id{};
  if (rank == 0) {
    const ncclResult_t rc = api.GetUniqueId(&id);
    SSIAT_CHECK(rc == ncclSuccess) << at << ": ncclGetUniqueId failed: " << api.GetErrorString(rc);
  }
  bootstrap.broadcast(&id, sizeof(id), DType::kU8, 0);
  // Some MPIs (Open MPI with HCOLL) may defer the broadcast's progress to a later MPI call, and
  // ncclCommInitRank blocks without one: the barrier completes the broadcast everywhere first.
  bootstrap.barrier();
  ncclComm_t comm = nullptr;
  const ncclResult_t rc = api.CommInitRank(&comm, size, id, rank);
  SSIAT_CHECK(rc == ncclSuccess) << at << ": ncclCommInitRank failed: " << api.GetErrorString(rc);
  return std::make_unique<NcclCommunicator>(comm, rank, size, world_rank, device, stream);
}

}  // namespace ssiat::distributed
