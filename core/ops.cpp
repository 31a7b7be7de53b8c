// Dispatch of every op to its backend (contract in core/ops.h): one switch per op.
#include "core/ops.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/crossentropy.h"
#include "kernels/device.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/vocab_parallel.h"
#include "kernels/swiglu.h"

namespace ssiat::ops {
namespace {

namespace cpu = kernels::cpu;
namespace cuda = kernels::cuda;

#if SSIAT_HAVE_CUDA
constexpr bool kCudaBuild = true;
#else
constexpr bool kCudaBuild = false;
#endif

// CUDA ops exist for float masters in a CUDA build; every other combination never instantiates
// the cuda:: call (if constexpr) and throws instead.
template <typename T>
constexpr bool kOnCuda = kCudaBuild && std::is_same_v<T, float>;

template <typename T>
[[noreturn]] void unavailable(const char* op) {
  if (!kCudaBuild)
    throw Error(std::string(op) + ": device \"cuda\" needs a build with the CUDA backend; this one was configured "
                "without it (SSIAT_CUDA=OFF or no nvcc found)");
  throw Error(std::string(op) + ": the CUDA backend runs f32 masters only (a float64 model is CPU-only)");
}

int64_t bytes_of(int64_t n, int64_t size) { return n * size; }

}  // namespace

template <typename T>
void zero(const Backend& be, T* x, int64_t n) {
  if (n <= 0) return;
  switch (be.kind()) {
    case DeviceKind::kCpu: std::memset(x, 0, static_cast<size_t>(bytes_of(n, sizeof(T)))); return;
    case DeviceKind::kCuda: cuda::memset_zero(x, bytes_of(n, sizeof(T)), be.stream()); return;
  }
}

template <typename T>
void upload(const Backend& be, T* dst, const T* host_src, int64_t n) {
  if (n <= 0) return;
  switch (be.kind()) {
    case DeviceKind::kCpu: std::memcpy(dst, host_src, static_cast<size_t>(bytes_of(n, sizeof(T)))); return;
    case DeviceKind::kCuda: cuda::copy_bytes(dst, host_src, bytes_of(n, sizeof(T)), cuda::Copy::kHostToDevice, be.stream()); return;
  }
}

template <typename T>
void download(const Backend& be, T* host_dst, const T* src, int64_t n) {
  if (n <= 0) return;
  switch (be.kind()) {
    case DeviceKind::kCpu: std::memcpy(host_dst, src, static_cast<size_t>(bytes_of(n, sizeof(T)))); return;
    case DeviceKind::kCuda: cuda::copy_bytes(host_dst, src, bytes_of(n, sizeof(T)), cuda::Copy::kDeviceToHost, be.stream()); return;
  }
}

void cast_to_bf16(const Backend& be, bf16* out, const float* in, int64_t n) {
  switch (be.kind()) {
    case DeviceKind::kCpu:
      for (int64_t i = 0; i < n; i++) out[i] = kernels::bf16_from_float(in[i]);
      return;
    case DeviceKind::kCuda: cuda::cast_to_bf16(out, in, n, be.stream()); return;
  }
}

template <typename T>
void embedding_forward(const Backend& be, T* out, const int32_t* tokens, const T* wte, int64_t N, int64_t C, int64_t V) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::embedding_forward(out, tokens, wte, N, C, V);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::embedding_forward(out, tokens, wte, N, C, V, be.stream());
      else unavailable<T>("embedding_forward");
  }
}

template <typename T>
void embedding_backward(const Backend& be, T* dwte, const T* dout, const int32_t* tokens, int64_t N, int64_t C,
                        int64_t V) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::embedding_backward(dwte, dout, tokens, N, C, V);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::embedding_backward(dwte, dout, tokens, N, C, V, be.scratch(), be.stream());
      else unavailable<T>("embedding_backward");
  }
}

template <typename T>
void rmsnorm_forward(const Backend& be, T* out, T* rstd, const T* inp, const T* weight, int64_t N, int64_t C, T eps) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::rmsnorm_forward(out, rstd, inp, weight, N, C, eps, be.stream());
      else unavailable<T>("rmsnorm_forward");
  }
}

