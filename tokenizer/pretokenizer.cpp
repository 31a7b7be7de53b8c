// Pre-tokeniser (tokenizer/pretokenizer.h). Classes: Hangul syllables and jamo (all Unicode
// Hangul blocks), Han, Kana, Latin letters, decimal digits (Nd), punctuation and symbols (P*,
// S*), marks (M*), other letters (L*), everything else; ▁ is its own class. Categories come from
// utf8proc; the Basic Multilingual Plane is tabulated once.
#include "tokenizer/pretokenizer.h"

#include <algorithm>
#include <array>

#include <utf8proc.h>

#include "tokenizer/utf8.h"

namespace ssiat::tokenizer {
namespace {

bool in(char32_t c, char32_t lo, char32_t hi) { return c >= lo && c <= hi; }

CharClass classify(char32_t c) {
  if (c == 0x2581) return CharClass::kSpace;
  if (in(c, 0xAC00, 0xD7A3) || in(c, 0x1100, 0x11FF) || in(c, 0x3130, 0x318F) || in(c, 0xA960, 0xA97F) ||
      in(c, 0xD7B0, 0xD7FF) || in(c, 0xFFA0, 0xFFDC))
    return CharClass::kHangul;
  if (in(c, 0x4E00, 0x9FFF) || in(c, 0x3400, 0x4DBF) || in(c, 0xF900, 0xFAFF) || in(c, 0x2E80, 0x2FDF) ||
      in(c, 0x20000, 0x3FFFF) || c == 0x3005 || c == 0x3007 || in(c, 0x3021, 0x3029))
    return CharClass::kHan;
  if (in(c, 0x3040, 0x30FF) || in(c, 0x31F0, 0x31FF) || in(c, 0xFF66, 0xFF9F)) return CharClass::kKana;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  switch (cat) {
    case UTF8PROC_CATEGORY_ND: return CharClass::kDigit;
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      if (c < 0x250 || in(c, 0x1E00, 0x1EFF) || in(c, 0x2C60, 0x2C7F) || in(c, 0xA720, 0xA7FF) || in(c, 0xFF21, 0xFF3A) ||
          in(c, 0xFF41, 0xFF5A))
        return CharClass::kLatin;
      return CharClass::kOtherLetter;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME: return CharClass::kMark;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO: return CharClass::kPunct;
    default: return CharClass::kOther;
  }
}

struct BmpTable {
  std::array<CharClass, 0x10000> cls;
  BmpTable() {
    for (char32_t c = 0; c < 0x10000; c++) cls[c] = classify(c);
  }
};

}  // namespace

CharClass char_class(char32_t c) {
  static const BmpTable table;
  return c < 0x10000 ? table.cls[c] : classify(c);
}

PreTokenizer::PreTokenizer(PretokConfig cfg, SymbolMatcher user_defined)
    : cfg_(cfg), user_defined_(std::move(user_defined)) {}

bool PreTokenizer::boundary(char32_t a, char32_t b) const {
  if (b == 0x2581) return a != 0x2581;  // runs of spaces stay together
  if (a == 0x2581) return false;        // spaces lead the run that follows
  const CharClass ca = char_class(a), cb = char_class(b);
  if (cfg_.split_digits) return ca != cb || cb == CharClass::kDigit || ca == CharClass::kDigit;
  auto merged = [](CharClass c) { return c == CharClass::kDigit ? CharClass::kPunct : c; };
  return merged(ca) != merged(cb);
}

void PreTokenizer::split(std::string_view s, std::vector<PreToken>& out) const {
  const bool has_ud = !user_defined_.empty();
  uint32_t start = 0;
  char32_t prev = 0;
  bool have_prev = false;
  size_t i = 0;
  while (i < s.size()) {
    if (has_ud) {
      if (const size_t m = user_defined_.match(s.substr(i))) {
        if (have_prev) out.push_back({start, static_cast<uint32_t>(i), false});
        out.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(i + m), true});
        i += m;
        start = static_cast<uint32_t>(i);
        have_prev = false;
        continue;
      }
    }
    int len;
    const char32_t c = decode_utf8(s.data() + i, &len);
    if (have_prev && boundary(prev, c)) {
      out.push_back({start, static_cast<uint32_t>(i), false});
      start = static_cast<uint32_t>(i);
    }
    prev = c;
    have_prev = true;
    i += static_cast<size_t>(len);
  }
  if (have_prev) out.push_back({start, static_cast<uint32_t>(s.size()), false});
}

}  // namespace ssiat::tokenizer
