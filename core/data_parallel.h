// Data parallelism over one dp group, with ZeRO-1 as a switch (../shared/DESIGN.md
// "Parallelism"; ZeRO: Rajbhandari et al. 2020, arXiv:1910.02054, stage 1).
//
// Buckets: the flat gradient buffer (num_params elements, core/model.h) is cut into fixed-order
// buckets [b·K, min(n, (b+1)·K)), K = bucket_elems, and each bucket is cut over the dp ranks by
// distributed::slice_of (core of comm.h): rank r OWNS slice r of every bucket. With one dp rank
// there is one range, the whole buffer, and no communication.
//
// One step, for rank r (every sum in rank order, so bits never depend on timing):
//   reduce_grads:  plain DP: allreduce_sum of every bucket (= reduce-scatter + all-gather);
//                  ZeRO-1: reduce_scatter_sum only: the owned slices hold the summed gradients,
//                  the rest of the buffer is left as it was (stale partial sums, never read).
//   grad_norm:     sqrt of ( Σ over owned ranges, in buffer order, of ops::sum_squares ), the
//                  per-rank f64 sums then allreduced (over tp, then) over dp in rank order: the
//                  same value on every rank, and the same bits with ZeRO-1 on or off.
//   clip:          the owned ranges (ZeRO-1) or the whole buffer scaled by the same factor.
//   update:        AdamW (core/optimizer.h) by segments(): plain DP one segment per view over
//                  the whole buffer, moments for every parameter; ZeRO-1 the owned ranges cut at
//                  view boundaries (weight decay per view), moments compacted: the owned ranges
//                  in buffer order, state_size() = Σ owned counts ≈ num_params / dp.
//   gather_params: ZeRO-1: all_gather of every bucket's parameters (each rank contributes its
//                  updated slice); plain DP: nothing (every rank made the same update).
// Since AdamW is elementwise and the gradients, the norm and the clip factor are identical, the
// parameters after a step are bit-identical with ZeRO-1 on and off.
//
// Checkpoints hold logical whole tensors: gather_state() assembles the moments of any range of
// the flat buffer on one rank from their owners (one tensor at a time), and take_state() keeps
// this rank's share of a whole range a checkpoint provides.
//
// Communicators: `grads` moves the gradient and parameter buffers (the model's device: MPI for
// host buffers, NCCL for CUDA buffers); `host` moves host buffers (the norm, checkpoint pieces).
// Both span the same dp group with the same ranks. Collective calls: every rank of the group
// calls every member above in the same order with the same arguments.
#pragma once

#include <cstdint>
#include <vector>

#include "core/device.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "distributed/comm.h"

namespace ssiat {

// Gradient bucket size in elements (64 MiB of f32): large enough for full-bandwidth messages,
// small enough to bound a collective's staging.
inline constexpr int64_t kGradBucketElems = int64_t{1} << 24;

struct FlatRange {
  int64_t offset = 0;
  int64_t count = 0;
  int64_t end() const { return offset + count; }
};

class DataParallel {
 public:
  // `grads` and `host` must outlive this object and have the same size and rank.
  DataParallel(distributed::Communicator& grads, distributed::Communicator& host, int64_t num_params,
               const std::vector<ParamView>& views, bool zero1, int64_t bucket_elems = kGradBucketElems);

  int dp() const { return dp_; }
  int rank() const { return rank_; }
  bool zero1() const { return zero1_; }
  int64_t num_params() const { return n_; }
  const std::vector<FlatRange>& buckets() const { return buckets_; }
  // The ranges of the flat buffer rank r owns (one per non-empty slice, buffer order).
  std::vector<FlatRange> owned(int r) const;
  const std::vector<FlatRange>& owned() const { return owned_; }
  // Moment elements this rank keeps: num_params (plain DP) or its owned total (ZeRO-1).
  int64_t state_size() const { return state_size_; }
  const std::vector<AdamSegment>& segments() const { return segments_; }

  // Under tensor parallelism: the norm counts every sharded block once per tp rank and every
  // replicated tensor (norms) once (tp rank 0's), summing the f64 partial sums over `tp_host`
  // (rank order) before dp. With one tp rank nothing changes.
  void set_tensor_parallel(distributed::Communicator& tp_host, const std::vector<ParamView>& views);

  void reduce_grads(float* grads);
  double grad_norm(const Backend& be, const float* grads);
  // Scales the gradients AdamW reads by grad_clip / (norm + 1e-6) when norm > grad_clip > 0
  // (torch.nn.utils.clip_grad_norm_), as AdamW::clip does.
  void clip(const Backend& be, float* grads, double norm, double grad_clip);
  void gather_params(float* params);

  // Moments of flat range [offset, offset + count) into dst (count floats) on rank `root` of
  // the group; `local` is this rank's moment buffer (state_size() floats, host memory). dst is
  // written on root only (may be nullptr elsewhere). Collective.
  void gather_state(const float* local, int64_t offset, int64_t count, float* dst, int root);
  // From `whole` = the moments of flat range [offset, offset + count) (the same on every rank),
  // copies this rank's share into `local` (state_size() floats, host memory). Not collective.
  void take_state(const float* whole, int64_t offset, int64_t count, float* local) const;

 private:
  // Where rank r keeps the moments of its owned range i: the sum of its earlier owned counts.
  std::vector<int64_t> state_offsets(const std::vector<FlatRange>& owned) const;

  distributed::Communicator& grads_;
  distributed::Communicator& host_;
  int dp_ = 1, rank_ = 0;
  bool zero1_ = false;
  int64_t n_ = 0;
  std::vector<FlatRange> buckets_;
  std::vector<FlatRange> owned_;
  std::vector<int64_t> owned_state_;  // state offset of each owned_ range (ZeRO-1)
  int64_t state_size_ = 0;
  std::vector<AdamSegment> segments_;
  std::vector<FlatRange> norm_ranges_;            // what grad_norm sums on this rank (owned_ with tp = 1)
  distributed::Communicator* tp_host_ = nullptr;  // set when tp > 1
};

}  // namespace ssiat
