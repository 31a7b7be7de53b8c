// Communicators on raw buffers: one interface, implemented by a single-process communicator, by
// MPI (CPU buffers) and by NCCL (CUDA buffers, CUDA builds only).
//
// Slicing contract (reduce_scatter_sum, all_gather, and the two halves of allreduce_sum): a
// buffer of `count` elements over R ranks is cut into R contiguous slices, slice_of(count, R, r):
// the first count % R ranks get count / R + 1 elements, the others count / R, in rank order, so
// slice r starts where slice r - 1 ends. No padding; every rank passes the same `count` (the
// whole buffer's), and the slice sizes follow from it.
//
// Determinism: every sum is taken element by element in rank order 0..R-1,
//   out[i] = ((x_0[i] + x_1[i]) + x_2[i]) + ... + x_{R-1}[i],
// by the rank that owns element i; the transport (MPI, NCCL) only moves bytes. So the bits never
// depend on timing, the MPI implementation, its reduction tree or NCCL's algorithm choice, and
// because each element's formula does not depend on which rank computes it,
//   allreduce_sum(buf) == reduce_scatter_sum + all_gather, bit for bit
// (ZeRO-1 on or off gives identical bits), and NCCL and MPI give the same bits (IEEE adds only;
// a NaN sum is NaN on both, its payload may differ: the CPU keeps an operand's, the GPU gives the canonical one).
// Accumulator per dtype: f32 in f32, f64 in f64; bf16 in f32, rounded to bf16 once at the end
// (round to nearest even, kernels::bf16_from_float); integers wrap modulo 2^bits (two's
// complement) instead of overflowing.
//
// Byte counter: each communicator counts, per collective kind, the calls made and the payload
// bytes this rank hands the transport for other ranks (its own slice is never counted). For a
// buffer of B bytes and this rank's slice of S bytes: reduce_scatter B - S, all_gather ·S,
// allreduce (B - S) + (R-1)·S, broadcast ·B on the root and 0 elsewhere, barrier 0. These
// are the data each rank must send under any algorithm (the analytic minimum for the scatter
// and gather halves); forwarding inside the transport (e.g. a broadcast tree) is not seen.
// Sub-communicators from split() count their own traffic, from zero.
//
// Errors: ssiat::Error with one line naming the collective and the rank ("reduce_scatter_sum on
// rank 2 of 4 (world rank 5): ..."); arguments are checked before any communication.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

struct CUstream_st;  // cudaStream_t is CUstream_st* (no CUDA include needed here)

namespace ssiat::distributed {

// kBF16 is ssiat::kernels::bf16 (kernels/backend.h): 16-bit storage, summed in f32.
enum class DType { kF32, kF64, kBF16, kI32, kI64, kU8 };

size_t dtype_bytes(DType t);     // element size; throws on an unknown value
const char* dtype_name(DType t);  // "f32", "f64", "bf16", "i32", "i64", "u8"

// Rank r's slice of a buffer of `count` elements over `nranks` ranks (contract above).
struct Slice {
  size_t offset = 0;  // first element
  size_t count = 0;   // number of elements
};
Slice slice_of(size_t count, int nranks, int r);

enum class Collective { kAllReduce, kReduceScatter, kAllGather, kBroadcast, kBarrier };
inline constexpr int kNumCollectives = 5;
const char* collective_name(Collective c);  // "allreduce_sum", "reduce_scatter_sum", ...

// Traffic of one communicator on this rank, indexed by static_cast<int>(Collective).
struct CommStats {
  std::array<uint64_t, kNumCollectives> bytes_sent{};  // payload for other ranks (contract above)
  std::array<uint64_t, kNumCollectives> calls{};
  uint64_t bytes(Collective c) const { return bytes_sent[static_cast<int>(c)]; }
  uint64_t total_bytes() const;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // recv[0..slice_of(count, R, rank).count) = sum over ranks 0..R-1 (in that order) of that
  // rank's send[slice.offset ...]. `send` holds `count` elements on every rank. In place when
  // recv == send + slice.offset elements; otherwise the buffers must not overlap.
  virtual void reduce_scatter_sum(const void* send, void* recv, size_t count, DType dtype) = 0;
  // recv[slice_of(count, R, r)] = rank r's send (slice_of(count, R, r).count elements) for every
  // r; recv holds `count` elements. In place when send == recv + own slice.offset elements.
  virtual void all_gather(const void* send, void* recv, size_t count, DType dtype) = 0;
  // buf[i] = sum over ranks r = 0..R-1 (in that order) of buf_r[i]: reduce_scatter_sum in place,
  // then all_gather in place (same bits as calling the two; counted as one allreduce).
  virtual void allreduce_sum(void* buf, size_t count, DType dtype) = 0;
  // buf on every rank = buf on root.
  virtual void broadcast(void* buf, size_t count, DType dtype, int root) = 0;
  virtual void barrier() = 0;
  // Collective over this communicator (MPI_Comm_split): ranks with the same color >= 0 form one
  // new communicator, ranked by (key, old rank). Each caller gets its own group's communicator,
  // of the same kind (MPI -> MPI, NCCL -> NCCL, self -> self).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  virtual const CommStats& stats() const = 0;
  virtual void reset_stats() = 0;
};

// Size 1, rank 0; every collective copies or leaves bits unchanged (counted, 0 bytes).
std::unique_ptr<Communicator> make_self_communicator();

// MPI_COMM_WORLD (initialises MPI if needed; finalised at exit).
std::unique_ptr<Communicator> make_mpi_communicator();

// ---- the process's place in an MPI job (MPI_COMM_WORLD) ----
// Whether this process runs in an initialised, not yet finalised MPI world of more than one rank.
bool in_multi_rank_world();
// This process's rank in MPI_COMM_WORLD (0 when MPI is not initialised).
int world_rank();
// Its rank among the ranks on the same node, and their number (MPI_Comm_split_type
// MPI_COMM_TYPE_SHARED; {0, 1} when MPI is not initialised): the rank is the CUDA device ordinal
// of a one-rank-per-GPU launch. Collective over MPI_COMM_WORLD.
struct NodePlace {
  int rank = 0;
  int size = 1;
};
NodePlace node_place();
// Ends every rank of the job (MPI_Abort on MPI_COMM_WORLD with `code`) if in_multi_rank_world();
// otherwise returns. Callers print their one line first.
void abort_world_if_multi_rank(int code);

// NCCL over the ranks of `bootstrap` (an MPI communicator; collective over it): rank 0 makes the
// ncclUniqueId, `bootstrap` broadcasts it, every rank joins with its bootstrap rank. Buffers are
// CUDA device pointers on `device`; each call is enqueued on `stream` (nullptr: the legacy
// default stream) and returns without waiting, except barrier(), which waits. libnccl.so.2 is
// loaded with dlopen at the first call. Throws in a build without CUDA (nccl_built() false).
bool nccl_built();
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device, CUstream_st* stream);

}  // namespace ssiat::distributed
