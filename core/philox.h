// Philox4x32-10 counter-based generator (Salmon, Moraes, Dror & Shaw, "Parallel random numbers:
// as easy as 1, 2, 3", SC'11). A pure function of a 128-bit counter and a 64-bit key; any
// element of any stream is computed directly, so a shard draws exactly its own slice.
#pragma once

#include <array>
#include <cstdint>

namespace ssiat {

struct PhiloxKey {
  uint32_t k0 = 0, k1 = 0;
  bool operator==(const PhiloxKey&) const = default;
};

using PhiloxCounter = std::array<uint32_t, 4>;

// Ten rounds with M0=0xD2511F53, M1=0xCD9E8D57, W0=0x9E3779B9, W1=0xBB67AE85 (Random123).
PhiloxCounter philox4x32_10(PhiloxCounter ctr, PhiloxKey key);

inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
inline constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;
inline constexpr int kPhiloxRounds = 10;

}  // namespace ssiat
