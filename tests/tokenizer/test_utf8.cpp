// find_invalid_utf8 (RFC 3629): valid sequences at every boundary of the well-formed table,
// and overlong, surrogate, truncated, > U+10FFFF and stray-continuation cases with the exact
// offset. Expected offsets are UnicodeDecodeError.start from CPython 3.11's strict decoder; a
// second oracle, utf8proc_iterate (libutf8proc), is run over every 1-, 2-, 3- and 4-byte prefix
// family and over pseudo-random byte strings.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdint>
#include <optional>
#include <string>

#include "tokenizer/utf8.h"

using ssiat::tokenizer::find_invalid_utf8;

namespace {

struct Case {
  std::string bytes;
  std::optional<size_t> expect;  // from Python: bytes.decode("utf-8") -> UnicodeDecodeError.start
};

// Reference validator through utf8proc_iterate (which rejects overlongs, surrogates and values
// above U+10FFFF); returns the offset of the first sequence it refuses.
std::optional<size_t> utf8proc_first_invalid(const std::string& s) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp;
    const utf8proc_ssize_t n = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (n <= 0) return i;
    i += static_cast<size_t>(n);
  }
  return std::nullopt;
}

}  // namespace

TEST(Utf8, KnownCasesMatchPythonDecoder) {
  const Case cases[] = {
      {"", std::nullopt},
      {"hello", std::nullopt},
      {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xed\x85\x8d\xec\x8a\xa4\xed\x8a\xb8", std::nullopt},  // 한국어 텍스트
      {"\x7f", std::nullopt},
      {"\xc2\x80", std::nullopt},              // U+0080, smallest 2-byte
      {"\xdf\xbf", std::nullopt},              // U+07FF
      {"\xe0\xa0\x80", std::nullopt},          // U+0800, smallest 3-byte
      {"\xed\x9f\xbf", std::nullopt},          // U+D7FF, just below the surrogates
      {"\xee\x80\x80", std::nullopt},          // U+E000, just above
      {"\xef\xbf\xbf", std::nullopt},          // U+FFFF
      {"\xf0\x90\x80\x80", std::nullopt},      // U+10000
      {"\xf4\x8f\xbf\xbf", std::nullopt},      // U+10FFFF
      {"ab\x80", 2},                           // stray continuation
      {"\xc0\xaf", 0},                         // overlong '/'
      {"\xc1\xbf", 0},                         // overlong
      {"x\xe0\x80\xaf", 1},                    // overlong 3-byte '/'
      {"\xe0\x9f\xbf", 0},                     // overlong U+07FF
      {"\xf0\x8f\xbf\xbf", 0},                 // overlong U+FFFF
      {"\xed\xa0\x80", 0},                     // surrogate U+D800
      {"\xed\xbf\xbf", 0},                     // surrogate U+DFFF
      {"\xf4\x90\x80\x80", 0},                 // U+110000
      {"\xf5\x80\x80\x80", 0},                 // lead beyond F4
      {"\xff", 0},
      {"\xfe", 0},
      {"\xea\xb0\x80\xeb\x82\x98\xea\xb0", 6},  // 가나 + truncated 3-byte
      {"abc\xf0\x9f\x98", 3},                  // truncated 4-byte emoji
      {"\xc2", 0},                             // truncated 2-byte
      {"\xc2" "A", 0},                         // continuation missing
      {"\xe2\x82(", 0},
      {"\xc3\xa9\xf8\x88\x80\x80\x80", 2},     // 5-byte form (pre-RFC 3629)
      {"12345678\xe2\x82\xac" "9012345\xe2", 18},  // crosses the 8-byte ASCII fast path
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(testing::PrintToString(c.bytes));
    EXPECT_EQ(find_invalid_utf8(c.bytes), c.expect);
    EXPECT_EQ(utf8proc_first_invalid(c.bytes), c.expect);  // the oracles agree with each other
  }
}

TEST(Utf8, ExhaustiveShortSequencesMatchUtf8proc) {
  // Every 1- and 2-byte string, and every 3- and 4-byte string whose first two bytes vary over all
  // values (tail bytes from a set that crosses every range edge).
  for (int a = 0; a < 256; a++) {
    std::string s1(1, static_cast<char>(a));
    ASSERT_EQ(find_invalid_utf8(s1), utf8proc_first_invalid(s1)) << a;
    for (int b = 0; b < 256; b++) {
      std::string s2 = s1 + static_cast<char>(b);
      ASSERT_EQ(find_invalid_utf8(s2), utf8proc_first_invalid(s2)) << a << " " << b;
      for (int c : {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xe0, 0xff}) {
        std::string s3 = s2 + static_cast<char>(c);
        ASSERT_EQ(find_invalid_utf8(s3), utf8proc_first_invalid(s3));
        for (int d : {0x41, 0x80, 0xbf, 0xc0}) {
          std::string s4 = s3 + static_cast<char>(d);
          ASSERT_EQ(find_invalid_utf8(s4), utf8proc_first_invalid(s4));
        }
      }
    }
  }
}

TEST(Utf8, PseudoRandomStringsMatchUtf8proc) {
  // SplitMix64 (Steele, Lea & Flood 2014) with a fixed seed; biased towards bytes >= 0x80 and
  // valid-looking sequences so that invalid offsets land anywhere in the string.
  uint64_t state = 0x5eed;
  auto next = [&state] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  const uint8_t pool[] = {0x41, 0x20, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc2, 0xdf, 0xe0,
                          0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xc0, 0xff};
  int invalid = 0;
  for (int iter = 0; iter < 20000; iter++) {
    const size_t len = next() % 24;
    std::string s;
    for (size_t i = 0; i < len; i++) {
      const uint64_t r = next();
      s.push_back(static_cast<char>((r & 1) ? 0x80 + (r >> 8) % 64 : pool[(r >> 8) % sizeof(pool)]));
    }
    const auto got = find_invalid_utf8(s);
    ASSERT_EQ(got, utf8proc_first_invalid(s)) << testing::PrintToString(s);
    invalid += got.has_value();
  }
  EXPECT_GT(invalid, 1000);  // the generator does exercise the error paths
  EXPECT_LT(invalid, 20000);
}
