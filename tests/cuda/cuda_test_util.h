// Helpers for the CUDA parity tests (tests/cuda): whether a GPU can be used, device buffers and
// streams that free themselves, seeded random inputs, NaN poisoning, the relative L2 metric and
// a record of one GPU run's outputs (raw bytes, so two runs can be compared bit for bit).
//
// Everything here goes through kernels/device.h, so it compiles (and the tests skip) in a build
// without the CUDA backend.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/backend.h"
#include "kernels/check.h"
#include "kernels/device.h"
#include "kernels/matmul.h"

namespace ssiat::testing::cuda {

namespace kc = ::ssiat::kernels::cuda;
using ::ssiat::kernels::bf16;

// Why GPU tests cannot run here ("" when they can): a build without the backend, or no device.
inline std::string gpu_skip_reason() {
  if (!kc::compiled())
    return "no CUDA device: this build has no CUDA backend (SSIAT_CUDA=OFF or no nvcc at configure time)";
  if (kc::device_count() == 0) return "no CUDA device: the driver reports 0 devices (or no driver)";
  return "";
}

inline bool gpu_available() { return gpu_skip_reason().empty(); }

// A stream from stream_create(), destroyed with the object.
class DeviceStream {
 public:
  DeviceStream() : s_(kc::stream_create()) {}
  ~DeviceStream() { kc::stream_destroy(s_); }
  DeviceStream(const DeviceStream&) = delete;
  DeviceStream& operator=(const DeviceStream&) = delete;
  kc::Stream get() const { return s_; }

 private:
  kc::Stream s_;
};

// A GoogleTest base (Base: ::testing::Test or TestWithParam<...>) with one stream per test,
// skipped with the reason when there is no GPU.
template <typename Base>
class WithGpuStream : public Base {
 protected:
  void SetUp() override {
    const std::string why = gpu_skip_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    kc::set_device(0);
    stream_ = std::make_unique<DeviceStream>();
  }
  void TearDown() override { stream_.reset(); }
  kc::Stream s() const { return stream_->get(); }

 private:
  std::unique_ptr<DeviceStream> stream_;
};

// n elements of T in device memory (cudaMalloc through malloc_bytes), freed with the object.
// At least one element is allocated so that even an empty array has a non-null pointer.
// Uploads and downloads are synchronous with respect to the host (kernels/device.h) and ordered
// on the stream given at construction, after the work already queued there.
template <typename T>
class DeviceArray {
 public:
  DeviceArray(int64_t n, kc::Stream s)
      : n_(n), s_(s), ptr_(static_cast<T*>(kc::malloc_bytes(std::max<int64_t>(n, 1) * int64_t(sizeof(T))))) {}
  ~DeviceArray() { kc::free_bytes(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& other) noexcept : n_(other.n_), s_(other.s_), ptr_(std::exchange(other.ptr_, nullptr)) {}
  DeviceArray& operator=(DeviceArray&&) = delete;

  T* get() { return ptr_; }
  const T* get() const { return ptr_; }
  int64_t size() const { return n_; }
  int64_t bytes() const { return n_ * int64_t(sizeof(T)); }

  void upload(const std::vector<T>& host) {
    SSIAT_CHECK(int64_t(host.size()) == n_) << "DeviceArray::upload: " << host.size() << " elements into " << n_;
    upload_at(host.data(), n_, 0);
  }
  // host[0, count) -> device[offset, offset + count)
  void upload_at(const T* host, int64_t count, int64_t offset) {
    SSIAT_CHECK(offset >= 0 && count >= 0 && offset + count <= n_) << "DeviceArray::upload_at: [" << offset << ", "
                                                                     << offset + count << ") of " << n_;
    if (count > 0)
      kc::copy_bytes(ptr_ + offset, host, count * int64_t(sizeof(T)), kc::Copy::kHostToDevice, s_);
  }
  std::vector<T> download() const { return download_at(0, n_); }
  // device[offset, offset + count) -> a new host vector
  std::vector<T> download_at(int64_t offset, int64_t count) const {
    SSIAT_CHECK(offset >= 0 && count >= 0 && offset + count <= n_) << "DeviceArray::download_at: [" << offset << ", "
                                                                     << offset + count << ") of " << n_;
    std::vector<T> host(count);
    if (count > 0)
      kc::copy_bytes(host.data(), ptr_ + offset, count * int64_t(sizeof(T)), kc::Copy::kDeviceToHost, s_);
    return host;
  }
  // Every byte 0xFF: a NaN in f32 (0xFFFFFFFF) and in bf16 (0xFFFF), so an element the op
  // forgets to write shows up in the metric (and in the bit comparison of two runs).
  void poison() {
    std::vector<T> junk(n_);
    std::memset(static_cast<void*>(junk.data()), 0xFF, junk.size() * sizeof(T));
    upload(junk);
  }
  void copy_from(const DeviceArray& other) {
    SSIAT_CHECK(other.n_ == n_) << "DeviceArray::copy_from: " << other.n_ << " elements into " << n_;
    if (n_ > 0) kc::copy_bytes(ptr_, other.ptr_, bytes(), kc::Copy::kDeviceToDevice, s_);
  }

 private:
  int64_t n_;
  kc::Stream s_;
  T* ptr_;
};

// A new device array holding `host` (for inputs no run modifies).
template <typename T>
DeviceArray<T> to_device(kc::Stream s, const std::vector<T>& host) {
  DeviceArray<T> d(int64_t(host.size()), s);
  d.upload(host);
  return d;
}

// Device scratch of exactly the size an op's *_scratch_bytes() asked for (kernels/backend.h).
class DeviceScratch {
 public:
  DeviceScratch(int64_t bytes, kc::Stream s) : mem_(bytes, s) {}
  kc::Scratch get() { return kc::Scratch{mem_.get(), mem_.size()}; }

