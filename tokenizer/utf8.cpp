// UTF-8 validation per RFC 3629 §4 (the well-formed byte sequences table, also Unicode 15
// Table 3-7): no overlong forms, no surrogates U+D800..U+DFFF, nothing above U+10FFFF.
//
//   U+0000..U+007F     00..7F
//   U+0080..U+07FF     C2..DF   80..BF
//   U+0800..U+0FFF     E0       A0..BF   80..BF
//   U+1000..U+CFFF     E1..EC   80..BF   80..BF
//   U+D000..U+D7FF     ED       80..9F   80..BF
//   U+E000..U+FFFF     EE..EF   80..BF   80..BF
//   U+10000..U+3FFFF   F0       90..BF   80..BF   80..BF
//   U+40000..U+FFFFF   F1..F3   80..BF   80..BF   80..BF
//   U+100000..U+10FFFF F4       80..8F   80..BF   80..BF
//
// The reported offset is the first byte of the sequence that is ill-formed (a stray
// continuation byte, a bad lead byte, or a lead whose continuation is wrong or cut off), the
// same as Python's UnicodeDecodeError.start.
#include "tokenizer/utf8.h"

#include <cstdint>
#include <cstring>

namespace ssiat::tokenizer {
namespace {

inline bool in_range(uint8_t b, uint8_t lo, uint8_t hi) { return b >= lo && b <= hi; }

}  // namespace

std::optional<size_t> find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path: eight bytes at a time while none has its high bit set.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const uint8_t b0 = p[i];
    if (b0 < 0x80) {
      i++;
      continue;
    }
    // Length and the allowed range of the second byte for this lead byte (RFC 3629 table).
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (in_range(b0, 0xC2, 0xDF)) {
      len = 2;
    } else if (b0 == 0xE0) {
      len = 3, lo = 0xA0;
    } else if (in_range(b0, 0xE1, 0xEC) || in_range(b0, 0xEE, 0xEF)) {
      len = 3;
    } else if (b0 == 0xED) {
      len = 3, hi = 0x9F;
    } else if (b0 == 0xF0) {
      len = 4, lo = 0x90;
    } else if (in_range(b0, 0xF1, 0xF3)) {
      len = 4;
    } else if (b0 == 0xF4) {
      len = 4, hi = 0x8F;
    } else {
      return i;  // 80..C1 (continuation or overlong lead) or F5..FF
    }
    if (n - i < len) return i;  // cut off
    if (!in_range(p[i + 1], lo, hi)) return i;
    for (size_t k = 2; k < len; k++)
      if (!in_range(p[i + k], 0x80, 0xBF)) return i;
    i += len;
  }
  return std::nullopt;
}

}  // namespace ssiat::tokenizer