template <typename T>
void rmsnorm_residual_forward(const Backend& be, T* res, T* out, T* rstd, const T* a, const T* b, const T* weight,
                              int64_t N, int64_t C, T eps) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::rmsnorm_residual_forward(res, out, rstd, a, b, weight, N, C, eps);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>)
        return cuda::rmsnorm_residual_forward(res, out, rstd, a, b, weight, N, C, eps, be.stream());
      else unavailable<T>("rmsnorm_residual_forward");
  }
}

template <typename T>
void rmsnorm_backward(const Backend& be, T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                      const T* rstd, int64_t N, int64_t C) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>)
        return cuda::rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C, be.scratch(), be.stream());
      else unavailable<T>("rmsnorm_backward");
  }
}

template <typename T>
void matmul_forward(const Backend& be, T* out, const T* inp, const T* weight, const bf16* weight_lp, int64_t N,
                    int64_t C, int64_t OC) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::matmul_forward(out, inp, weight, N, C, OC);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) {
        if (weight_lp) return cuda::matmul_forward(out, inp, weight_lp, N, C, OC, be.gemm());
        return cuda::matmul_forward(out, inp, weight, N, C, OC, be.gemm());
      } else {
        unavailable<T>("matmul_forward");
      }
  }
}

template <typename T>
void matmul_backward(const Backend& be, T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                     const bf16* weight_lp, int64_t N, int64_t C, int64_t OC) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::matmul_backward(dinp, dweight, dout, inp, weight, N, C, OC);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) {
        if (weight_lp) return cuda::matmul_backward(dinp, dweight, dout, inp, weight_lp, N, C, OC, be.gemm());
        return cuda::matmul_backward(dinp, dweight, dout, inp, weight, N, C, OC, be.gemm());
      } else {
        unavailable<T>("matmul_backward");
      }
  }
}

template <typename T>
void rope_forward(const Backend& be, T* qkv, const T* cos, const T* sin, int64_t B, int64_t T_, int64_t NH,
                  int64_t NKV, int64_t HS) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::rope_forward(qkv, cos, sin, B, T_, NH, NKV, HS);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::rope_forward(qkv, cos, sin, B, T_, NH, NKV, HS, be.stream());
      else unavailable<T>("rope_forward");
  }
}

template <typename T>
void rope_backward(const Backend& be, T* dqkv, const T* cos, const T* sin, int64_t B, int64_t T_, int64_t NH,
                   int64_t NKV, int64_t HS) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::rope_backward(dqkv, cos, sin, B, T_, NH, NKV, HS);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::rope_backward(dqkv, cos, sin, B, T_, NH, NKV, HS, be.stream());
      else unavailable<T>("rope_backward");
  }
}

template <typename T>
void attention_forward(const Backend& be, T* out, T* lse, const T* qkv, int64_t B, int64_t T_, int64_t NH,
                       int64_t NKV, int64_t HS) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::attention_forward(out, lse, qkv, B, T_, NH, NKV, HS);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) {
        // bf16 precision: tensor cores where the head size allows; the f32 kernel otherwise.
        if (be.precision() == Precision::kBf16 && cuda::attention_bf16_supported(HS))
          return cuda::attention_forward_bf16(out, lse, qkv, B, T_, NH, NKV, HS, be.stream());
        return cuda::attention_forward(out, lse, qkv, B, T_, NH, NKV, HS, be.stream());
      } else {
        unavailable<T>("attention_forward");
      }
  }
}

template <typename T>
void attention_backward(const Backend& be, T* dqkv, const T* dout, const T* out, const T* lse, const T* qkv,
                        int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::attention_backward(dqkv, dout, out, lse, qkv, B, T_, NH, NKV, HS);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) {
        if (be.precision() == Precision::kBf16 && cuda::attention_bf16_supported(HS))
          return cuda::attention_backward_bf16(dqkv, dout, out, lse, qkv, B, T_, NH, NKV, HS, be.stream());
        return cuda::attention_backward(dqkv, dout, out, lse, qkv, B, T_, NH, NKV, HS, be.stream());
      } else {
        unavailable<T>("attention_backward");
      }
  }
}

