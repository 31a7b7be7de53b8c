// Normaliser (tokenizer/normalizer.h). NFC/NFKC: Unicode Standard Annex #15, via utf8proc.
//
// Fast path: a code point is "inert" for a form when it is its own normal form, has canonical
// combining class 0, and neither it nor the first code point of its canonical decomposition can
// be the second part of a canonical composition. Normalisation never changes a run of inert
// characters and never reaches across one (no reordering passes a starter, and nothing composes
// with what precedes an inert character), so only the runs from the inert character before a
// non-inert one up to the next inert character go through utf8proc.
#include "tokenizer/normalizer.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include <utf8proc.h>

#include "tokenizer/utf8.h"

namespace ssiat::tokenizer {
namespace {

constexpr char32_t kTableEnd = 0x30000;  // code points at or above are never inert (slow path)
constexpr char32_t kSpaceMark = 0x2581;  // ▁

bool is_kept_hangul_compat(char32_t c) { return (c >= 0x3131 && c <= 0x318E) || (c >= 0xFFA0 && c <= 0xFFDC); }

struct InertTable {
  std::vector<uint64_t> bits = std::vector<uint64_t>(kTableEnd / 64, 0);
  bool test(char32_t c) const { return c < kTableEnd && ((bits[c >> 6] >> (c & 63)) & 1); }
};

InertTable build_inert_table(bool compat) {
  std::vector<uint8_t> second(kTableEnd, 0);
  utf8proc_int32_t buf[64];
  for (char32_t c = 0; c < kTableEnd; c++) {
    if (c >= 0xD800 && c < 0xE000) continue;
    int bound = 0;
    const auto n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 64, UTF8PROC_DECOMPOSE, &bound);
    for (utf8proc_ssize_t k = 1; k < n; k++)
      if (buf[k] >= 0 && static_cast<char32_t>(buf[k]) < kTableEnd) second[buf[k]] = 1;
  }
  const auto opts = static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0));
  InertTable t;
  for (char32_t c = 0; c < kTableEnd; c++) {
    if (c >= 0xD800 && c < 0xE000) continue;
    bool inert = false;
    if (compat && is_kept_hangul_compat(c)) {
      inert = true;
    } else if (!second[c] && utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class == 0) {
      int bound = 0;
      auto n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 64, opts, &bound);
      if (n > 0 && n <= 64 && !(static_cast<char32_t>(buf[0]) < kTableEnd && second[buf[0]])) {
        n = utf8proc_normalize_utf32(buf, n, static_cast<utf8proc_option_t>(opts | UTF8PROC_COMPOSE | UTF8PROC_STABLE));
        inert = n == 1 && static_cast<char32_t>(buf[0]) == c;
      }
    }
    if (inert) t.bits[c >> 6] |= uint64_t{1} << (c & 63);
  }
  return t;
}

const InertTable& inert_table(bool compat) {
  static const InertTable nfc = build_inert_table(false);
  static const InertTable nfkc = build_inert_table(true);
  return compat ? nfkc : nfc;
}

// utf8proc on one short run of valid UTF-8.
void append_normalized_run(std::string& out, std::string_view run, bool compat) {
  utf8proc_uint8_t* dst = nullptr;
  const auto opts = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | (compat ? UTF8PROC_COMPAT : 0));
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()),
                              static_cast<utf8proc_ssize_t>(run.size()), &dst, opts);
  if (n < 0) {
    std::free(dst);
    throw TokenizerError(std::string("unicode normalisation failed: ") + utf8proc_errmsg(n));
  }
  out.append(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  std::free(dst);
}

// NFC/NFKC of valid UTF-8, appended to out.
void append_unicode_normalized(std::string& out, std::string_view s, bool compat) {
  const InertTable& t = inert_table(compat);
  size_t copied = 0;        // s[0, copied) is already in out
  size_t last_inert = 0;    // start of the latest inert character (or 0)
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {  // ASCII is inert in both forms
      last_inert = i++;
      continue;
    }
    int len;
    const char32_t c = decode_utf8(s.data() + i, &len);
    if (t.test(c)) {
      last_inert = i;
      i += len;
      continue;
    }
    // A non-inert character: normalise [last_inert, next inert character).
    const size_t start = std::max(last_inert, copied);
    size_t j = i + len;
    while (j < s.size()) {
      int l2;
      const char32_t c2 = decode_utf8(s.data() + j, &l2);
      if (c2 < 0x80 || t.test(c2)) break;
      j += l2;
    }
    out.append(s.data() + copied, start - copied);
    append_normalized_run(out, s.substr(start, j - start), compat);
    copied = j;
    last_inert = j;
    i = j;
  }
  out.append(s.data() + copied, s.size() - copied);
}

}  // namespace

