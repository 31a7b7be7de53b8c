// The one seed registry (DESIGN invariant 3): every random stream of a run is derived by name
// from the master seed here, and recorded; nothing else draws random numbers.
//
// KDF (docs/init.md): key(name) = first 8 bytes of SHA-256("ssiat/kdf/v1" || 0x00 ||
// u64le(master_seed) || name), read as two little-endian u32 (k0, k1). Stream names are
// "init/<tensor name>", "data/order", ...
//
// The seed log `seeds.jsonl` holds one JSON object per line:
//   {"type":"master","seed":N,"source":"recipe"|"os","kdf":"ssiat/kdf/v1","rng":"philox4x32-10"}
//   {"type":"stream","name":S,"key":"k0k1 as 16 hex digits"}
//   {"type":"tensor","name":S,"shape":[..],"dtype":"float32","init":{..},"stream":S,"sha256":H}
//   {"type":"tokenizer", ...} and other records added by components.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/philox.h"

namespace ssiat {

enum class SeedSource { kRecipe, kOs };

class SeedRegistry {
 public:
  SeedRegistry(uint64_t master_seed, SeedSource source);
  // The master seed from the recipe if given, else 8 bytes from the OS CSPRNG (getrandom).
  static SeedRegistry from_optional(const std::optional<uint64_t>& recipe_seed);

  uint64_t master_seed() const { return master_seed_; }
  SeedSource source() const { return source_; }

  // Derives (and records, once per name) the Philox key of the named stream.
  PhiloxKey stream_key(const std::string& name);
  // Pure KDF, no recording: what stream_key returns for this seed and name.
  static PhiloxKey derive_key(uint64_t master_seed, const std::string& name);

  // Adds a record to the log (e.g. a tensor's init spec and initial SHA-256).
  void record(nlohmann::json rec);
  // All records: master first, then streams and other records in the order they were made.
  std::vector<nlohmann::json> log() const;
  // Writes seeds.jsonl atomically (one object per line).
  void write(const std::filesystem::path& path) const;

 private:
  uint64_t master_seed_;
  SeedSource source_;
  std::vector<nlohmann::json> records_;
  std::vector<std::string> stream_names_;
};

std::string key_hex(PhiloxKey key);  // 16 lowercase hex digits: k0 then k1, each big-endian

}  // namespace ssiat
