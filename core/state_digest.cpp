// State digests over logical tensors (contract in core/state_digest.h).
#include "core/state_digest.h"

namespace ssiat {

std::string state_leaf_header(std::string_view key, std::string_view dtype, const std::vector<int64_t>& shape,
                              uint64_t nbytes) {
  std::string out = tensor_leaf_prefix(kStateLeafDomain, key, dtype, shape);
  append_u64le(out, nbytes);
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
