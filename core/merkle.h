// Merkle Tree Hash of RFC 6962 (Certificate Transparency), section 2.1, over SHA-256:
//   MTH({})      = SHA-256()                          (the empty string)
//   leaf hash    = SHA-256(0x00 || d)                 for a leaf of data d
//   node hash    = SHA-256(0x01 || left || right)
//   MTH(D[n])    = the leaf hash of d0 if n = 1; else, with k the largest power of two < n,
//                  SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
// Leaves are hashed first (merkle_leaf_hash, or LeafHasher for data streamed in parts), and
// merkle_root() combines the leaf hashes. Known answers: tests/core/test_provenance.cpp (the
// Certificate Transparency reference vectors). No BLAS, MPI or HDF5: part of the small verifier.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/hash.h"

namespace ssiat {

using Digest = std::array<uint8_t, 32>;

std::string digest_hex(const Digest& d);  // 64 lowercase hex digits
// The inverse; nullopt unless exactly 64 hex digits (either case).
std::optional<Digest> digest_from_hex(std::string_view hex);

// SHA-256(0x00 || data), data given in parts.
class LeafHasher {
 public:
  LeafHasher();
  void update(const void* data, size_t n) { h_.update(data, n); }
  void update(std::string_view s) { h_.update(s); }
  Digest finish();  // once

 private:
  Sha256 h_;
};

Digest merkle_leaf_hash(std::string_view data);

// The byte encoding our tensor leaves share (core/init_leaf.h, core/state_digest.h):
// u64le(v) appended to out, and the prefix domain 0x00 u64le(len(name)) name u64le(len(dtype))
// dtype u64le(ndim) u64le(dim_0) ... that both leaf kinds begin with.
void append_u64le(std::string& out, uint64_t v);
std::string tensor_leaf_prefix(std::string_view domain, std::string_view name, std::string_view dtype,
                               const std::vector<int64_t>& shape);
Digest merkle_node_hash(const Digest& left, const Digest& right);
// MTH over the leaves whose hashes are given, in order.
Digest merkle_root(std::span<const Digest> leaf_hashes);

}  // namespace ssiat
