// UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace ssiat::tokenizer {

// Byte offset of the first byte that does not begin a valid UTF-8 sequence, or nullopt.
std::optional<size_t> find_invalid_utf8(std::string_view s);

}  // namespace ssiat::tokenizer
