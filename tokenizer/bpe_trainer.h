// BPE trainer (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword
// Units", ACL), producing a SentencePiece-layout vocabulary (tokenizer/vocab.h).
//
// Pipeline: sentences (lines) -> normalise -> pre-tokenise -> count distinct pre-tokens (threads
// over sentences; counts are sums, so the result does not depend on the thread count) -> keep the
// most frequent characters covering `character_coverage` of all characters (the rest are left to
// byte fallback and split words) -> count adjacent pairs over the distinct pre-tokens (threads
// over words) -> repeat: take the most frequent pair from a max-heap with lazy invalidation
// (a popped entry whose count is stale is pushed again with the current count), rewrite only
// the words that hold it (an index pair -> words), and update the counts of the neighbouring
// pairs incrementally; never a recount.
// Ties: higher count, then shorter joined piece, then smaller (left, right) symbol ids (ids
// follow character frequency, then merge order), so the vocabulary is the same for every
// thread count.
// Sampling: with max_sentences > 0 and more sentences than that, sentence i is kept when its
// key splitmix64(sample_seed + i * 0x9E3779B97F4A7C15) is among the max_sentences smallest
// (ties by index); sample_seed comes from the run's seed registry (stream "tokenizer/sample").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace ssiat::tokenizer {

struct BpeTrainOptions {
  int32_t vocab_size = 32000;
  NormalizerConfig normalizer;
  PretokConfig pretok;
  double character_coverage = 0.9995;  // share of character occurrences the alphabet covers
  bool byte_fallback = true;
  std::vector<std::string> user_defined_symbols;  // matched in text, never merged
  std::vector<std::string> control_symbols;       // ids only, never produced by encode
  int64_t max_sentences = 0;                      // 0: all
  uint64_t sample_seed = 0;
  int64_t min_pair_count = 2;  // stop merging below this count
  int32_t threads = 0;         // 0: hardware concurrency
  bool progress = false;       // progress lines on stderr
  bool verify_counts = false;  // tests: after every merge, recount all pairs from scratch and
                               // throw if the incremental counts differ (O(corpus) per merge)
  void validate() const;       // throws TokenizerError naming the option
};

struct BpeTrainStats {
  int64_t sentences_total = 0, sentences_used = 0, bytes_used = 0;
  int64_t pretokens = 0, distinct_pretokens = 0;
  int64_t alphabet = 0, chars_dropped = 0;  // distinct characters kept / left to byte fallback
  int64_t merges = 0;
  bool vocab_short = false;  // ran out of pairs with count >= min_pair_count
  double seconds_count = 0, seconds_merge = 0;
};

// Trains on in-memory sentences (valid UTF-8; see check_or_replace_utf8).
Vocab train_bpe(const std::vector<std::string_view>& sentences, const BpeTrainOptions& opt,
                BpeTrainStats* stats = nullptr);

// The keys used for sampling (exposed for tests).
uint64_t splitmix64(uint64_t x);

}  // namespace ssiat::tokenizer
