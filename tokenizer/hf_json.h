// Hugging Face `tokenizer.json` (tokenizers/src/tokenizer/serialization.rs, models/bpe/
// serialization.rs) for our SentencePiece-style BPE vocab with byte fallback, so that
// `tokenizers.Tokenizer.from_file` gives the same ids as libsentencepiece on our .model file.
//
// Layout (keys in the order the real files use): version "1.0", truncation null, padding null,
// added_tokens (unk and control pieces special=true; user-defined pieces special=false; all
// normalized=false), normalizer Sequence[
//   kNfc:  NFC
//   kNfkc: Precompiled(per-code-point NFKC rules of charsmap.h, which leave the Hangul
//          compatibility jamo ㅋ/ㅎ... alone; HF's own NFKC would map ㅋ -> ᄏ) then NFC; together
//          this is NFKC-except-compatibility-jamo, like our normalizer
//   kIdentity: nothing
//   Replace "▁" -> " ";
//   if remove_extra_whitespaces: Replace /\A +/ -> "", / +\z/ -> "", / {2,}/ -> " " (ASCII spaces
//   only, as SentencePiece does after its charsmap);
//   if add_dummy_prefix: Prepend "▁" (HF prepends only to non-empty text, as SentencePiece);
//   Replace " " -> "▁"],
// pre_tokenizer null, post_processor null (no <s> added, so ids equal our encode), decoder
// Sequence[Replace "▁" -> " ", ByteFallback, Fuse, Strip(" ", 1 if add_dummy_prefix, 0)],
// model BPE {dropout null, unk_token, continuing_subword_prefix null, end_of_word_suffix null,
// fuse_unk true, byte_fallback, ignore_merges false, vocab {piece: id}, merges [[left, right]]}.
// Merges follow transformers' SentencePieceExtractor with scores: pieces by falling score (ties in
// id order), for each every split at a character boundary into two vocab pieces, ordered by
// (id of left, id of right).
//
// Known differences from libsentencepiece: HF matches added tokens (e.g. a literal "<s>") in raw
// text, SentencePiece does not; NFC in HF is exact where the greedy charsmap is not (marks after a
// composed form, see charsmap.h); HF's Precompiled works per grapheme (a grapheme under 6 bytes
// whose first code point has an NFKC rule is replaced whole).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tokenizer/vocab.h"

namespace ssiat::tokenizer {

// The merges list described above, as (left, right) piece pairs in rank order.
std::vector<std::pair<std::string, std::string>> hf_merges(const Vocab& v);

// tokenizer.json text (2-space indented). Throws TokenizerError if unk_id is not a piece or a piece
// text repeats.
std::string write_hf_tokenizer_json(const Vocab& v);

}  // namespace ssiat::tokenizer
