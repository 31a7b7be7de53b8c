// CPU rotary position embedding (contract in kernels/rope.h): Hugging Face Llama rotate_half
// pairing (j, j + HS/2), angle(t, j) = t * theta^(-2j/HS), applied in place to the q and k heads
// of the fused qkv buffer. Backward is the transposed (= inverse) rotation. Each output element
// depends on its own pair only, so results are independent of the thread count.
#include "kernels/rope.h"

#include <cmath>

#include "kernels/check.h"

namespace ssiat::kernels::cpu {
namespace {

constexpr int64_t kMinParallelElems = 1 << 16;  // smaller calls run on one thread (same result)

void check_shapes(int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS) {
  SSIAT_CHECK(B >= 0 && T_ >= 0 && NH > 0 && NKV > 0 && HS > 0)
      << "rope: bad shape B=" << B << " T=" << T_ << " NH=" << NH << " NKV=" << NKV << " HS=" << HS;
  SSIAT_CHECK(HS % 2 == 0) << "rope: head size must be even, got HS=" << HS;
}

enum class Rotation { kForward, kInverse };

// Rotates the first NH + NKV heads of every token by +angle (kForward) or -angle (kInverse).
// x (B, T, (NH + 2*NKV) * HS); cos, sin (T, HS/2).
template <typename T>
void rotate(T* x, const T* cos, const T* sin, int64_t B, int64_t T_, int64_t NH, int64_t NKV, int64_t HS,
            Rotation dir) {
  const int64_t half = HS / 2;
  const int64_t C3 = (NH + 2 * NKV) * HS;
  const int64_t nheads = NH + NKV;  // q heads then k heads, contiguous at the start of a token
#pragma omp parallel for schedule(static) if (B * T_ * nheads * HS >= kMinParallelElems)
  for (int64_t bt = 0; bt < B * T_; bt++) {
    const int64_t t = bt % T_;
    const T* c = cos + t * half;
    const T* s = sin + t * half;
    T* tok = x + bt * C3;
    for (int64_t h = 0; h < nheads; h++) {
      T* lo = tok + h * HS;
      T* hi = lo + half;
      if (dir == Rotation::kForward) {
        for (int64_t j = 0; j < half; j++) {
          const T a = lo[j], b = hi[j];
          lo[j] = a * c[j] - b * s[j];
          hi[j] = b * c[j] + a * s[j];
        }
      } else {
        for (int64_t j = 0; j < half; j++) {
          const T a = lo[j], b = hi[j];
          lo[j] = a * c[j] + b * s[j];
          hi[j] = b * c[j] - a * s[j];
        }
      }
    }
  }
}

}  // namespace

template <typename T>
void rope_tables(T* cos, T* sin, int64_t T_, int64_t HS, double theta) {
  SSIAT_CHECK(T_ >= 0 && HS > 0 && HS % 2 == 0) << "rope_tables: bad shape T=" << T_ << " HS=" << HS;
  SSIAT_CHECK(theta > 0) << "rope_tables: theta must be positive, got " << theta;
  const int64_t half = HS / 2;
  for (int64_t j = 0; j < half; j++) {
    // inv_freq_j = 1 / theta^(2j/HS), as in HF LlamaRotaryEmbedding (here in double).
    const double inv_freq = 1.0 / std::pow(theta, static_cast<double>(2 * j) / static_cast<double>(HS));
    for (int64_t t = 0; t < T_; t++) {
      const double angle = static_cast<double>(t) * inv_freq;
      cos[t * half + j] = static_cast<T>(std::cos(angle));
      sin[t * half + j] = static_cast<T>(std::sin(angle));
    }
  }
}

template <typename T>
void rope_forward(T* qkv, const T* cos, const T* sin, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                  int64_t HS) {
  check_shapes(B, T_, NH, NKV, HS);
  rotate(qkv, cos, sin, B, T_, NH, NKV, HS, Rotation::kForward);
}

template <typename T>
void rope_backward(T* dqkv, const T* cos, const T* sin, int64_t B, int64_t T_, int64_t NH, int64_t NKV,
                   int64_t HS) {
  check_shapes(B, T_, NH, NKV, HS);
  rotate(dqkv, cos, sin, B, T_, NH, NKV, HS, Rotation::kInverse);
}

template void rope_tables<float>(float*, float*, int64_t, int64_t, double);
template void rope_tables<double>(double*, double*, int64_t, int64_t, double);
template void rope_forward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t,
                                  int64_t);
template void rope_forward<double>(double*, const double*, const double*, int64_t, int64_t, int64_t,
                                   int64_t, int64_t);
template void rope_backward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t,
                                   int64_t);
template void rope_backward<double>(double*, const double*, const double*, int64_t, int64_t, int64_t,
                                    int64_t, int64_t);

}  // namespace ssiat::kernels::cpu
