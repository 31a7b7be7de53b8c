// Data parallelism and ZeRO-1 (contract in core/data_parallel.h).
#include "core/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/ops.h"

namespace ssiat {

namespace dist = distributed;

DataParallel::DataParallel(dist::Communicator& grads, dist::Communicator& host, int64_t num_params,
                           const std::vector<ParamView>& views, bool zero1, int64_t bucket_elems)
    : grads_(grads), host_(host), dp_(grads.size()), rank_(grads.rank()), zero1_(zero1), n_(num_params) {
  SSIAT_CHECK(host.size() == dp_ && host.rank() == rank_)
      << "data parallel: the host communicator (rank " << host.rank() << " of " << host.size()
      << ") is not the gradient communicator's group (rank " << rank_ << " of " << dp_ << ")";
  SSIAT_CHECK(bucket_elems >= 1 && num_params >= 0) << "data parallel: bad bucket size " << bucket_elems;
  // One rank: one range, the whole buffer (the single-process norm, bit for bit).
  const int64_t K = dp_ == 1 ? std::max<int64_t>(num_params, 1) : bucket_elems;
  for (int64_t off = 0; off < n_; off += K) buckets_.push_back({off, std::min(K, n_ - off)});
  owned_ = owned(rank_);
  owned_state_ = state_offsets(owned_);
  norm_ranges_ = owned_;
  if (!zero1_) {
    state_size_ = n_;
    segments_ = segments_of(views);
    return;
  }
  state_size_ = 0;
  for (const auto& r : owned_) state_size_ += r.count;
  // Owned ranges cut at view boundaries; views are sorted by offset and tile the buffer.
  for (size_t i = 0; i < owned_.size(); i++) {
    const FlatRange& r = owned_[i];
    for (size_t k = 0; k < views.size(); k++) {
      const ParamView& v = views[k];
      const int64_t lo = std::max(r.offset, v.offset), hi = std::min(r.end(), v.offset + v.numel);
      if (lo < hi)
        segments_.push_back({lo, owned_state_[i] + (lo - r.offset), hi - lo, v.weight_decay, static_cast<int32_t>(k)});
    }
  }
}

std::vector<FlatRange> DataParallel::owned(int r) const {
  std::vector<FlatRange> out;
  for (const auto& b : buckets_) {
    const dist::Slice s = dist::slice_of(static_cast<size_t>(b.count), dp_, r);
    if (s.count > 0) out.push_back({b.offset + static_cast<int64_t>(s.offset), static_cast<int64_t>(s.count)});
  }
  return out;
}

std::vector<int64_t> DataParallel::state_offsets(const std::vector<FlatRange>& owned) const {
  std::vector<int64_t> out;
  int64_t off = 0;
  for (const auto& r : owned) {
    out.push_back(zero1_ ? off : r.offset);
    off += r.count;
  }
  return out;
}

void DataParallel::reduce_grads(float* grads) {
  if (dp_ == 1) return;
  for (const auto& b : buckets_) {
    float* p = grads + b.offset;
    if (zero1_) {
      const dist::Slice s = dist::slice_of(static_cast<size_t>(b.count), dp_, rank_);
      grads_.reduce_scatter_sum(p, p + s.offset, static_cast<size_t>(b.count), dist::DType::kF32);
    } else {
      grads_.allreduce_sum(p, static_cast<size_t>(b.count), dist::DType::kF32);
    }
  }
}

void DataParallel::set_tensor_parallel(dist::Communicator& tp_host, const std::vector<ParamView>& views) {
  if (tp_host.size() == 1) return;
  tp_host_ = &tp_host;
  norm_ranges_.clear();
  for (const auto& r : owned_)
    for (const auto& v : views) {
      if (v.shard == dist::ShardKind::kReplicated && tp_host.rank() != 0) continue;
      const int64_t lo = std::max(r.offset, v.offset), hi = std::min(r.end(), v.offset + v.numel);
      if (lo >= hi) continue;
      if (!norm_ranges_.empty() && norm_ranges_.back().end() == lo) norm_ranges_.back().count += hi - lo;  // adjacent
      else norm_ranges_.push_back({lo, hi - lo});
    }
}

double DataParallel::grad_norm(const Backend& be, const float* grads) {
  double local = 0;
  for (const auto& r : norm_ranges_) local += ops::sum_squares(be, grads + r.offset, r.count);
  if (tp_host_) tp_host_->allreduce_sum(&local, 1, dist::DType::kF64);
  host_.allreduce_sum(&local, 1, dist::DType::kF64);
  return std::sqrt(local);
}

void DataParallel::clip(const Backend& be, float* grads, double norm, double grad_clip) {
  if (!(grad_clip > 0 && norm > grad_clip)) return;
  const auto s = static_cast<float>(grad_clip / (norm + 1e-6));
  if (zero1_) {
    for (const auto& r : owned_) ops::scale_inplace(be, grads + r.offset, s, r.count);
  } else {
    ops::scale_inplace(be, grads, s, n_);
  }
}

void DataParallel::gather_params(float* params) {
  if (dp_ == 1 || !zero1_) return;
  for (const auto& b : buckets_) {
    float* p = params + b.offset;
    const dist::Slice s = dist::slice_of(static_cast<size_t>(b.count), dp_, rank_);
    grads_.all_gather(p + s.offset, p, static_cast<size_t>(b.count), dist::DType::kF32);
  }
}

void DataParallel::gather_state(const float* local, int64_t offset, int64_t count, float* dst, int root) {
  SSIAT_CHECK(offset >= 0 && count >= 0 && offset + count <= n_ && root >= 0 && root < dp_)
      << "gather_state: range [" << offset << ", " << offset + count << ") of " << n_ << ", root " << root;
  if (!zero1_ || dp_ == 1) {
    if (rank_ == root && count > 0) std::memcpy(dst, local + offset, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  std::vector<float> scratch;
  for (int q = 0; q < dp_; q++) {
    const std::vector<FlatRange> rq = owned(q);
    const std::vector<int64_t> sq = state_offsets(rq);
    for (size_t i = 0; i < rq.size(); i++) {
      const int64_t lo = std::max(offset, rq[i].offset), hi = std::min(offset + count, rq[i].end());
      if (lo >= hi) continue;
      const int64_t len = hi - lo;
      const float* src = q == rank_ ? local + sq[i] + (lo - rq[i].offset) : nullptr;
      if (q == root) {  // the root's own piece: a copy
        if (rank_ == root) std::memcpy(dst + (lo - offset), src, static_cast<size_t>(len) * sizeof(float));
        continue;
      }
      // Broadcast from the owner q; the root keeps it in place, the others in scratch.
      float* buf = nullptr;
      if (rank_ == q) {
        buf = const_cast<float*>(src);  // broadcast leaves the root's buffer unchanged
      } else if (rank_ == root) {
        buf = dst + (lo - offset);
      } else {
        scratch.resize(static_cast<size_t>(len));
        buf = scratch.data();
      }
      host_.broadcast(buf, static_cast<size_t>(len), dist::DType::kF32, q);
    }
  }
}

void DataParallel::take_state(const float* whole, int64_t offset, int64_t count, float* local) const {
  SSIAT_CHECK(offset >= 0 && count >= 0 && offset + count <= n_)
      << "take_state: range [" << offset << ", " << offset + count << ") of " << n_;
  if (!zero1_) {
    if (count > 0) std::memcpy(local + offset, whole, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  for (size_t i = 0; i < owned_.size(); i++) {
    const FlatRange& r = owned_[i];
    const int64_t lo = std::max(offset, r.offset), hi = std::min(offset + count, r.end());
    if (lo < hi)
      std::memcpy(local + owned_state_[i] + (lo - r.offset), whole + (lo - offset),
                  static_cast<size_t>(hi - lo) * sizeof(float));
  }
}

}  // namespace ssiat
