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

#include <cstdint>
#include <string>
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

}  // namespace ssiat::tokenizer
