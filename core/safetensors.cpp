// safetensors reader (contract in core/safetensors.h).
#include "core/safetensors.h"

#include <bit>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"

namespace ssiat {

static_assert(std::endian::native == std::endian::little, "safetensors bytes are read in place");

namespace {

float from_half(uint16_t h) {  // IEEE binary16 -> float, exact
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return std::bit_cast<float>(sign);
    while (!(man & 0x400)) man <<= 1, exp--;  // subnormal: normalise
    exp++;
    man &= 0x3ff;
  }
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
}

}  // namespace

std::map<std::string, SafetensorsTensor> read_safetensors(const std::filesystem::path& path) {
  const std::string bytes = read_whole_file(path);
  const std::string where = path.string();
  if (bytes.size() < 8) throw IntegrityError(where + ": not a safetensors file (shorter than its 8-byte header length)");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (n > bytes.size() - 8) throw IntegrityError(where + ": header length " + std::to_string(n) + " exceeds the file");
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n), nullptr, false);
  if (header.is_discarded() || !header.is_object()) throw IntegrityError(where + ": header is not a JSON object");
  const size_t base = 8 + n, avail = bytes.size() - base;
  std::map<std::string, SafetensorsTensor> out;
  for (const auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      SafetensorsTensor st;
      st.shape = t.at("shape").get<std::vector<int64_t>>();
      const std::string dtype = t.at("dtype").get<std::string>();
      const auto off = t.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2 || off[0] > off[1] || off[1] > avail)
        throw IntegrityError(where + ": tensor '" + name + "' has data_offsets outside the file");
      uint64_t count = 1;
      for (int64_t d : st.shape) {
        if (d < 0) throw IntegrityError(where + ": tensor '" + name + "' has a negative dimension");
        count *= static_cast<uint64_t>(d);
      }
      const size_t width = dtype == "F32" ? 4 : (dtype == "F16" || dtype == "BF16") ? 2 : 0;
      if (width == 0) throw IntegrityError(where + ": tensor '" + name + "' has dtype " + dtype + " (F32, F16 or BF16 expected)");
      if (off[1] - off[0] != count * width)
        throw IntegrityError(where + ": tensor '" + name + "' holds " + std::to_string(off[1] - off[0]) + " bytes, its shape needs " +
                             std::to_string(count * width));
      const char* p = bytes.data() + base + off[0];
      st.data.resize(count);
      for (uint64_t i = 0; i < count; i++) {
        if (width == 4) {
          std::memcpy(&st.data[i], p + 4 * i, 4);
        } else {
          uint16_t h = 0;
          std::memcpy(&h, p + 2 * i, 2);
          st.data[i] = dtype == "BF16" ? std::bit_cast<float>(static_cast<uint32_t>(h) << 16) : from_half(h);
        }
      }
      out[name] = std::move(st);
    } catch (const nlohmann::json::exception& e) {
      throw IntegrityError(where + ": tensor '" + name + "' has a missing or wrong-typed field: " + json_error_message(e));
    }
  }
  return out;
}

}  // namespace ssiat
