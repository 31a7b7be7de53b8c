// HDF5 helpers shared by core's shard and checkpoint I/O (core/data.cpp, core/checkpoint.cpp):
// an owning identifier, a scope that silences HDF5's own error printing (we throw one-line typed
// errors instead), and the OS errno HDF5's file driver left on its error stack. Internal to core/.
#pragma once

#include <hdf5.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace ssiat {

// Owns one HDF5 identifier; `closer` is H5Fclose, H5Dclose, H5Sclose, ...
class H5Handle {
 public:
  H5Handle() = default;
  H5Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), closer_(o.closer_) {}
  ~H5Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Gives up ownership (the caller closes it and checks the result).
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }
  // Closes now; returns false if the close failed (for files: data not flushed).
  bool reset() {
    bool ok = true;
    if (id_ >= 0 && closer_) ok = closer_(id_) >= 0;
    id_ = H5I_INVALID_HID;
    return ok;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*closer_)(hid_t) = nullptr;
};

// Silences HDF5's automatic error-stack printing for its lifetime and restores the previous
// handler; the stack itself is still recorded for h5_stack_errno().
class H5QuietErrors {
 public:
  H5QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~H5QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  H5QuietErrors(const H5QuietErrors&) = delete;
  H5QuietErrors& operator=(const H5QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The errno that HDF5's file driver recorded on the current error stack ("..., errno = 28, ..."),
// or 0: HDF5 returns only -1, so a full disk or an I/O error would otherwise read as a bare
// "HDF5 write failed".
inline int h5_stack_errno() {
  int found = 0;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
        const char* p = e->desc ? std::strstr(e->desc, "errno = ") : nullptr;
        if (!p) return 0;
        *static_cast<int*>(out) = std::atoi(p + 8);
        return 1;
      },
      &found);
  return found;
}

}  // namespace ssiat
