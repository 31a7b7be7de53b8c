// AdamW over the model's flat buffers, global gradient-norm clipping, and LR schedules.
//
// The moments m, v are two flat buffers parallel to the parameters (DESIGN invariant 5), on the
// device of the Backend given (the model's; the CPU by default), and every op goes through
// core/ops.h. The update runs view by view so that norms (ParamView::weight_decay == false) get
// no decay; with a bf16 working copy (Llama::params_lp()) the same pass refreshes it.
// ZeRO-1 (core/data_parallel.h) keeps moments for a part of the parameters only: the optimizer
// is then built with that many state elements and updated by segments, each naming where its
// elements sit in the parameter buffers and in the moments.
// Schedules (step counted from 0; lr_at(step) is the LR used by update number step + 1):
//   warmup: lr * (step + 1) / warmup_steps for step < warmup_steps;
//   cosine: then min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2, p = (step - warmup) / (steps - warmup);
//   wsd:    then lr until the last ceil(decay_fraction * steps) steps, which decay linearly
//           to min_lr (warmup-stable-decay, Hu et al. 2024, arXiv:2404.06395).
#pragma once

#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "core/device.h"
#include "core/model.h"
#include "core/recipe.h"

namespace ssiat {

double lr_at(const OptimConfig& opt, const ScheduleConfig& sched, int64_t steps, int64_t step);

// Elements [offset, offset + count) of the parameters and gradients, whose moments are
// [state_offset, state_offset + count); decay: weight decay applies (matrices, not norms); view:
// the index of the view (core/model.h views()) the segment lies in.
struct AdamSegment {
  int64_t offset = 0;
  int64_t state_offset = 0;
  int64_t count = 0;
  bool decay = false;
  int32_t view = 0;
};

// One segment per view, moments at the views' own offsets (every parameter's moments held).
std::vector<AdamSegment> segments_of(const std::vector<ParamView>& views);

template <typename T>
class AdamW {
 public:
  // num_state: moment elements (the model's num_params, or a ZeRO-1 rank's share). `be` must
  // outlive the optimizer.
  AdamW(const OptimConfig& cfg, int64_t num_state, const Backend& be = Backend::host())
      : cfg_(cfg), be_(&be), m_(num_state, be.device()), v_(num_state, be.device()) {}

  // Clips the gradients in place to cfg.grad_clip (if > 0) and returns the norm before clipping.
  double clip(T* grads, int64_t n) const;
  // One update with learning rate lr; step counts updates from 1. params_lp: the bf16 working
  // copy to refresh (nullptr: none). changed (nullptr: not tracked): one flag per view, set to 1
  // for each view whose values this update changed, 0 for the others (the caller sizes it to the
  // number of views; a view without a segment here stays 0).
  void update(T* params, const T* grads, const std::vector<ParamView>& views, double lr, int64_t step,
              kernels::bf16* params_lp = nullptr, std::vector<int32_t>* changed = nullptr);
  // The same over explicit segments (each inside the moments' state_size()).
  void update(T* params, const T* grads, const std::vector<AdamSegment>& segments, double lr, int64_t step,
              kernels::bf16* params_lp = nullptr, std::vector<int32_t>* changed = nullptr);
  int64_t state_size() const { return m_.size(); }

  // Host copies of the moments (plain copies on the CPU).
  void copy_moments_to_host(T* m, T* v) const;
  void copy_moments_from_host(const T* m, const T* v);

  T* m() { return m_.data(); }
  T* v() { return v_.data(); }
  const T* m() const { return m_.data(); }
  const T* v() const { return v_.data(); }

 private:
  OptimConfig cfg_;
  const Backend* be_;
  Buffer<T> m_, v_;
  Buffer<int32_t> changed_;  // the per-view flags on the device
};

}  // namespace ssiat
