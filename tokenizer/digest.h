// SHA-256 (FIPS 180-4) through OpenSSL, for tokenizer digests and corpus provenance. tokenizer/
// may not use core/hash.h (dependencies point downward), so it has this one small twin.
#pragma once

#include <string>
#include <string_view>

namespace ssiat::tokenizer {

std::string sha256_hex_of(std::string_view bytes);  // 64 lowercase hex digits

}  // namespace ssiat::tokenizer
