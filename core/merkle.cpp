// RFC 6962 Merkle Tree Hash (contract in core/merkle.h).
#include "core/merkle.h"

#include <cstdio>
#include <vector>

namespace ssiat {

std::string digest_hex(const Digest& d) {
  static const char* kHex = "0123456789abcdef";
  std::string s(64, '0');
  for (size_t i = 0; i < d.size(); i++) {
    s[2 * i] = kHex[d[i] >> 4];
    s[2 * i + 1] = kHex[d[i] & 15];
  }
  return s;
}

std::optional<Digest> digest_from_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Digest d{};
  for (size_t i = 0; i < d.size(); i++) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return d;
}

LeafHasher::LeafHasher() {
  const uint8_t prefix = 0x00;
  h_.update(&prefix, 1);
}

Digest LeafHasher::finish() {
  Digest d;
  h_.bytes(d.data());
  return d;
}

Digest merkle_leaf_hash(std::string_view data) {
  LeafHasher h;
  h.update(data);
  return h.finish();
}

void append_u64le(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; i++) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string tensor_leaf_prefix(std::string_view domain, std::string_view name, std::string_view dtype,
                               const std::vector<int64_t>& shape) {
  std::string out(domain);
  out.push_back('\0');
  append_u64le(out, name.size());
  out.append(name);
  append_u64le(out, dtype.size());
  out.append(dtype);
  append_u64le(out, shape.size());
  for (int64_t d : shape) append_u64le(out, static_cast<uint64_t>(d));
  return out;
}

Digest merkle_node_hash(const Digest& left, const Digest& right) {
  Sha256 h;
  const uint8_t prefix = 0x01;
  h.update(&prefix, 1);
  h.update(left.data(), left.size());
  h.update(right.data(), right.size());
  Digest d;
  h.bytes(d.data());
  return d;
}

Digest merkle_root(std::span<const Digest> leaves) {
  if (leaves.empty()) {
    Sha256 h;
    Digest d;
    h.bytes(d.data());
    return d;
  }
  if (leaves.size() == 1) return leaves[0];
  size_t k = 1;
  while (k * 2 < leaves.size()) k *= 2;  // the largest power of two < n
  return merkle_node_hash(merkle_root(leaves.subspan(0, k)), merkle_root(leaves.subspan(k)));
}

}  // namespace ssiat
