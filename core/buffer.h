// A flat, zero-initialised buffer of T in host memory (64-byte aligned) or on a CUDA device
// (cudaMalloc, 256-byte aligned): the storage of parameters, gradients, optimizer moments and
// activations (DESIGN invariant 5: one contiguous buffer per kind). Allocated once at start-up;
// element access (operator[]) is for host buffers only.
//
// Size arithmetic is checked: checked_mul() throws instead of wrapping, and resize() throws
// ResourceError naming the byte count when the allocation fails or cannot be expressed
// (core/memory_plan.h refuses a recipe whose buffers do not fit before any is allocated).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "core/device.h"
#include "core/error.h"
#include "kernels/device.h"

namespace ssiat {

// a * b for non-negative sizes; throws ResourceError "<what>: size a*b overflows 64 bits".
inline int64_t checked_mul(int64_t a, int64_t b, std::string_view what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
    throw ResourceError(std::string(what) + ": size " + std::to_string(a) + "*" + std::to_string(b) +
                        " overflows 64-bit integers");
  return r;
}

// a + b for non-negative sizes; throws ResourceError like checked_mul().
inline int64_t checked_add(int64_t a, int64_t b, std::string_view what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r))
    throw ResourceError(std::string(what) + ": size " + std::to_string(a) + "+" + std::to_string(b) +
                        " overflows 64-bit integers");
  return r;
}

// Bytes a Buffer<T> of n elements allocates: n * sizeof(T) rounded up to 64; throws
// ResourceError if that does not fit in int64.
template <typename T>
int64_t buffer_bytes(int64_t n) {
  if (n <= 0) return 0;
  const int64_t bytes = checked_mul(n, static_cast<int64_t>(sizeof(T)), "buffer");
  if (bytes > INT64_MAX - 63) throw ResourceError("buffer: " + std::to_string(bytes) + " bytes overflow 64-bit integers");
  return (bytes + 63) / 64 * 64;
}

template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(int64_t n) { resize(n); }
  Buffer(int64_t n, const Device& dev) { resize(n, dev); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), device_(o.device_) {}
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(device_, o.device_);
    return *this;
  }
  ~Buffer() { release(); }

  // Discards the contents; the new buffer is all zeros, in host memory (resize(n)) or on `dev`
  // (cudaMalloc, zeroed on the device's stream). Throws ResourceError (nothing held) if the
  // memory cannot be had.
  void resize(int64_t n) { resize(n, Device{}); }
  void resize(int64_t n, const Device& dev) {
    release();
    device_ = dev;
    if (n <= 0) return;
    const int64_t bytes = buffer_bytes<T>(n);
    if (dev.kind == DeviceKind::kCuda) {
      try {
        data_ = static_cast<T*>(kernels::cuda::malloc_bytes(bytes));
      } catch (const Error& e) {
        throw ResourceError(e.what());
      }
      size_ = n;
      kernels::cuda::memset_zero(data_, bytes, dev.stream);
      return;
    }
    data_ = static_cast<T*>(std::aligned_alloc(64, static_cast<size_t>(bytes)));
    if (!data_) {
      char gib[32];
      std::snprintf(gib, sizeof gib, "%.1f", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
      throw ResourceError("out of memory: cannot allocate " + std::to_string(bytes) + " bytes (" + gib + " GiB)");
    }
    std::memset(data_, 0, static_cast<size_t>(bytes));
    size_ = n;
  }
  void zero() {
    if (!data_) return;
    if (device_.kind == DeviceKind::kCuda) kernels::cuda::memset_zero(data_, size_ * static_cast<int64_t>(sizeof(T)), device_.stream);
    else std::memset(data_, 0, static_cast<size_t>(size_) * sizeof(T));
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }
  const Device& device() const { return device_; }
  // Element access: host buffers only.
  T& operator[](int64_t i) { return data_[i]; }
  const T& operator[](int64_t i) const { return data_[i]; }

 private:
  void release() noexcept {
    if (device_.kind == DeviceKind::kCuda) kernels::cuda::free_bytes(data_);
    else std::free(data_);
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  int64_t size_ = 0;
  Device device_;
};

}  // namespace ssiat
