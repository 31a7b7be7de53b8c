// The data that defines a BPE tokenizer, shared by the trainer, the encoder and the file
// writers (our tokenizer.ssiat.json, SentencePiece's tokenizer.model, Hugging Face's
// tokenizer.json).
//
// Vocabulary layout (same as spm_train --model_type=bpe --byte_fallback): id 0 <unk>, 1 <s>,
// 2 </s>, then control symbols, user-defined symbols and the 256 byte pieces <0x00>..<0xFF>
// (score 0), then the learned merges in merge order (score -rank: the k-th merge scores -k), then
// the single characters of the alphabet by falling frequency (scores continue downwards).
// Encoding semantics are SentencePiece's BPE (tokenizer/bpe.h), which uses only the scores.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/check.h"

namespace ssiat::tokenizer {

// A tokenizer file or setting is unusable; what() names the file, key or byte offset.
class TokenizerError : public Error {
 public:
  using Error::Error;
};

// Numbering is SentencePiece's ModelProto.SentencePiece.Type.
enum class PieceType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct Piece {
  std::string text;  // UTF-8; whitespace is U+2581 "▁"
  float score = 0;
  PieceType type = PieceType::kNormal;
  bool operator==(const Piece&) const = default;
};

enum class NormForm { kNfc, kNfkc, kIdentity };

struct NormalizerConfig {
  NormForm form = NormForm::kNfc;   // NFKC here keeps Hangul compatibility jamo (ㅋ) as they are
  bool add_dummy_prefix = true;     // prepend ▁ to non-empty text
  bool remove_extra_whitespaces = false;  // strip leading/trailing spaces, collapse runs
  bool replace_invalid_utf8 = false;      // false: refuse with the byte offset; true: each bad byte -> U+FFFD
  bool operator==(const NormalizerConfig&) const = default;
};

struct PretokConfig {
  bool split_digits = false;   // every digit its own pre-token
  int32_t max_piece_chars = 16;  // longest learned piece, in code points
  bool operator==(const PretokConfig&) const = default;
};

struct Vocab {
  std::vector<Piece> pieces;  // id order
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  bool byte_fallback = true;
  NormalizerConfig normalizer;
  PretokConfig pretok;
  bool operator==(const Vocab&) const = default;
};

const char* norm_form_name(NormForm f);  // "nfc", "nfkc", "identity"

// The text of byte piece b: "<0x00>" ... "<0xFF>".
inline std::string byte_piece(int b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b & 0xFF);
  return buf;
}

// User-defined symbols, matched longest first at a position (SentencePiece's PrefixMatcher).
class SymbolMatcher {
 public:
  SymbolMatcher() = default;
  SymbolMatcher(std::initializer_list<std::string> symbols) : SymbolMatcher(std::vector<std::string>(symbols)) {}
  SymbolMatcher(std::vector<std::string> symbols) : symbols_(std::move(symbols)) {  // NOLINT: implicit on purpose
    std::erase(symbols_, std::string());
    std::sort(symbols_.begin(), symbols_.end(),
              [](const std::string& a, const std::string& b) { return a.size() != b.size() ? a.size() > b.size() : a < b; });
  }
  bool empty() const { return symbols_.empty(); }
  // Length of the longest symbol that s starts with, or 0.
  size_t match(std::string_view s) const {
    for (const auto& u : symbols_)
      if (s.starts_with(u)) return u.size();
    return 0;
  }

 private:
  std::vector<std::string> symbols_;
};

}  // namespace ssiat::tokenizer