template <typename T>
void attention_decode(const Backend& be, T* out, const T* qkv, int64_t T_ctx, int64_t NH, int64_t NKV, int64_t HS) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::attention_decode(out, qkv, T_ctx, NH, NKV, HS);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) {
        return cuda::attention_decode(out, qkv, T_ctx, NH, NKV, HS, be.stream());
      } else {
        unavailable<T>("attention_decode");
      }
  }
}

template <typename T>
void swiglu_forward(const Backend& be, T* out, const T* inp, int64_t N, int64_t F) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::swiglu_forward(out, inp, N, F);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::swiglu_forward(out, inp, N, F, be.stream());
      else unavailable<T>("swiglu_forward");
  }
}

template <typename T>
void swiglu_backward(const Backend& be, T* dinp, const T* dout, const T* inp, int64_t N, int64_t F) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::swiglu_backward(dinp, dout, inp, N, F);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::swiglu_backward(dinp, dout, inp, N, F, be.stream());
      else unavailable<T>("swiglu_backward");
  }
}

template <typename T>
void crossentropy_forward(const Backend& be, T* losses, const T* logits, const int32_t* targets, int64_t N, int64_t V) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::crossentropy_forward(losses, logits, targets, N, V);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::crossentropy_forward(losses, logits, targets, N, V, be.stream());
      else unavailable<T>("crossentropy_forward");
  }
}

template <typename T>
void crossentropy_fused(const Backend& be, T* losses, T* logits, const int32_t* targets, int64_t N, int64_t V,
                        T dloss) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::crossentropy_fused(losses, logits, targets, N, V, dloss);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::crossentropy_fused(losses, logits, targets, N, V, dloss, be.stream());
      else unavailable<T>("crossentropy_fused");
  }
}

// One switch per op, as above: CPU twin, or the CUDA kernel (f32 only).
#define SSIAT_OP_DISPATCH(name, cpu_call, cuda_call)           \
  switch (be.kind()) {                                         \
    case DeviceKind::kCpu: return cpu_call;                    \
    case DeviceKind::kCuda:                                    \
      if constexpr (kOnCuda<T>) return cuda_call;              \
      else unavailable<T>(name);                               \
  }

template <typename T>
void embedding_shard_forward(const Backend& be, T* out, const int32_t* tokens, const T* wte, int64_t N, int64_t C,
                             int64_t Vl, int64_t v0) {
  SSIAT_OP_DISPATCH("embedding_shard_forward", cpu::embedding_shard_forward(out, tokens, wte, N, C, Vl, v0),
                    cuda::embedding_shard_forward(out, tokens, wte, N, C, Vl, v0, be.stream()))
}

template <typename T>
void embedding_shard_backward(const Backend& be, T* dwte, const T* dout, const int32_t* tokens, int64_t N, int64_t C,
                              int64_t Vl, int64_t v0) {
  SSIAT_OP_DISPATCH("embedding_shard_backward", cpu::embedding_shard_backward(dwte, dout, tokens, N, C, Vl, v0),
                    cuda::embedding_shard_backward(dwte, dout, tokens, N, C, Vl, v0, be.scratch(), be.stream()))
}

template <typename T>
void ce_shard_max(const Backend& be, T* rowmax, const T* logits, int64_t N, int64_t Vl) {
  SSIAT_OP_DISPATCH("ce_shard_max", cpu::ce_shard_max(rowmax, logits, N, Vl),
                    cuda::ce_shard_max(rowmax, logits, N, Vl, be.stream()))
}

template <typename T>
void ce_shard_max_combine(const Backend& be, T* rowmax, const T* gathered, int64_t R, int64_t N) {
  SSIAT_OP_DISPATCH("ce_shard_max_combine", cpu::ce_shard_max_combine(rowmax, gathered, R, N),
                    cuda::ce_shard_max_combine(rowmax, gathered, R, N, be.stream()))
}

