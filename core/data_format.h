// What core/data.cpp (preparation) and core/data_loader.cpp (loading) share: the prepared
// directory's format name and manifest file name (docs/data.md), and the HDF5 status check.
#pragma once

#include <filesystem>
#include <string>

#include "core/error.h"
#include "core/h5.h"

namespace ssiat::data_format {

inline constexpr const char* kFormat = "ssiat-tokens/v1";
inline constexpr const char* kManifestName = "manifest.json";

// Throws IoError "FILE: HDF5 WHAT failed[: errno text]" unless ok.
inline void h5_check(bool ok, const std::filesystem::path& file, const char* what) {
  if (ok) return;
  const int err = h5_stack_errno();
  throw IoError(file.string() + ": HDF5 " + what + " failed" + (err > 0 ? ": " + errno_message(err) : ""));
}

}  // namespace ssiat::data_format