std::string check_or_replace_utf8(std::string_view text, bool replace, std::string_view what) {
  auto bad = find_invalid_utf8(text);
  if (!bad) return std::string(text);
  if (!replace)
    throw TokenizerError(std::string(what) + ": invalid UTF-8 at byte offset " + std::to_string(*bad));
  std::string out;
  out.reserve(text.size() + 16);
  size_t pos = 0;
  while (bad) {
    out.append(text.data() + pos, *bad - pos);
    out.append("\xEF\xBF\xBD");
    pos = *bad + 1;
    const auto rest = find_invalid_utf8(text.substr(pos));
    bad = rest ? std::optional<size_t>(pos + *rest) : std::nullopt;
  }
  out.append(text.data() + pos, text.size() - pos);
  return out;
}

Normalizer::Normalizer(NormalizerConfig cfg, SymbolMatcher user_defined)
    : cfg_(cfg), user_defined_(std::move(user_defined)) {
  if (cfg_.form != NormForm::kIdentity) (void)inert_table(cfg_.form == NormForm::kNfkc);
}

std::string Normalizer::unicode_normalize(std::string_view text) const {
  if (cfg_.form == NormForm::kIdentity) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  append_unicode_normalized(out, text, cfg_.form == NormForm::kNfkc);
  return out;
}

std::string Normalizer::normalize_impl(std::string_view raw, bool for_model) const {
  std::string checked;
  std::string_view text = raw;
  if (find_invalid_utf8(raw)) {
    checked = check_or_replace_utf8(raw, cfg_.replace_invalid_utf8, "input text");
    text = checked;
  }
  // 1. Unicode normalisation; user-defined symbols are copied verbatim.
  std::string u;
  if (user_defined_.empty()) {
    u = unicode_normalize(text);
  } else {
    u.reserve(text.size() + 8);
    size_t seg = 0, i = 0;
    while (i < text.size()) {
      if (const size_t m = user_defined_.match(text.substr(i))) {
        u += unicode_normalize(text.substr(seg, i - seg));
        u.append(text.data() + i, m);
        i += m;
        seg = i;
      } else {
        i += utf8_len(static_cast<unsigned char>(text[i]));
      }
    }
    u += unicode_normalize(text.substr(seg));
  }
  // 2. Whitespace: U+0020 and a literal ▁ are spaces; written as ▁ for the model, else ' '.
  const std::string_view space = for_model ? std::string_view("\xE2\x96\x81") : std::string_view(" ");
  std::string out;
  out.reserve(u.size() + 16);
  if (for_model && cfg_.add_dummy_prefix) out.append(space);
  const size_t body = out.size();
  const bool squeeze = cfg_.remove_extra_whitespaces;
  bool prev_space = squeeze;  // with squeezing, leading spaces are dropped
  for (size_t i = 0; i < u.size();) {
    bool is_space = u[i] == ' ';
    size_t len = 1;
    if (!is_space && static_cast<unsigned char>(u[i]) == 0xE2 && u.compare(i, 3, "\xE2\x96\x81") == 0) is_space = true, len = 3;
    if (!is_space) {
      len = static_cast<size_t>(utf8_len(static_cast<unsigned char>(u[i])));
      out.append(u, i, len);
      prev_space = false;
    } else if (!(squeeze && prev_space)) {
      out.append(space);
      prev_space = true;
    }
    i += len;
  }
  if (squeeze)
    while (out.size() > body && std::string_view(out).ends_with(space)) out.resize(out.size() - space.size());
  if (out.size() == body) out.clear();  // empty text gets no dummy prefix
  return out;
}

std::string Normalizer::normalize_for_model(std::string_view text) const { return normalize_impl(text, true); }
std::string Normalizer::normalize(std::string_view text) const { return normalize_impl(text, false); }

}  // namespace ssiat::tokenizer
