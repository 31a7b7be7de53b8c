// Digests of a training state over its logical tensor bytes (docs/provenance.md "Chain"), so a
// re-save, another layout or another HDF5 version gives the same digest as long as the tensors
// are the same:
//   state leaf      = "ssiat/state-leaf/v1" 0x00 u64le(len(key)) key u64le(len(dtype)) dtype
//                     u64le(ndim) u64le(dim)... u64le(nbytes) bytes   (u64le: 8-byte little-endian;
//                     key "<group>/<name>", e.g. "param/model.norm.weight"; bytes row-major LE)
//   weights root    = RFC 6962 Merkle root (core/merkle.h) of the "param/" leaves
//   optimizer root  = the same over the "adam_m/" and "adam_v/" leaves
// each taken over its leaves in the byte order of their keys (so the order needs no model).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/merkle.h"

namespace ssiat {

inline constexpr std::string_view kStateLeafDomain = "ssiat/state-leaf/v1";
inline constexpr std::string_view kStateRootScheme = "rfc6962-sha256/ssiat-state-leaf-v1";

std::string state_leaf_header(std::string_view key, std::string_view dtype, const std::vector<int64_t>& shape,
                              uint64_t nbytes);

struct StateRoots {
  std::string weights;    // hex
  std::string optimizer;  // hex
  bool operator==(const StateRoots&) const = default;
};

// From every tensor's state-leaf hash, by key.
StateRoots state_roots(const std::map<std::string, Digest>& leaves);

}  // namespace ssiat
