// Byte-level tokenizer (tokenizer/tokenizer.h): id b in 0..255 is the byte b, 256 is <bos>,
// 257 is <eos>; vocabulary 258. encode() maps each byte of the text to its id, decode() maps
// ids 0..255 back to bytes and drops the special ids, so decode(encode(s)) == s for every s.
//
// Digest: SHA-256 of the tokenizer's defining bytes, the canonical JSON
//   {"bos_id":256,"eos_id":257,"type":"byte","version":1,"vocab_size":258}
// (keys sorted, no whitespace). tokenizer/ has no SHA-256 of its own (it may not use core/),
// so the hex digest is a constant computed with Python's hashlib; tests/core/test_data.cpp
// recomputes it with core/hash.h.
#include <string>

#include "kernels/check.h"
#include "tokenizer/tokenizer.h"

namespace ssiat::tokenizer {
namespace {

constexpr int32_t kByteVocab = 258;
constexpr int32_t kBosId = 256;
constexpr int32_t kEosId = 257;
constexpr const char* kByteDigest = "9a6b6f1166d8469025aac98f95b61328daf67e31dfa864f0de3c8d838d7d3dc4";

class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids(text.size());
    for (size_t i = 0; i < text.size(); i++) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    out.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); i++) {
      const int32_t id = ids[i];
      SSIAT_CHECK(id >= 0 && id < kByteVocab) << "byte tokenizer: id " << id << " at position " << i
                                              << " is outside [0, " << kByteVocab << ")";
      if (id < 256) out.push_back(static_cast<char>(id));
    }
    return out;
  }

  int32_t vocab_size() const override { return kByteVocab; }
  int32_t bos_id() const override { return kBosId; }
  int32_t eos_id() const override { return kEosId; }
  std::string name() const override { return "byte"; }
  std::string digest() const override { return kByteDigest; }
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

}  // namespace ssiat::tokenizer
