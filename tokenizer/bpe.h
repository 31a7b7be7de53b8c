// BPE tokenizer with SentencePiece's encoding semantics (bpe_model.cc, v0.1.97):
//   normalise (tokenizer/normalizer.h); split into characters, user-defined symbols matched
//   longest first and frozen; repeatedly merge the adjacent pair whose joined text is a piece
//   (normal, user-defined or unused) with the best score, leftmost on ties; a remaining symbol
//   that is not a piece becomes its UTF-8 bytes as <0xXX> pieces (byte fallback) or <unk>.
// Speed: the merge runs per pre-token (tokenizer/pretokenizer.h explains why that equals
// running it on the whole text for vocabularies our trainer makes; a loaded vocabulary with a
// piece that spans a pre-token boundary is encoded whole instead). Pre-tokens of up to
// kLinearMax symbols use a linear scan, longer ones a heap (O(n log n)). Frequent pre-tokens are
// cached per thread. encode_batch() splits documents over threads.
//
// decode(encode(x)) == Normalizer::normalize(x) for every valid UTF-8 x (tests check it).
//
// Files in a tokenizer directory, one set (save/load):
//   tokenizer.ssiat.json  our format: {"format":"ssiat-bpe/v1","normalizer":{..},"pretokenizer":{..},
//                         "byte_fallback","special":{"unk_id","bos_id","eos_id","pad_id"},
//                         "pieces":[[text,score,type],..],"provenance":{..},
//                         "files":{"tokenizer.model":sha256,"tokenizer.json":sha256},"digest":hex}
//   tokenizer.model       SentencePiece ModelProto (tokenizer/spm_model.h)
//   tokenizer.json        Hugging Face tokenizers (tokenizer/hf_json.h)
//   seeds.jsonl           (optional) the trainer's seed log, written with the set
// Digest (the tokenizer's identity in data manifests and provenance): SHA-256 of the canonical
// JSON (sorted keys, no spaces) of tokenizer.ssiat.json without its "digest" field; it covers the
// encoding, the provenance and, through "files", the bytes of the two other files. load()
// verifies both SHA-256s and the digest, so a set mixed from two saves is refused naming the file.
// save() publishes the set atomically (tokenizer/file_io.h): a crash never leaves a new
// tokenizer.ssiat.json beside an old tokenizer.model.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/file_io.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace ssiat::tokenizer {

class BpeTokenizer final : public Tokenizer {
 public:
  static constexpr size_t kLinearMax = 48;

  explicit BpeTokenizer(Vocab v, nlohmann::json provenance = nlohmann::json::object());
  // Reads and verifies the set in DIR; TokenizerError names the file and what is wrong.
  static std::unique_ptr<BpeTokenizer> load(const std::filesystem::path& dir);
  // Publishes the three files, plus extra (name, bytes) files such as seeds.jsonl, as one set in
  // dir (tokenizer/file_io.h). kRefuse: dir must not exist or be empty; kReplace: an existing
  // dir holding only tokenizer files (kFileNames) is swapped for the new set.
  void save(const std::filesystem::path& dir, Overwrite mode = Overwrite::kRefuse,
            const std::vector<std::pair<std::string, std::string>>& extra = {}) const;
  // The files of the set: (name, bytes) of tokenizer.ssiat.json, tokenizer.model, tokenizer.json.
  std::vector<std::pair<std::string, std::string>> files() const;
  // Every name a tokenizer directory may hold (the set and seeds.jsonl).
  static const std::vector<std::string>& file_names();

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(vocab_.pieces.size()); }
  int32_t bos_id() const override { return vocab_.bos_id; }
  int32_t eos_id() const override { return vocab_.eos_id; }
  std::string name() const override { return "bpe"; }
  std::string digest() const override;  // computed on first use (renders the set)

  // Encodes documents on `threads` threads (0: hardware concurrency); same ids as encode().
  std::vector<std::vector<int32_t>> encode_batch(std::span<const std::string_view> docs, int threads) const override;
  // The SentencePiece-semantics merge on normalised text, without pre-tokenisation or cache
  // (the reference path; tests compare it with encode()).
  std::vector<int32_t> encode_whole(std::string_view normalized) const;

  const Vocab& vocab() const { return vocab_; }
  const Normalizer& normalizer() const { return norm_; }
  const nlohmann::json& provenance() const { return provenance_; }
  bool pretokenized() const { return pretokenized_; }
  int32_t piece_id(std::string_view piece) const;  // -1 if absent (any type)
  nlohmann::json to_json() const;                  // the tokenizer.ssiat.json document

 private:
  struct Entry {
    int32_t id;
    float score;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Open-addressing map (left id, right id) -> (joined id, score): one entry for every split of
  // a mergeable piece into two mergeable pieces. Merging by this table is SentencePiece's rule
  // (join is a piece) because every character of a mergeable piece is itself one (checked).
  struct PairTable {
    std::vector<uint64_t> keys;  // ~0: empty
    std::vector<Entry> vals;
    uint64_t mask = 0;
    void build(const std::vector<std::pair<uint64_t, Entry>>& items);
    const Entry* find(int32_t l, int32_t r) const;
  };
  int32_t char_piece(char32_t c) const;  // id of the one-character piece, or -1
  void encode_normalized(std::string_view s, std::vector<int32_t>& out) const;
  void bpe(std::string_view s, std::vector<int32_t>& out) const;  // one unit
  void emit(std::string_view piece, std::vector<int32_t>& out) const;

  Vocab vocab_;
  nlohmann::json provenance_;
  SymbolMatcher user_defined_;  // frozen symbols, matched before normalisation and merging
  Normalizer norm_;
  PreTokenizer pre_;
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> all_;      // every piece
  PairTable pairs_;
  std::vector<int32_t> bmp_char_;                 // BMP code point -> piece id (-1: none)
  std::unordered_map<char32_t, int32_t> astral_;  // other one-character pieces
  int32_t byte_base_ = -1;  // id of <0x00>
  bool pretokenized_ = true;
  mutable std::once_flag digest_once_;
  mutable std::string digest_;
  uint64_t instance_ = 0;  // distinguishes caches of different tokenizers
};

nlohmann::json vocab_definition_json(const Vocab& v);  // what defines the encoding
std::string vocab_digest(const Vocab& v);               // SHA-256 of its canonical JSON (not the set digest)

}  // namespace ssiat::tokenizer
