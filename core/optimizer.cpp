// AdamW, clipping and LR schedules (contract in core/optimizer.h).
#include "core/optimizer.h"

#include <cmath>

#include "core/error.h"
#include "core/ops.h"
#include "kernels/adamw.h"

namespace ssiat {

double lr_at(const OptimConfig& opt, const ScheduleConfig& sched, int64_t steps, int64_t step) {
  const int64_t warm = sched.warmup_steps;
  if (step < warm) return opt.lr * static_cast<double>(step + 1) / static_cast<double>(warm);
  if (sched.kind == ScheduleKind::kCosine) {
    const int64_t span = steps - warm;
    if (span <= 0) return opt.lr;
    const double p = static_cast<double>(step - warm) / static_cast<double>(span);
    return opt.min_lr + (opt.lr - opt.min_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
  }
  const auto decay = static_cast<int64_t>(std::ceil(sched.decay_fraction * static_cast<double>(steps)));
  const int64_t decay_start = steps - decay;
  if (step < decay_start || decay <= 0) return opt.lr;
  const double p = static_cast<double>(step - decay_start + 1) / static_cast<double>(decay);
  return opt.lr + (opt.min_lr - opt.lr) * p;
}

template <typename T>
double AdamW<T>::clip(T* grads, int64_t n) const {
  const double norm = std::sqrt(ops::sum_squares(*be_, grads, n));
  if (cfg_.grad_clip > 0 && norm > cfg_.grad_clip) {
    // torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6)
    ops::scale_inplace(*be_, grads, static_cast<T>(cfg_.grad_clip / (norm + 1e-6)), n);
  }
  return norm;
}

std::vector<AdamSegment> segments_of(const std::vector<ParamView>& views) {
  std::vector<AdamSegment> segs;
  segs.reserve(views.size());
  for (size_t i = 0; i < views.size(); i++)
    segs.push_back({views[i].offset, views[i].offset, views[i].numel, views[i].weight_decay, static_cast<int32_t>(i)});
  return segs;
}

template <typename T>
void AdamW<T>::update(T* params, const T* grads, const std::vector<ParamView>& views, double lr, int64_t step,
                      kernels::bf16* params_lp, std::vector<int32_t>* changed) {
  update(params, grads, segments_of(views), lr, step, params_lp, changed);
}

template <typename T>
void AdamW<T>::update(T* params, const T* grads, const std::vector<AdamSegment>& segments, double lr, int64_t step,
                      kernels::bf16* params_lp, std::vector<int32_t>* changed) {
  const int64_t n_flags = changed ? static_cast<int64_t>(changed->size()) : 0;
  if (changed) {
    if (changed_.size() != n_flags) changed_.resize(n_flags, be_->device());
    ops::zero(*be_, changed_.data(), n_flags);
  }
  kernels::AdamWParams hp;
  hp.lr = lr;
  hp.beta1 = cfg_.beta1;
  hp.beta2 = cfg_.beta2;
  hp.eps = cfg_.eps;
  hp.step = step;
  for (const auto& s : segments) {
    SSIAT_CHECK(s.state_offset >= 0 && s.count >= 0 && s.state_offset + s.count <= m_.size())
        << "AdamW segment [" << s.state_offset << ", " << s.state_offset + s.count << ") outside the "
        << m_.size() << " moment elements";
    SSIAT_CHECK(!changed || (s.view >= 0 && s.view < n_flags))
        << "AdamW segment of view " << s.view << " but " << n_flags << " change flags";
    hp.weight_decay = s.decay ? cfg_.weight_decay : 0.0;
    ops::adamw_update(*be_, params + s.offset, params_lp ? params_lp + s.offset : nullptr, grads + s.offset,
                      m_.data() + s.state_offset, v_.data() + s.state_offset, s.count, hp,
                      changed ? changed_.data() + s.view : nullptr);
  }
  if (changed) ops::download(*be_, changed->data(), changed_.data(), n_flags);
}

template <typename T>
void AdamW<T>::copy_moments_to_host(T* m, T* v) const {
  ops::download(*be_, m, m_.data(), m_.size());
  ops::download(*be_, v, v_.data(), v_.size());
}

template <typename T>
void AdamW<T>::copy_moments_from_host(const T* m, const T* v) {
  ops::upload(*be_, m_.data(), m, m_.size());
  ops::upload(*be_, v_.data(), v, v_.size());
}

template class AdamW<float>;
template class AdamW<double>;

}  // namespace ssiat
