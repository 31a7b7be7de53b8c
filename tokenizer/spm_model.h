// SentencePiece's tokenizer.model (ModelProto, src/sentencepiece_model.proto of v0.1.97, proto2)
// written from our Vocab and read back.
//
// Written: pieces {piece=1, score=2, type=3 (always, even NORMAL)}, trainer_spec=2 (the fields of
// SpmTrainerSpec, in field-number order), normalizer_spec=3 {name=1, precompiled_charsmap=2 (our
// charsmap.h rules for the form; empty for identity), add_dummy_prefix=3,
// remove_extra_whitespaces=4, escape_whitespaces=5 (always true)}. No denormalizer, no self test.
// Read: the same fields; unknown fields are skipped; absent fields take the proto's defaults;
// malformed input throws TokenizerError naming the byte offset.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace ssiat::tokenizer {

// TrainerSpec fields we record (field numbers in comments). Member defaults are what we write for
// a BPE model with byte fallback; spm_proto_default_trainer_spec() gives the proto's defaults.
struct SpmTrainerSpec {
  std::vector<std::string> input;              // 1
  std::string model_prefix;                    // 2
  int32_t model_type = 2;                      // 3: UNIGRAM=1, BPE=2, WORD=3, CHAR=4
  int32_t vocab_size = 8000;                   // 4
  std::string input_format;                    // 7
  float character_coverage = 0.9995f;          // 10
  uint64_t input_sentence_size = 0;            // 11
  int32_t seed_sentencepiece_size = 1000000;   // 14
  float shrinking_factor = 0.75f;              // 15
  int32_t num_threads = 16;                    // 16
  int32_t num_sub_iterations = 2;              // 17
  int32_t max_sentence_length = 4192;          // 18
  bool shuffle_input_sentence = true;          // 19
  int32_t max_sentencepiece_length = 16;       // 20
  bool split_by_unicode_script = true;         // 21
  bool split_by_whitespace = true;             // 22
  bool split_by_number = true;                 // 23
  bool treat_whitespace_as_suffix = false;     // 24
  bool split_digits = false;                   // 25
  bool allow_whitespace_only_pieces = false;   // 26
  std::vector<std::string> control_symbols;    // 30
  std::vector<std::string> user_defined_symbols;  // 31
  bool vocabulary_output_piece_score = true;   // 32
  bool hard_vocab_limit = true;                // 33
  bool use_all_vocab = false;                  // 34
  bool byte_fallback = true;                   // 35
  std::string required_chars;                  // 36
  int32_t unk_id = 0;                          // 40
  int32_t bos_id = 1;                          // 41
  int32_t eos_id = 2;                          // 42
  int32_t pad_id = -1;                         // 43
  std::string unk_surface = " \xE2\x81\x87 ";  // 44: " ⁇ "
  std::string unk_piece = "<unk>";             // 45
  std::string bos_piece = "<s>";               // 46
  std::string eos_piece = "</s>";              // 47
  std::string pad_piece = "<pad>";             // 48
  bool train_extremely_large_corpus = false;   // 49
  bool operator==(const SpmTrainerSpec&) const = default;
};

// The proto2 defaults (model_type UNIGRAM, byte_fallback false, the rest as above).
SpmTrainerSpec spm_proto_default_trainer_spec();

// The TrainerSpec that describes `v`: vocab_size, byte_fallback, special ids and pieces, control and
// user-defined symbols (from the piece types), max_sentencepiece_length and split_digits.
SpmTrainerSpec spm_trainer_spec_for(const Vocab& v);

struct SpmNormalizerSpec {
  std::string name;                    // 1
  std::string precompiled_charsmap;    // 2
  bool add_dummy_prefix = true;        // 3
  bool remove_extra_whitespaces = true;  // 4
  bool escape_whitespaces = true;      // 5
  std::string normalization_rule_tsv;  // 6
  bool operator==(const SpmNormalizerSpec&) const = default;
};

struct SpmModel {
  std::vector<Piece> pieces;  // id order
  SpmTrainerSpec trainer;
  SpmNormalizerSpec normalizer;
  bool has_trainer_spec = false, has_normalizer_spec = false;
};

// Serialized ModelProto for `v` (pieces, `t`, normalizer from v.normalizer). Throws TokenizerError
// if the vocab is empty or t.vocab_size differs from the number of pieces.
std::string write_spm_model(const Vocab& v, const SpmTrainerSpec& t);

// Parses a serialized ModelProto. Throws TokenizerError "spm model: malformed protobuf at byte N: ..."
// on malformed input (truncation, bad lengths, wrong wire types, unknown piece type).
SpmModel parse_spm_model(std::string_view bytes);

}  // namespace ssiat::tokenizer
