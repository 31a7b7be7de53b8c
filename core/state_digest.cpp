// State digests over logical tensors (contract in core/state_digest.h).
#include "core/state_digest.h"

namespace ssiat {

namespace {
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; i++) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
}  // namespace

std::string state_leaf_header(std::string_view key, std::string_view dtype, const std::vector<int64_t>& shape,
                              uint64_t nbytes) {
  std::string out(kStateLeafDomain);
  out.push_back('\0');
  put_u64(out, key.size());
  out.append(key);
  put_u64(out, dtype.size());
  out.append(dtype);
  put_u64(out, shape.size());
  for (int64_t d : shape) put_u64(out, static_cast<uint64_t>(d));
  put_u64(out, nbytes);
  return out;
}

StateRoots state_roots(const std::map<std::string, Digest>& leaves) {
  std::vector<Digest> weights, optimizer;
  for (const auto& [key, d] : leaves) {  // std::map: byte order of the keys
    if (key.rfind("param/", 0) == 0) weights.push_back(d);
    else if (key.rfind("adam_m/", 0) == 0 || key.rfind("adam_v/", 0) == 0) optimizer.push_back(d);
  }
  return {digest_hex(merkle_root(weights)), digest_hex(merkle_root(optimizer))};
}

}  // namespace ssiat
