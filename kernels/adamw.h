// AdamW (Loshchilov & Hutter 2019, arXiv:1711.05101) with PyTorch's update order:
//   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
//   p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps),   step >= 1.
//
// Shapes: param, grad, m, v (n) — typically one named view of the flat buffers.
// Contract: updates param, m, v in place; grad is read only. Element-wise, so the result does
// not depend on the thread count.
// CUDA: f32 master weights, gradients and moments; when param_lp is not null the same pass
// writes the bf16 working copy param_lp[i] = bf16_from_float(param[i]) (same offsets).
// changed (nullable; host memory on the CPU, device memory on CUDA): set to 1 when the update
// changed the value of any param[i] (new != old), never cleared: the provenance evidence counts
// the steps that changed each tensor (docs/provenance.md "Evidence").
#pragma once
#include <cstdint>

#include "kernels/backend.h"

namespace ssiat::kernels {

struct AdamWParams {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  int64_t step = 1;
};

}  // namespace ssiat::kernels

namespace ssiat::kernels::cpu {

using kernels::AdamWParams;

template <typename T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, const AdamWParams& hp, int32_t* changed = nullptr);

}  // namespace ssiat::kernels::cpu

namespace ssiat::kernels::cuda {

void adamw_update(float* param, bf16* param_lp, const float* grad, float* m, float* v, int64_t n,
                  const AdamWParams& hp, Stream s, int32_t* changed = nullptr);

}  // namespace ssiat::kernels::cuda
