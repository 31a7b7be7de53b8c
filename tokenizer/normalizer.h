// Text normalisation for the BPE tokenizer: Unicode NFC (default) or NFKC through utf8proc, then
// SentencePiece's whitespace rules (normalizer.cc): only U+0020 counts as a space; with
// remove_extra_whitespaces, leading and trailing spaces are dropped and runs collapse to one;
// spaces become U+2581 "▁"; with add_dummy_prefix, non-empty text gets a leading ▁.
//
// Contract:
// - A literal U+2581 in the input is read as a space (so decode(encode(x)) == normalize(x)).
// - NFKC keeps Hangul compatibility jamo (U+3131..318E) and halfwidth Hangul (U+FFA0..FFDC)
//   unchanged: standard NFKC (and SentencePiece's nmt_nfkc) turns "ㅋㅋㅋ" into conjoining
//   jamo that never come back.
// - User-defined symbols are matched (longest first, at each position) before normalisation
//   and copied verbatim, as SentencePiece does.
// - Invalid UTF-8: TokenizerError naming the byte offset, or, with replace_invalid_utf8, each
//   bad byte becomes U+FFFD (SentencePiece's behaviour).
// NFC/NFKC are computed by utf8proc on the short runs that can change; text made only of
// characters that are stable and never compose (most Hangul, ASCII) is copied as is.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace ssiat::tokenizer {

class Normalizer {
 public:
  explicit Normalizer(NormalizerConfig cfg, SymbolMatcher user_defined = {});

  // What the BPE model sees: normalised, spaces as ▁, dummy prefix.
  std::string normalize_for_model(std::string_view text) const;
  // What decode(encode(text)) gives back: normalised, spaces as spaces, no prefix.
  std::string normalize(std::string_view text) const;
  // Unicode normalisation only (NFC/NFKC/identity), no whitespace rules; valid UTF-8 in.
  std::string unicode_normalize(std::string_view text) const;

  const NormalizerConfig& config() const { return cfg_; }

 private:
  std::string normalize_impl(std::string_view text, bool for_model) const;

  NormalizerConfig cfg_;
  SymbolMatcher user_defined_;
};

// The text with each invalid UTF-8 byte replaced by U+FFFD, or a TokenizerError naming the
// offset of the first one (what = label, e.g. a file name).
std::string check_or_replace_utf8(std::string_view text, bool replace, std::string_view what);

}  // namespace ssiat::tokenizer
