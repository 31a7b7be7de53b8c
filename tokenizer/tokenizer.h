// The tokenizer interface every tokenizer implements (byte-level now, BPE in a later issue).
//
// Contract: encode() takes valid UTF-8 (callers validate with tokenizer/utf8.h) and returns ids
// in [0, vocab_size()); decode(encode(s)) == s for the byte tokenizer. Special tokens are not
// produced by encode(); data preparation appends eos_id() after each document.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ssiat::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual std::string name() const = 0;    // "byte", "bpe"
  virtual std::string digest() const = 0;  // SHA-256 hex of the tokenizer's defining bytes
  // encode() of each document, possibly on `threads` threads (0: all cores); the default runs
  // them one after another.
  virtual std::vector<std::vector<int32_t>> encode_batch(std::span<const std::string_view> docs, int threads) const {
    (void)threads;
    std::vector<std::vector<int32_t>> out;
    out.reserve(docs.size());
    for (auto d : docs) out.push_back(encode(d));
    return out;
  }
};

// Byte-level tokenizer: id b (0..255) is the byte b; 256 = <bos>, 257 = <eos>; vocab 258.
// decode() drops special ids and may return invalid UTF-8 only if given a cut sequence.
std::unique_ptr<Tokenizer> make_byte_tokenizer();

}  // namespace ssiat::tokenizer
