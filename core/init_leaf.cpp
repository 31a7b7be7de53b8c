// Init-commitment leaves (contract in core/init_leaf.h).
#include "core/init_leaf.h"

#include <bit>
#include <cstring>

namespace ssiat {

static_assert(std::endian::native == std::endian::little, "tensor bytes are hashed as they lie in memory");

namespace {

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; i++) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_f64(std::string& out, double v) { put_u64(out, std::bit_cast<uint64_t>(v)); }

void put_str(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}

}  // namespace

std::string init_leaf_header(std::string_view name, std::string_view dtype, const std::vector<int64_t>& shape,
                             const InitSpec& spec, uint64_t nbytes) {
  std::string out(kInitLeafDomain);
  out.push_back('\0');
  put_str(out, name);
  put_str(out, dtype);
  put_u64(out, shape.size());
  for (int64_t d : shape) put_u64(out, static_cast<uint64_t>(d));
  std::vector<double> params;
  switch (spec.kind) {
    case InitKind::kZeros:
    case InitKind::kOnes: break;
    case InitKind::kUniform: params = {spec.lo, spec.hi}; break;
    case InitKind::kNormal: params = {spec.mean, spec.std}; break;
    case InitKind::kTruncNormal: params = {spec.mean, spec.std, spec.a, spec.b}; break;
  }
  put_str(out, spec.to_json().at("fn").get<std::string>());
  put_u64(out, params.size());
  for (double p : params) put_f64(out, p);
  put_u64(out, nbytes);
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
