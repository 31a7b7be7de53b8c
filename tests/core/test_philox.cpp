// Philox4x32-10 against the published Random123 known-answer vectors.
//
// Source: the Random123 distribution (D. E. Shaw Research), file tests/kat_vectors, the three
// "philox4x32 10" lines (columns: counter[4], key[2], expected output[4], hex u32):
//   philox4x32 10 00000000 00000000 00000000 00000000 00000000 00000000   6627e8d5 e169c58d bc57ac4c 9b00dbd8
//   philox4x32 10 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff   408f276d 41c83b0e a20bc7c6 6d5451fd
//   philox4x32 10 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0   d16cfe09 94fdcceb 5001e420 24126ea1
#include <gtest/gtest.h>

#include <set>

#include "core/philox.h"

namespace ssiat {
namespace {

struct Kat {
  PhiloxCounter ctr;
  PhiloxKey key;
  PhiloxCounter want;
};

TEST(Philox, Random123KnownAnswers) {
  const Kat kats[] = {
      {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u},
       {0x00000000u, 0x00000000u},
       {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const PhiloxCounter got = philox4x32_10(k.ctr, k.key);
    for (int w = 0; w < 4; w++) {
      EXPECT_EQ(got[w], k.want[w]) << "word " << w << " for counter " << std::hex << k.ctr[0] << " key " << k.key.k0;
    }
  }
}

// Every counter word and both key words reach the output: flipping one bit of any of them
// changes the block (a Philox variant that dropped a word would fail this).
TEST(Philox, EveryInputWordMatters) {
  const PhiloxCounter base_ctr = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
  const PhiloxKey base_key = {0xa4093822u, 0x299f31d0u};
  const PhiloxCounter base = philox4x32_10(base_ctr, base_key);
  std::set<PhiloxCounter> seen = {base};
  for (int w = 0; w < 4; w++) {
    for (int bit : {0, 17, 31}) {
      PhiloxCounter c = base_ctr;
      c[w] ^= 1u << bit;
      EXPECT_TRUE(seen.insert(philox4x32_10(c, base_key)).second) << "counter word " << w << " bit " << bit;
    }
  }
  for (int bit : {0, 31}) {
    EXPECT_TRUE(seen.insert(philox4x32_10(base_ctr, {base_key.k0 ^ (1u << bit), base_key.k1})).second);
    EXPECT_TRUE(seen.insert(philox4x32_10(base_ctr, {base_key.k0, base_key.k1 ^ (1u << bit)})).second);
  }
}

}  // namespace
}  // namespace ssiat