template <typename T>
void ce_shard_sums(const Backend& be, T* sumexp, T* target_logit, const T* logits, const int32_t* targets,
                   const T* rowmax, int64_t N, int64_t Vl, int64_t v0) {
  SSIAT_OP_DISPATCH("ce_shard_sums", cpu::ce_shard_sums(sumexp, target_logit, logits, targets, rowmax, N, Vl, v0),
                    cuda::ce_shard_sums(sumexp, target_logit, logits, targets, rowmax, N, Vl, v0, be.stream()))
}

template <typename T>
void ce_shard_loss(const Backend& be, T* losses, const T* rowmax, const T* target_logit, const T* sumexp,
                   const int32_t* targets, int64_t N) {
  SSIAT_OP_DISPATCH("ce_shard_loss", cpu::ce_shard_loss(losses, rowmax, target_logit, sumexp, targets, N),
                    cuda::ce_shard_loss(losses, rowmax, target_logit, sumexp, targets, N, be.stream()))
}

template <typename T>
void ce_shard_grad(const Backend& be, T* logits, const int32_t* targets, const T* rowmax, const T* sumexp, int64_t N,
                   int64_t Vl, int64_t v0, T dloss) {
  SSIAT_OP_DISPATCH("ce_shard_grad", cpu::ce_shard_grad(logits, targets, rowmax, sumexp, N, Vl, v0, dloss),
                    cuda::ce_shard_grad(logits, targets, rowmax, sumexp, N, Vl, v0, dloss, be.stream()))
}
#undef SSIAT_OP_DISPATCH

template <typename T>
void add(const Backend& be, T* out, const T* a, const T* b, int64_t n) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::add(out, a, b, n);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::add(out, a, b, n, be.stream());
      else unavailable<T>("add");
  }
}

template <typename T>
void scale_inplace(const Backend& be, T* x, T s, int64_t n) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::scale_inplace(x, s, n);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::scale_inplace(x, s, n, be.stream());
      else unavailable<T>("scale_inplace");
  }
}

template <typename T>
double sum(const Backend& be, const T* x, int64_t n) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::sum(x, n);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::sum(x, n, be.scratch(), be.stream());
      else unavailable<T>("sum");
  }
  return 0;
}

template <typename T>
double sum_squares(const Backend& be, const T* x, int64_t n) {
  switch (be.kind()) {
    case DeviceKind::kCpu: return cpu::sum_squares(x, n);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::sum_squares(x, n, be.scratch(), be.stream());
      else unavailable<T>("sum_squares");
  }
  return 0;
}

template <typename T>
void adamw_update(const Backend& be, T* param, bf16* param_lp, const T* grad, T* m, T* v, int64_t n,
                  const kernels::AdamWParams& hp, int32_t* changed) {
  switch (be.kind()) {
    case DeviceKind::kCpu:
      SSIAT_CHECK(param_lp == nullptr) << "adamw_update: the CPU keeps no bf16 working copy";
      return cpu::adamw_update(param, grad, m, v, n, hp, changed);
    case DeviceKind::kCuda:
      if constexpr (kOnCuda<T>) return cuda::adamw_update(param, param_lp, grad, m, v, n, hp, be.stream(), changed);
      else unavailable<T>("adamw_update");
  }
}

int64_t scratch_bytes(const Backend& be, int64_t n_reduce, int64_t N, int64_t C, int64_t V) {
  if (be.kind() != DeviceKind::kCuda) return 0;
#if SSIAT_HAVE_CUDA
  return std::max({cuda::reduce_scratch_bytes(n_reduce), cuda::embedding_backward_scratch_bytes(N, V),
                   cuda::rmsnorm_backward_scratch_bytes(N, C)});
#else
  unavailable<float>("scratch_bytes");
#endif
}

