// The one dispatch point between the model and the kernels: each op below is the kernel of the
// same name (contract, shapes and `=`/`+=` rules in kernels/<op>.h), run on the Backend's device
// by a plain switch over its kind — kernels::cpu::<op> on the host, kernels::cuda::<op> on the
// Backend's stream. Pointers are in the Backend's device memory.
//
// T is the master type: float on every device, double on the CPU only (gradient checks); a
// double op on CUDA, or any CUDA op in a build without the backend, throws one line saying so.
// Matmuls take the bf16 working copy of their weight (`weight_lp`, same offsets); nullptr runs
// the GEMM with T operands (always on the CPU; the f32 parity path on CUDA).
// Attention on CUDA with Precision::kBf16 runs the tensor-core kernel where the head size allows
// (kernels/attention.h), else the f32 one. sum() and sum_squares() return to the host (on CUDA
// they wait for the stream).
#pragma once

#include <cstdint>

#include "core/device.h"
#include "kernels/adamw.h"
#include "kernels/backend.h"

namespace ssiat::ops {

using kernels::bf16;

// Memory (n elements). upload/download copy between host memory and the device.
template <typename T> void zero(const Backend& be, T* x, int64_t n);
template <typename T> void upload(const Backend& be, T* dst, const T* host_src, int64_t n);
template <typename T> void download(const Backend& be, T* host_dst, const T* src, int64_t n);
void cast_to_bf16(const Backend& be, bf16* out, const float* in, int64_t n);

template <typename T>
void embedding_forward(const Backend& be, T* out, const int32_t* tokens, const T* wte, int64_t N, int64_t C, int64_t V);
template <typename T>
void embedding_backward(const Backend& be, T* dwte, const T* dout, const int32_t* tokens, int64_t N, int64_t C, int64_t V);

template <typename T>
void rmsnorm_forward(const Backend& be, T* out, T* rstd, const T* inp, const T* weight, int64_t N, int64_t C, T eps);
template <typename T>
void rmsnorm_residual_forward(const Backend& be, T* res, T* out, T* rstd, const T* a, const T* b, const T* weight,
                              int64_t N, int64_t C, T eps);
template <typename T>
void rmsnorm_backward(const Backend& be, T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                      const T* rstd, int64_t N, int64_t C);

template <typename T>
void matmul_forward(const Backend& be, T* out, const T* inp, const T* weight, const bf16* weight_lp, int64_t N,
                    int64_t C, int64_t OC);
template <typename T>
void matmul_backward(const Backend& be, T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                     const bf16* weight_lp, int64_t N, int64_t C, int64_t OC);

template <typename T>
void rope_forward(const Backend& be, T* qkv, const T* cos, const T* sin, int64_t B, int64_t T_, int64_t NH,
                  int64_t NKV, int64_t HS);
template <typename T>
void rope_backward(const Backend& be, T* dqkv, const T* cos, const T* sin, int64_t B, int64_t T_, int64_t NH,
                   int64_t NKV, int64_t HS);

template <typename T>
void attention_forward(const Backend& be, T* out, T* lse, const T* qkv, int64_t B, int64_t T_, int64_t NH,
                       int64_t NKV, int64_t HS);
template <typename T>
void attention_backward(const Backend& be, T* dqkv, const T* dout, const T* out, const T* lse, const T* qkv,
                        int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS);
// One query over a KV cache (kernels/attention_decode.h): qkv (T_ctx, (NH + 2*NKV)*HS), out (NH*HS);
// always the f32 kernel on CUDA, whatever the precision.
template <typename T>
void attention_decode(const Backend& be, T* out, const T* qkv, int64_t T_ctx, int64_t NH, int64_t NKV, int64_t HS);

template <typename T>
void swiglu_forward(const Backend& be, T* out, const T* inp, int64_t N, int64_t F);
template <typename T>
void swiglu_backward(const Backend& be, T* dinp, const T* dout, const T* inp, int64_t N, int64_t F);

template <typename T>
void crossentropy_forward(const Backend& be, T* losses, const T* logits, const int32_t* targets, int64_t N, int64_t V);
template <typename T>
void crossentropy_fused(const Backend& be, T* losses, T* logits, const int32_t* targets, int64_t N, int64_t V, T dloss);

// Vocabulary-parallel embedding and cross-entropy pieces (kernels/vocab_parallel.h; the tp
// communication between them is core/tensor_parallel.h's).
template <typename T>
void embedding_shard_forward(const Backend& be, T* out, const int32_t* tokens, const T* wte, int64_t N, int64_t C,
                             int64_t Vl, int64_t v0);
template <typename T>
void embedding_shard_backward(const Backend& be, T* dwte, const T* dout, const int32_t* tokens, int64_t N, int64_t C,
                              int64_t Vl, int64_t v0);
template <typename T>
void ce_shard_max(const Backend& be, T* rowmax, const T* logits, int64_t N, int64_t Vl);
template <typename T>
void ce_shard_max_combine(const Backend& be, T* rowmax, const T* gathered, int64_t R, int64_t N);
template <typename T>
void ce_shard_sums(const Backend& be, T* sumexp, T* target_logit, const T* logits, const int32_t* targets,
                   const T* rowmax, int64_t N, int64_t Vl, int64_t v0);
template <typename T>
void ce_shard_loss(const Backend& be, T* losses, const T* rowmax, const T* target_logit, const T* sumexp,
                   const int32_t* targets, int64_t N);
template <typename T>
void ce_shard_grad(const Backend& be, T* logits, const int32_t* targets, const T* rowmax, const T* sumexp, int64_t N,
                   int64_t Vl, int64_t v0, T dloss);

template <typename T> void add(const Backend& be, T* out, const T* a, const T* b, int64_t n);
template <typename T> void scale_inplace(const Backend& be, T* x, T s, int64_t n);
template <typename T> double sum(const Backend& be, const T* x, int64_t n);
template <typename T> double sum_squares(const Backend& be, const T* x, int64_t n);

// param_lp: the bf16 working copy to refresh in the same pass (nullptr: none; CUDA only);
// changed: on the backend's device, set to 1 if any param value changed (kernels/adamw.h).
template <typename T>
void adamw_update(const Backend& be, T* param, bf16* param_lp, const T* grad, T* m, T* v, int64_t n,
                  const kernels::AdamWParams& hp, int32_t* changed = nullptr);

// Bytes of Backend scratch the CUDA ops need for these sizes (0 on the CPU): the largest of
// the reductions over n_reduce elements, the embedding backward and the RMSNorm backward.
int64_t scratch_bytes(const Backend& be, int64_t n_reduce, int64_t N, int64_t C, int64_t V);

}  // namespace ssiat::ops
