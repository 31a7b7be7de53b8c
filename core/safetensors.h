// Reading a safetensors file (github.com/huggingface/safetensors, "Format"): an 8-byte
// little-endian header length N, N bytes of JSON {"<name>": {"dtype", "shape", "data_offsets":
// [begin, end]}, ..., "__metadata__": {...}}, then the tensors' bytes (offsets relative to the end
// of the header), little-endian, row-major. Used by the lineage report to read a reference model.
// Tensors of dtype F32, F16 and BF16 are read as float; others are refused by name.
// Errors: IoError naming the file for a read failure; IntegrityError naming the file (and the
// tensor) for a malformed header, an unknown dtype, offsets outside the file or a size that does
// not match the shape.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ssiat {

struct SafetensorsTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

std::map<std::string, SafetensorsTensor> read_safetensors(const std::filesystem::path& path);

}  // namespace ssiat
