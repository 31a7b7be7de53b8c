// The canonical bytes of one initial tensor, a leaf of the init commitment (docs/provenance.md
// "Init commitment"; issue 10). A leaf binds the tensor's name, dtype, logical shape and init
// spec to its little-endian bytes:
//   "ssiat/init-leaf/v1" 0x00                       (19 bytes)
//   u64le(len(name))  name                          (UTF-8, the Hugging Face tensor name)
//   u64le(len(dtype)) dtype                         ("float32" | "float64")
//   u64le(ndim) u64le(dim_0) ... u64le(dim_{ndim-1}) (the logical, unsharded shape)
//   u64le(len(fn)) fn u64le(k) f64le(p_1) ... f64le(p_k)   (the init spec: "zeros", "ones" (k = 0),
//                                                    "uniform" lo hi, "normal" mean std,
//                                                    "trunc_normal" mean std a b; IEEE binary64)
//   u64le(nbytes) bytes                             (the tensor, row-major, little-endian IEEE)
// Its hash is the RFC 6962 leaf hash SHA-256(0x00 || leaf) (core/merkle.h), and the init root
// is the Merkle Tree Hash of the leaf hashes in the model's tensor order (core/model.h views()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/init.h"
#include "core/merkle.h"

namespace ssiat {

inline constexpr std::string_view kInitLeafDomain = "ssiat/init-leaf/v1";
inline constexpr std::string_view kInitRootScheme = "rfc6962-sha256/ssiat-init-leaf-v1";

// Every leaf byte before the tensor bytes (the header above, ending with u64le(nbytes)).
std::string init_leaf_header(std::string_view name, std::string_view dtype, const std::vector<int64_t>& shape,
                             const InitSpec& spec, uint64_t nbytes);

// The leaf hash of a tensor whose nbytes bytes are at `data` (little-endian already: this
// library is built for little-endian hosts only).
Digest init_leaf_hash(std::string_view name, std::string_view dtype, const std::vector<int64_t>& shape,
                      const InitSpec& spec, const void* data, size_t nbytes);

}  // namespace ssiat
