// SentencePiece's `NormalizerSpec.precompiled_charsmap`: our normalization rules compiled into
// the blob that libsentencepiece (src/normalizer.cc) and Hugging Face's `Precompiled`
// normalizer (crate spm_precompiled) read.
//
// Blob layout: u32le trie_bytes | Darts-clone double array (trie_bytes / 4 u32le units) | pool of
// NUL-terminated UTF-8 replacements. Trie keys are the UTF-8 bytes of a rule's source; the value
// is the byte offset of its replacement in the pool. Unit layout (third_party/darts_clone/darts.h):
// label = unit & (0x80000000|0xFF), has_leaf = bit 8, offset = (unit >> 10) << ((unit & 0x200) >> 6),
// value = unit & 0x7FFFFFFF on value units (bit 31 set). From node position p the child with byte c
// is at p ^ offset(p) ^ c and must carry label c; a key ends at a node with has_leaf whose label-0
// child (at p ^ offset(p)) is the value unit. Unused units are 0x80000000 (label never matches).
// The array is padded to a multiple of 256 units so that any XOR with a byte stays in bounds.
//
// Normalizing with the blob (what SentencePiece does): at each position take the LONGEST rule
// whose source is a prefix of the rest of the input, else copy one UTF-8 character.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/vocab.h"

namespace ssiat::tokenizer {

using CharsmapRules = std::vector<std::pair<std::string, std::string>>;  // source -> replacement

// Compiles rules into a precompiled_charsmap blob. Sources must be non-empty, unique and free of
// NUL bytes; replacements free of NUL. Throws TokenizerError naming the bad rule. Deterministic.
std::string build_charsmap(const CharsmapRules& rules);

// Longest rule matching a prefix of `input`: (source length in bytes, replacement viewed inside
// `blob`), or nullopt. Throws TokenizerError if the blob is malformed (offset named).
std::optional<std::pair<size_t, std::string_view>> charsmap_longest_match(std::string_view blob,
                                                                          std::string_view input);

// Applies the blob to a whole string the way SentencePiece's normalizer does (longest match, else
// copy one UTF-8 character; an invalid byte becomes U+FFFD). Whitespace handling is not done here.
std::string charsmap_apply(std::string_view blob, std::string_view input);

enum class CharsmapRuleSet {
  kFull,            // per-code-point rules + canonical composition sequences (for the .model file)
  kCodePointsOnly,  // per-code-point rules only (for HF's grapheme-wise Precompiled + NFC)
};

// The rules that make greedy longest-match approximate `f` (utf8proc 2.x):
//  - per code point: cp -> F(cp) whenever different (NFC singletons such as U+212B -> U+00C5,
//    NFKC compatibility mappings such as U+FF48 -> "h");
//  - sequences (kFull only): every canonically equivalent spelling of a composed code point
//    (full decomposition, partially composed forms, other orders of marks of different classes)
//    -> F(that code point), e.g. "e\u0301" -> "é", "a\u0323\u0302" -> "ậ", L V T jamo and
//    LV syllable + T -> the LVT syllable;
//  - U+2581 "▁" -> " " (text ▁ is a space, as in our normalizer).
// For kNfkc, Hangul compatibility jamo U+3131..U+318E and halfwidth Hangul U+FFA0..U+FFDC get no
// rule (so "ㅋㅋㅋ" stays). kIdentity: no rules. Greedy matching equals F on text made of whole
// characters in any canonically equivalent spelling; it differs from F when marks follow a
// composed form in a way no single rule covers (e.g. "e\u0301\u0327"), as SentencePiece's own
// nfkc tables do.
CharsmapRules charsmap_rules(NormForm f, CharsmapRuleSet set = CharsmapRuleSet::kFull);

}  // namespace ssiat::tokenizer