 private:
  DeviceArray<unsigned char> mem_;
};

// FNV-1a of a case name: each table row gets its own fixed seed.
inline uint64_t seed_of(std::string_view name) {
  uint64_t h = 1469598103934665603ull;
  for (const char ch : name) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  return h;
}

// Seeded random inputs (std::mt19937_64: fixed sequence for a given seed).
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  std::vector<float> uniform(int64_t n, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(gen_);
    return v;
  }
  // n integers uniform in [lo, hi] (inclusive)
  std::vector<int32_t> ints(int64_t n, int32_t lo, int32_t hi) {
    std::uniform_int_distribution<int32_t> dist(lo, hi);
    std::vector<int32_t> v(n);
    for (auto& x : v) x = dist(gen_);
    return v;
  }
  // n floats with random bit patterns (every exponent: subnormals and infinities included; NaNs
  // redrawn), every fourth one moved onto an exact bf16 rounding tie (low 16 bits 0x8000).
  std::vector<float> non_nan_bits(int64_t n) {
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; i++) {
      uint32_t u;
      do {
        u = static_cast<uint32_t>(gen_() >> 32);
        if (i % 4 == 1) u = (u & 0xffff0000u) | 0x8000u;
      } while ((u & 0x7fffffffu) > 0x7f800000u);
      std::memcpy(&v[i], &u, 4);
    }
    return v;
  }

 private:
  std::mt19937_64 gen_;
};

inline std::vector<bf16> to_bf16(const std::vector<float>& v) {
  std::vector<bf16> out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = kernels::bf16_from_float(v[i]);
  return out;
}

inline std::vector<float> from_bits(const std::vector<uint32_t>& bits) {
  std::vector<float> v(bits.size());
  if (!v.empty()) std::memcpy(v.data(), bits.data(), bits.size() * 4);
  return v;
}

// Matmul weights as the op takes them: f32 as is, or rounded to bf16.
template <typename W>
std::vector<W> weights_as(const std::vector<float>& w) {
  if constexpr (std::is_same_v<W, bf16>) {
    return to_bf16(w);
  } else {
    return w;
  }
}

// ||out - ref|| / ||ref|| in double (the plain ||out - ref|| when ref is all zeros); NaN when
// any element of out is NaN, so a poisoned element the op did not write always fails.
inline double rel_l2(const float* out, const float* ref, int64_t n) {
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < n; i++) {
    const double d = double(out[i]) - double(ref[i]);
    diff += d * d;
    norm += double(ref[i]) * double(ref[i]);
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

inline double rel_l2(const std::vector<float>& out, const std::vector<float>& ref) {
  return out.size() == ref.size() ? rel_l2(out.data(), ref.data(), int64_t(ref.size()))
                                  : std::numeric_limits<double>::quiet_NaN();
}

inline int64_t count_nonfinite(const std::vector<float>& v) {
  return std::count_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); });
}

