// Philox4x32-10 (Salmon et al., SC'11; constants and round function as in Random123 philox.h,
// specified in docs/init.md section 2). Pure function: no state, no globals.
#include "core/philox.h"

namespace ssiat {

namespace {


// (c0, c1, c2, c3) <- (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))
inline PhiloxCounter philox_round(const PhiloxCounter& c, uint32_t k0, uint32_t k1) {
  const uint64_t p0 = uint64_t{kPhiloxM0} * c[0];
  const uint64_t p1 = uint64_t{kPhiloxM1} * c[2];
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  return {hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0};
}

}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter ctr, PhiloxKey key) {
  uint32_t k0 = key.k0, k1 = key.k1;
  for (int r = 0; r < kPhiloxRounds; r++) {
    if (r > 0) {  // key bump before rounds 2..10
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    ctr = philox_round(ctr, k0, k1);
  }
  return ctr;
}

}  // namespace ssiat
