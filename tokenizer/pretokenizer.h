// Pre-tokenisation: splits normalised text (spaces as ▁) into the units BPE merges within.
//
// Rule: a boundary falls before code point b, following code point a, when
//   b is ▁ and a is not ▁ (a run of spaces stays together), or
//   a is not ▁ and the classes of a and b differ, where digits count as punctuation unless
//   split_digits (SentencePiece's pieces such as "0.4%" or "(20" stay possible), or
//   split_digits and a or b is a digit (every digit alone, a leading ▁ excepted);
// and around every user-defined symbol (matched longest first), which is a unit of its own.
// So a pre-token is a run of ▁ then a run of one class. The rule depends only on adjacent code
// points, so a learned piece (always inside one pre-token) never spans a boundary, and running
// SentencePiece's BPE per pre-token gives exactly what it gives on the whole text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace ssiat::tokenizer {

// Script/kind classes; pieces never mix them.
enum class CharClass : uint8_t { kSpace, kHangul, kHan, kKana, kLatin, kDigit, kPunct, kMark, kOtherLetter, kOther };

CharClass char_class(char32_t c);

struct PreToken {
  uint32_t begin = 0, end = 0;  // byte range in the normalised text
  bool user_defined = false;
};

class PreTokenizer {
 public:
  PreTokenizer(PretokConfig cfg, SymbolMatcher user_defined = {});
  // Appends the pre-tokens of normalised text s to out (in order, covering s exactly).
  void split(std::string_view s, std::vector<PreToken>& out) const;
  const PretokConfig& config() const { return cfg_; }
  // True when a boundary falls between adjacent code points a and b.
  bool boundary(char32_t a, char32_t b) const;

 private:
  PretokConfig cfg_;
  SymbolMatcher user_defined_;
};

}  // namespace ssiat::tokenizer
