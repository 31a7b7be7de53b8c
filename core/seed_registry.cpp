// The seed registry (DESIGN invariant 3; KDF and seeds.jsonl format in docs/init.md sections 1
// and 8). Not thread-safe: one registry per run, used from the setup thread.
#include "core/seed_registry.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"

namespace ssiat {

namespace {

constexpr const char* kKdfName = "ssiat/kdf/v1";
constexpr const char* kRngName = "philox4x32-10";

const char* source_name(SeedSource s) { return s == SeedSource::kRecipe ? "recipe" : "os"; }

// 63 bits from the kernel CSPRNG (8 bytes, little-endian, top bit cleared), so a drawn seed can
// always be written back into a recipe (`seed = N`, `--set seed=N`: TOML integers are signed).
uint64_t os_random_seed() {
  uint8_t buf[8];
  size_t got = 0;
  while (got < sizeof(buf)) {
    const ssize_t n = getrandom(buf + got, sizeof(buf) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(std::string("seed registry: getrandom failed: ") + std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | buf[i];
  return v & 0x7fffffffffffffffULL;
}

}  // namespace

SeedRegistry::SeedRegistry(uint64_t master_seed, SeedSource source) : master_seed_(master_seed), source_(source) {
  records_.push_back({{"type", "master"},
                      {"seed", master_seed_},
                      {"source", source_name(source_)},
                      {"kdf", kKdfName},
                      {"rng", kRngName}});
}

SeedRegistry SeedRegistry::from_optional(const std::optional<uint64_t>& recipe_seed) {
  if (recipe_seed) return SeedRegistry(*recipe_seed, SeedSource::kRecipe);
  return SeedRegistry(os_random_seed(), SeedSource::kOs);
}

PhiloxKey SeedRegistry::derive_key(uint64_t master_seed, const std::string& name) {
  Sha256 h;
  h.update(kKdfName, std::strlen(kKdfName));
  const uint8_t zero = 0;
  h.update(&zero, 1);
  uint8_t seed_le[8];
  for (int i = 0; i < 8; i++) seed_le[i] = static_cast<uint8_t>(master_seed >> (8 * i));
  h.update(seed_le, sizeof(seed_le));
  h.update(name);
  uint8_t d[32];
  h.bytes(d);
  auto le32 = [&](int o) {
    return uint32_t{d[o]} | uint32_t{d[o + 1]} << 8 | uint32_t{d[o + 2]} << 16 | uint32_t{d[o + 3]} << 24;
  };
  return PhiloxKey{le32(0), le32(4)};
}

PhiloxKey SeedRegistry::stream_key(const std::string& name) {
  SSIAT_CHECK(!name.empty()) << "seed registry: empty stream name";
  const PhiloxKey key = derive_key(master_seed_, name);
  if (std::find(stream_names_.begin(), stream_names_.end(), name) == stream_names_.end()) {
    stream_names_.push_back(name);
    records_.push_back({{"type", "stream"}, {"name", name}, {"key", key_hex(key)}});
  }
  return key;
}

void SeedRegistry::record(nlohmann::json rec) {
  SSIAT_CHECK(rec.is_object() && rec.contains("type") && rec["type"].is_string())
      << "seed registry: a record must be a JSON object with a string \"type\", got " << rec.dump();
  SSIAT_CHECK(rec["type"] != "master") << "seed registry: the master record is written by the registry";
  records_.push_back(std::move(rec));
}

std::vector<nlohmann::json> SeedRegistry::log() const { return records_; }

void SeedRegistry::write(const std::filesystem::path& path) const {
  std::string out;
  for (const auto& r : records_) {
    out += r.dump();
    out += '\n';
  }
  write_file_atomic(path, out);
}

std::string key_hex(PhiloxKey key) {
  static const char* kHex = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 0; i < 8; i++) {
    s[i] = kHex[(key.k0 >> (28 - 4 * i)) & 15];
    s[8 + i] = kHex[(key.k1 >> (28 - 4 * i)) & 15];
  }
  return s;
}

}  // namespace ssiat