#define SSIAT_OPS_INSTANTIATE(T)                                                                                 \
  template void zero<T>(const Backend&, T*, int64_t);                                                            \
  template void upload<T>(const Backend&, T*, const T*, int64_t);                                                \
  template void download<T>(const Backend&, T*, const T*, int64_t);                                              \
  template void embedding_shard_forward<T>(const Backend&, T*, const int32_t*, const T*, int64_t, int64_t, int64_t, \
                                           int64_t);                                                             \
  template void embedding_shard_backward<T>(const Backend&, T*, const T*, const int32_t*, int64_t, int64_t,      \
                                            int64_t, int64_t);                                                   \
  template void ce_shard_max<T>(const Backend&, T*, const T*, int64_t, int64_t);                                 \
  template void ce_shard_max_combine<T>(const Backend&, T*, const T*, int64_t, int64_t);                         \
  template void ce_shard_sums<T>(const Backend&, T*, T*, const T*, const int32_t*, const T*, int64_t, int64_t,   \
                                 int64_t);                                                                       \
  template void ce_shard_loss<T>(const Backend&, T*, const T*, const T*, const T*, const int32_t*, int64_t);     \
  template void ce_shard_grad<T>(const Backend&, T*, const int32_t*, const T*, const T*, int64_t, int64_t,       \
                                 int64_t, T);                                                                    \
  template void embedding_forward<T>(const Backend&, T*, const int32_t*, const T*, int64_t, int64_t, int64_t);   \
  template void embedding_backward<T>(const Backend&, T*, const T*, const int32_t*, int64_t, int64_t, int64_t);  \
  template void rmsnorm_forward<T>(const Backend&, T*, T*, const T*, const T*, int64_t, int64_t, T);             \
  template void rmsnorm_residual_forward<T>(const Backend&, T*, T*, T*, const T*, const T*, const T*, int64_t,   \
                                            int64_t, T);                                                         \
  template void rmsnorm_backward<T>(const Backend&, T*, T*, const T*, const T*, const T*, const T*, int64_t,     \
                                    int64_t);                                                                    \
  template void matmul_forward<T>(const Backend&, T*, const T*, const T*, const bf16*, int64_t, int64_t, int64_t); \
  template void matmul_backward<T>(const Backend&, T*, T*, const T*, const T*, const T*, const bf16*, int64_t,   \
                                   int64_t, int64_t);                                                            \
  template void rope_forward<T>(const Backend&, T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t); \
  template void rope_backward<T>(const Backend&, T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t); \
  template void attention_forward<T>(const Backend&, T*, T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t); \
  template void attention_backward<T>(const Backend&, T*, const T*, const T*, const T*, const T*, int64_t, int64_t, \
                                      int64_t, int64_t, int64_t);                                                \
  template void attention_decode<T>(const Backend&, T*, const T*, int64_t, int64_t, int64_t, int64_t);             \
  template void swiglu_forward<T>(const Backend&, T*, const T*, int64_t, int64_t);                               \
  template void swiglu_backward<T>(const Backend&, T*, const T*, const T*, int64_t, int64_t);                    \
  template void crossentropy_forward<T>(const Backend&, T*, const T*, const int32_t*, int64_t, int64_t);         \
  template void crossentropy_fused<T>(const Backend&, T*, T*, const int32_t*, int64_t, int64_t, T);              \
  template void add<T>(const Backend&, T*, const T*, const T*, int64_t);                                         \
  template void scale_inplace<T>(const Backend&, T*, T, int64_t);                                                \
  template double sum<T>(const Backend&, const T*, int64_t);                                                     \
  template double sum_squares<T>(const Backend&, const T*, int64_t);                                             \
  template void adamw_update<T>(const Backend&, T*, bf16*, const T*, T*, T*, int64_t, const kernels::AdamWParams&, int32_t*);

SSIAT_OPS_INSTANTIATE(float)
SSIAT_OPS_INSTANTIATE(double)
template void zero<int32_t>(const Backend&, int32_t*, int64_t);
template void upload<int32_t>(const Backend&, int32_t*, const int32_t*, int64_t);
template void download<int32_t>(const Backend&, int32_t*, const int32_t*, int64_t);
template void zero<bf16>(const Backend&, bf16*, int64_t);
template void download<bf16>(const Backend&, bf16*, const bf16*, int64_t);

#undef SSIAT_OPS_INSTANTIATE

}  // namespace ssiat::ops
