// SentencePiece ModelProto writer and reader (contract in spm_model.h).
#include "tokenizer/spm_model.h"

#include "tokenizer/charsmap.h"
#include "tokenizer/protobuf_wire.h"

namespace ssiat::tokenizer {

using wire::WireField;
using wire::WireReader;
using wire::WireType;

const char* norm_form_name(NormForm f) {
  switch (f) {
    case NormForm::kNfc: return "nfc";
    case NormForm::kNfkc: return "nfkc";
    case NormForm::kIdentity: return "identity";
  }
  return "unknown";
}

SpmTrainerSpec spm_proto_default_trainer_spec() {
  SpmTrainerSpec t;
  t.model_type = 1;
  t.byte_fallback = false;
  return t;
}

SpmTrainerSpec spm_trainer_spec_for(const Vocab& v) {
  SpmTrainerSpec t;
  t.vocab_size = static_cast<int32_t>(v.pieces.size());
  t.byte_fallback = v.byte_fallback;
  t.unk_id = v.unk_id;
  t.bos_id = v.bos_id;
  t.eos_id = v.eos_id;
  t.pad_id = v.pad_id;
  auto piece_at = [&](int32_t id, std::string& out) {
    if (id >= 0 && id < t.vocab_size) out = v.pieces[id].text;
  };
  piece_at(v.unk_id, t.unk_piece);
  piece_at(v.bos_id, t.bos_piece);
  piece_at(v.eos_id, t.eos_piece);
  piece_at(v.pad_id, t.pad_piece);
  for (int32_t id = 0; id < t.vocab_size; ++id) {
    const Piece& p = v.pieces[id];
    const bool special = id == v.bos_id || id == v.eos_id || id == v.pad_id;
    if (p.type == PieceType::kControl && !special) t.control_symbols.push_back(p.text);
    if (p.type == PieceType::kUserDefined) t.user_defined_symbols.push_back(p.text);
  }
  t.max_sentencepiece_length = v.pretok.max_piece_chars;
  t.split_digits = v.pretok.split_digits;
  return t;
}

namespace {

std::string write_piece(const Piece& p) {
  std::string m;
  wire::put_bytes(m, 1, p.text);
  wire::put_float(m, 2, p.score);
  wire::put_int32(m, 3, static_cast<int32_t>(p.type));
  return m;
}

std::string write_trainer_spec(const SpmTrainerSpec& t) {
  std::string m;
  for (const auto& in : t.input) wire::put_bytes(m, 1, in);
  wire::put_bytes(m, 2, t.model_prefix);
  wire::put_int32(m, 3, t.model_type);
  wire::put_int32(m, 4, t.vocab_size);
  wire::put_bytes(m, 7, t.input_format);
  wire::put_float(m, 10, t.character_coverage);
  wire::put_uint64(m, 11, t.input_sentence_size);
  wire::put_int32(m, 14, t.seed_sentencepiece_size);
  wire::put_float(m, 15, t.shrinking_factor);
  wire::put_int32(m, 16, t.num_threads);
  wire::put_int32(m, 17, t.num_sub_iterations);
  wire::put_int32(m, 18, t.max_sentence_length);
  wire::put_bool(m, 19, t.shuffle_input_sentence);
  wire::put_int32(m, 20, t.max_sentencepiece_length);
  wire::put_bool(m, 21, t.split_by_unicode_script);
  wire::put_bool(m, 22, t.split_by_whitespace);
  wire::put_bool(m, 23, t.split_by_number);
  wire::put_bool(m, 24, t.treat_whitespace_as_suffix);
  wire::put_bool(m, 25, t.split_digits);
  wire::put_bool(m, 26, t.allow_whitespace_only_pieces);
  for (const auto& s : t.control_symbols) wire::put_bytes(m, 30, s);
  for (const auto& s : t.user_defined_symbols) wire::put_bytes(m, 31, s);
  wire::put_bool(m, 32, t.vocabulary_output_piece_score);
  wire::put_bool(m, 33, t.hard_vocab_limit);
  wire::put_bool(m, 34, t.use_all_vocab);
  wire::put_bool(m, 35, t.byte_fallback);
  wire::put_bytes(m, 36, t.required_chars);
  wire::put_int32(m, 40, t.unk_id);
  wire::put_int32(m, 41, t.bos_id);
  wire::put_int32(m, 42, t.eos_id);
  wire::put_int32(m, 43, t.pad_id);
  wire::put_bytes(m, 44, t.unk_surface);
  wire::put_bytes(m, 45, t.unk_piece);
  wire::put_bytes(m, 46, t.bos_piece);
  wire::put_bytes(m, 47, t.eos_piece);
  wire::put_bytes(m, 48, t.pad_piece);
  wire::put_bool(m, 49, t.train_extremely_large_corpus);
  return m;
}

std::string write_normalizer_spec(const NormalizerConfig& n) {
  std::string m;
  wire::put_bytes(m, 1, norm_form_name(n.form));
  if (n.form != NormForm::kIdentity) wire::put_bytes(m, 2, build_charsmap(charsmap_rules(n.form)));
  wire::put_bool(m, 3, n.add_dummy_prefix);
  wire::put_bool(m, 4, n.remove_extra_whitespaces);
  wire::put_bool(m, 5, true);
  return m;
}

// ---- reading ----

constexpr const char* kWhat = "spm model";

int32_t as_int32(const WireReader& r, const WireField& f) {
  r.expect(f, WireType::kVarint);
  return static_cast<int32_t>(static_cast<uint32_t>(f.varint));  // int32 is the low 32 bits
}
bool as_bool(const WireReader& r, const WireField& f) { return as_int32(r, f) != 0; }
std::string as_string(const WireReader& r, const WireField& f) {
  r.expect(f, WireType::kLen);
  return std::string(f.bytes);
}
float as_float(const WireReader& r, const WireField& f) {
  r.expect(f, WireType::kFixed32);
  return wire::as_float(f);
}

Piece parse_piece(std::string_view bytes, size_t base) {
  Piece p;
  WireReader r(bytes, base, kWhat);
  while (!r.done()) {
    const WireField f = r.next();
    switch (f.number) {
      case 1: p.text = as_string(r, f); break;
      case 2: p.score = as_float(r, f); break;
      case 3: {
        const int32_t type = as_int32(r, f);
        if (type < 1 || type > 6) r.fail(f.offset, "unknown piece type " + std::to_string(type));
        p.type = static_cast<PieceType>(type);
        break;
      }
      default: break;
    }
  }
  return p;
}

SpmTrainerSpec parse_trainer_spec(std::string_view bytes, size_t base) {
  SpmTrainerSpec t = spm_proto_default_trainer_spec();
  WireReader r(bytes, base, kWhat);
  while (!r.done()) {
    const WireField f = r.next();
    switch (f.number) {
      case 1: t.input.push_back(as_string(r, f)); break;
      case 2: t.model_prefix = as_string(r, f); break;
      case 3: t.model_type = as_int32(r, f); break;
      case 4: t.vocab_size = as_int32(r, f); break;
      case 7: t.input_format = as_string(r, f); break;
      case 10: t.character_coverage = as_float(r, f); break;
      case 11: r.expect(f, WireType::kVarint); t.input_sentence_size = f.varint; break;
      case 14: t.seed_sentencepiece_size = as_int32(r, f); break;
      case 15: t.shrinking_factor = as_float(r, f); break;
      case 16: t.num_threads = as_int32(r, f); break;
      case 17: t.num_sub_iterations = as_int32(r, f); break;
      case 18: t.max_sentence_length = as_int32(r, f); break;
      case 19: t.shuffle_input_sentence = as_bool(r, f); break;
      case 20: t.max_sentencepiece_length = as_int32(r, f); break;
      case 21: t.split_by_unicode_script = as_bool(r, f); break;
      case 22: t.split_by_whitespace = as_bool(r, f); break;
      case 23: t.split_by_number = as_bool(r, f); break;
      case 24: t.treat_whitespace_as_suffix = as_bool(r, f); break;
      case 25: t.split_digits = as_bool(r, f); break;
      case 26: t.allow_whitespace_only_pieces = as_bool(r, f); break;
      case 30: t.control_symbols.push_back(as_string(r, f)); break;
      case 31: t.user_defined_symbols.push_back(as_string(r, f)); break;
      case 32: t.vocabulary_output_piece_score = as_bool(r, f); break;
      case 33: t.hard_vocab_limit = as_bool(r, f); break;
      case 34: t.use_all_vocab = as_bool(r, f); break;
      case 35: t.byte_fallback = as_bool(r, f); break;
      case 36: t.required_chars = as_string(r, f); break;
      case 40: t.unk_id = as_int32(r, f); break;
      case 41: t.bos_id = as_int32(r, f); break;
      case 42: t.eos_id = as_int32(r, f); break;
      case 43: t.pad_id = as_int32(r, f); break;
      case 44: t.unk_surface = as_string(r, f); break;
      case 45: t.unk_piece = as_string(r, f); break;
      case 46: t.bos_piece = as_string(r, f); break;
      case 47: t.eos_piece = as_string(r, f); break;
      case 48: t.pad_piece = as_string(r, f); break;
      case 49: t.train_extremely_large_corpus = as_bool(r, f); break;
      default: break;
    }
  }
  return t;
}

SpmNormalizerSpec parse_normalizer_spec(std::string_view bytes, size_t base) {
  SpmNormalizerSpec n;
  WireReader r(bytes, base, kWhat);
  while (!r.done()) {
    const WireField f = r.next();
    switch (f.number) {
      case 1: n.name = as_string(r, f); break;
      case 2: n.precompiled_charsmap = as_string(r, f); break;
      case 3: n.add_dummy_prefix = as_bool(r, f); break;
      case 4: n.remove_extra_whitespaces = as_bool(r, f); break;
      case 5: n.escape_whitespaces = as_bool(r, f); break;
      case 6: n.normalization_rule_tsv = as_string(r, f); break;
      default: break;
    }
  }
  return n;
}

}  // namespace

std::string write_spm_model(const Vocab& v, const SpmTrainerSpec& t) {
  if (v.pieces.empty()) throw TokenizerError("spm model: vocab has no pieces");
  if (t.vocab_size != static_cast<int32_t>(v.pieces.size()))
    throw TokenizerError("spm model: trainer_spec.vocab_size " + std::to_string(t.vocab_size) + " != " +
                         std::to_string(v.pieces.size()) + " pieces");
  if (t.byte_fallback != v.byte_fallback) throw TokenizerError("spm model: trainer_spec.byte_fallback differs from the vocab's");
  if (t.unk_id != v.unk_id || t.bos_id != v.bos_id || t.eos_id != v.eos_id || t.pad_id != v.pad_id)
    throw TokenizerError("spm model: trainer_spec unk/bos/eos/pad ids differ from the vocab's");
  std::string out;
  for (const Piece& p : v.pieces) wire::put_bytes(out, 1, write_piece(p));
  wire::put_bytes(out, 2, write_trainer_spec(t));
  wire::put_bytes(out, 3, write_normalizer_spec(v.normalizer));
  return out;
}

SpmModel parse_spm_model(std::string_view bytes) {
  SpmModel model;
  WireReader r(bytes, 0, kWhat);
  while (!r.done()) {
    const WireField f = r.next();
    if (f.number >= 1 && f.number <= 3) r.expect(f, WireType::kLen);
    switch (f.number) {
      case 1: model.pieces.push_back(parse_piece(f.bytes, r.payload_base(f))); break;
      case 2:
        model.trainer = parse_trainer_spec(f.bytes, r.payload_base(f));
        model.has_trainer_spec = true;
        break;
      case 3:
        model.normalizer = parse_normalizer_spec(f.bytes, r.payload_base(f));
        model.has_normalizer_spec = true;
        break;
      default: break;  // self_test_data, denormalizer_spec, extensions
    }
  }
  if (!model.has_trainer_spec) model.trainer = spm_proto_default_trainer_spec();
  return model;
}

}  // namespace ssiat::tokenizer
