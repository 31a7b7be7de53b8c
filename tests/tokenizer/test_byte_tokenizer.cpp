// Byte tokenizer: id b is byte b, 256/257 are <bos>/<eos>, decode(encode(s)) == s byte for
// byte (including NUL, invalid UTF-8 fragments and every byte value), special ids dropped.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/check.h"
#include "tokenizer/tokenizer.h"

using ssiat::tokenizer::make_byte_tokenizer;

TEST(ByteTokenizer, Constants) {
  const auto tok = make_byte_tokenizer();
  EXPECT_EQ(tok->vocab_size(), 258);
  EXPECT_EQ(tok->bos_id(), 256);
  EXPECT_EQ(tok->eos_id(), 257);
  EXPECT_EQ(tok->name(), "byte");
  // SHA-256 of {"bos_id":256,"eos_id":257,"type":"byte","version":1,"vocab_size":258} by Python's
  // hashlib; tests/core/test_data.cpp recomputes it with OpenSSL.
  EXPECT_EQ(tok->digest(), "9a6b6f1166d8469025aac98f95b61328daf67e31dfa864f0de3c8d838d7d3dc4");
}

TEST(ByteTokenizer, EncodeIsTheUtf8Bytes) {
  const auto tok = make_byte_tokenizer();
  // "씨앗" is U+C528 U+C557: EC 94 A8, EC 95 97 (UTF-8 by hand from the code points).
  const std::vector<int32_t> expect = {0x61, 0xEC, 0x94, 0xA8, 0xEC, 0x95, 0x97, 0x0A};
  EXPECT_EQ(tok->encode("a\xEC\x94\xA8\xEC\x95\x97\n"), expect);
  EXPECT_TRUE(tok->encode("").empty());
}

TEST(ByteTokenizer, RoundTripEveryByte) {
  const auto tok = make_byte_tokenizer();
  std::string all;
  for (int b = 0; b < 256; b++) all.push_back(static_cast<char>(b));
  all += all;  // NUL and high bytes in the middle
  const auto ids = tok->encode(all);
  ASSERT_EQ(ids.size(), all.size());
  for (size_t i = 0; i < ids.size(); i++) {
    EXPECT_GE(ids[i], 0);
    EXPECT_LT(ids[i], 256);
  }
  EXPECT_EQ(tok->decode(ids), all);
}

TEST(ByteTokenizer, DecodeDropsSpecialsAndRejectsOutOfRange) {
  const auto tok = make_byte_tokenizer();
  const std::vector<int32_t> ids = {256, 'h', 'i', 257, '!', 257};
  EXPECT_EQ(tok->decode(ids), "hi!");
  const std::vector<int32_t> bad = {'a', 258};
  EXPECT_THROW(tok->decode(bad), ssiat::Error);
  const std::vector<int32_t> neg = {-1};
  EXPECT_THROW(tok->decode(neg), ssiat::Error);
}
