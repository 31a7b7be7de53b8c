// Init-commitment leaves (contract in core/init_leaf.h).
#include "core/init_leaf.h"

#include <bit>
#include <cstring>

namespace ssiat {

static_assert(std::endian::native == std::endian::little, "tensor bytes are hashed as they lie in memory");

std::string init_leaf_header(std::string_view name, std::string_view dtype, const std::vector<int64_t>& shape,
                             const InitSpec& spec, uint64_t nbytes) {
  std::string out = tensor_leaf_prefix(kInitLeafDomain, name, dtype, shape);
  std::vector<double> params;
  switch (spec.kind) {
    case InitKind::kZeros:
    case InitKind::kOnes: break;
    case InitKind::kUniform: params = {spec.lo, spec.hi}; break;
    case InitKind::kNormal: params = {spec.mean, spec.std}; break;
    case InitKind::kTruncNormal: params = {spec.mean, spec.std, spec.a, spec.b}; break;
  }
  const std::string fn = spec.to_json().at("fn").get<std::string>();
  append_u64le(out, fn.size());
  out.append(fn);
  append_u64le(out, params.size());
  for (double p : params) append_u64le(out, std::bit_cast<uint64_t>(p));
  append_u64le(out, nbytes);
  return out;
}

Digest init_leaf_hash(std::string_view name, std::string_view dtype, const std::vector<int64_t>& shape,
                      const InitSpec& spec, const void* data, size_t nbytes) {
  LeafHasher h;
  h.update(init_leaf_header(name, dtype, shape, spec, nbytes));
  h.update(data, nbytes);
  return h.finish();
}

}  // namespace ssiat
