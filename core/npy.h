// NumPy .npy files (format version 1.0, numpy.lib.format): the magic "\x93NUMPY", bytes 1 0, a
// u16le header length, an ASCII dict {'descr': '<f4', 'fortran_order': False, 'shape': (d0, d1, ), }
// padded with spaces and ended by "\n" so that the data starts at a multiple of 64 bytes, then
// the little-endian values in C order. Written atomically (core/fs.h write_file_atomic); IoError
// naming the file on failure.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ssiat {

std::string npy_f32_bytes(const float* data, const std::vector<int64_t>& shape);
void write_npy_f32(const std::filesystem::path& path, const float* data, const std::vector<int64_t>& shape);

}  // namespace ssiat