// Adds a failure unless rel_l2(got, ref) <= tol, naming the error, the count of non-finite
// elements and the element with the largest difference.
inline void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& ref,
                         double tol) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  const double err = rel_l2(got, ref);
  if (err <= tol) return;
  size_t worst = 0;  // largest absolute difference, a NaN first
  double worst_diff = -1;
  for (size_t i = 0; i < ref.size(); i++) {
    const double d = std::isnan(got[i]) ? INFINITY : std::fabs(double(got[i]) - double(ref[i]));
    if (d > worst_diff) worst_diff = d, worst = i;
  }
  ADD_FAILURE() << what << ": relative L2 error " << err << " > tolerance " << tol << "; " << count_nonfinite(got)
                << " of " << got.size() << " non-finite; worst at [" << worst << "]: gpu " << got[worst] << " cpu "
                << ref[worst];
}

// Adds a failure unless got[i] has the bits of bf16_from_float(src[i]) for every i (the first
// five differences are listed with their f32 input).
inline void expect_bf16_of(const std::string& what, const std::vector<bf16>& got, const std::vector<float>& src) {
  ASSERT_EQ(got.size(), src.size()) << what;
  int64_t bad = 0;
  for (size_t i = 0; i < src.size(); i++) {
    const uint16_t want = kernels::bf16_from_float(src[i]).bits;
    if (got[i].bits == want) continue;
    if (bad++ < 5) {
      uint32_t in;
      std::memcpy(&in, &src[i], 4);
      char msg[96];
      std::snprintf(msg, sizeof msg, "[%zu] f32 0x%08x: gpu 0x%04x, bf16_from_float 0x%04x", i, unsigned(in),
                    unsigned(got[i].bits), unsigned(want));
      ADD_FAILURE() << what << " " << msg;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << src.size() << " elements differ from bf16_from_float";
}

// Owns a cuBLASLt Gemm (kernels/matmul.h).
struct GemmDestroy {
  void operator()(kc::Gemm* g) const { kc::gemm_destroy(g); }
};
using GemmPtr = std::unique_ptr<kc::Gemm, GemmDestroy>;

// The outputs one GPU run produced, by name, as raw bytes (so -0, NaN payloads and every bit
// count when two runs are compared).
class Capture {
 public:
  template <typename T>
  void keep(const std::string& name, const std::vector<T>& v) {
    std::vector<unsigned char> raw(v.size() * sizeof(T));
    if (!raw.empty()) std::memcpy(raw.data(), v.data(), raw.size());
    items_.emplace_back(name, std::move(raw));
  }
  template <typename T>
  std::vector<T> get(const std::string& name) const {
    for (const auto& [n, raw] : items_)
      if (n == name) {
        std::vector<T> v(raw.size() / sizeof(T));
        if (!raw.empty()) std::memcpy(static_cast<void*>(v.data()), raw.data(), raw.size());
        return v;
      }
    ADD_FAILURE() << "no output named " << name << " was captured";
    return {};
  }
  // Adds a failure for each output whose bytes differ between the two runs, naming the first
  // differing byte.
  friend void expect_identical_bits(const Capture& a, const Capture& b) {
    ASSERT_EQ(a.items_.size(), b.items_.size());
    for (size_t k = 0; k < a.items_.size(); k++) {
      const auto& [name, x] = a.items_[k];
      const auto& y = b.items_[k].second;
      ASSERT_EQ(x.size(), y.size()) << name;
      if (x.empty() || std::memcmp(x.data(), y.data(), x.size()) == 0) continue;
      const auto first = std::mismatch(x.begin(), x.end(), y.begin()).first - x.begin();
      ADD_FAILURE() << "output `" << name << "` differs between two runs on identical inputs (first at byte "
                    << first << " of " << x.size() << ")";
    }
  }

 private:
  std::vector<std::pair<std::string, std::vector<unsigned char>>> items_;
};

// Runs `run(capture)` twice (it must upload every input and poison or seed every output itself)
// and expects the two captures to be bit-identical; returns the first.
template <typename Fn>
Capture run_twice(Fn&& run) {
  Capture first, second;
  run(first);
  run(second);
  expect_identical_bits(first, second);
  return first;
}

}  // namespace ssiat::testing::cuda
