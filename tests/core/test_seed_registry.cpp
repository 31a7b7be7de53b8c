// Seed registry: the KDF of docs/init.md section 1, stream recording, seeds.jsonl contents, the
// OS fallback, and a scan of the sources for forbidden random sources (DESIGN invariant 3).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "core/error.h"
#include "core/hash.h"
#include "core/seed_registry.h"

namespace ssiat {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("ssiat_rng_" + tag + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The KDF message spelled out byte by byte (docs/init.md section 1), hashed through the hex API.
TEST(SeedRegistry, KeyIsLittleEndianPrefixOfDocumentedDigest) {
  const uint64_t seed = 0x0102030405060708ull;
  const std::string name = "init/model.embed_tokens.weight";
  std::string msg = "ssiat/kdf/v1";
  msg.push_back('\0');
  const char seed_le[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
  msg.append(seed_le, 8);
  msg += name;
  ASSERT_EQ(msg.size(), 12u + 1u + 8u + name.size());
  const std::string hex = sha256_hex(msg);
  const PhiloxKey k = SeedRegistry::derive_key(seed, name);
  auto byte = [&](int i) { return static_cast<uint32_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16)); };
  EXPECT_EQ(k.k0, byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24);
  EXPECT_EQ(k.k1, byte(4) | byte(5) << 8 | byte(6) << 16 | byte(7) << 24);
}

TEST(SeedRegistry, DifferentNamesAndSeedsGiveDifferentKeys) {
  std::set<std::string> keys;
  int n = 0;
  for (uint64_t seed : {uint64_t{0}, uint64_t{1}, uint64_t{1} << 32, ~uint64_t{0}}) {
    for (const char* name : {"init/a", "init/b", "init/model.layers.0.self_attn.q_proj.weight",
                             "init/model.layers.1.self_attn.q_proj.weight", "data/order", "init/a "}) {
      keys.insert(key_hex(SeedRegistry::derive_key(seed, name)));
      n++;
    }
  }
  EXPECT_EQ(keys.size(), static_cast<size_t>(n));
  EXPECT_EQ(SeedRegistry::derive_key(5, "init/a"), SeedRegistry::derive_key(5, "init/a"));
}

TEST(SeedRegistry, KeyHexIsK0ThenK1BigEndian) {
  EXPECT_EQ(key_hex({0x01234567u, 0x89abcdefu}), "0123456789abcdef");
  EXPECT_EQ(key_hex({0, 0xfu}), "000000000000000f");
  EXPECT_EQ(key_hex({0xffffffffu, 0}), "ffffffff00000000");
}

TEST(SeedRegistry, RecordsMasterStreamsOnceAndExtraRecordsInOrder) {
  SeedRegistry reg(42, SeedSource::kRecipe);
  const PhiloxKey a = reg.stream_key("init/a");
  EXPECT_EQ(reg.stream_key("init/a"), a);  // second call: same key, not recorded again
  const PhiloxKey d = reg.stream_key("data/order");
  EXPECT_EQ(a, SeedRegistry::derive_key(42, "init/a"));
  reg.record({{"type", "tensor"}, {"name", "a"}, {"shape", {2, 3}}, {"dtype", "float32"}, {"stream", "init/a"}});
  reg.stream_key("init/a");
  const auto log = reg.log();
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0]["type"], "master");
  EXPECT_EQ(log[1], (nlohmann::json{{"type", "stream"}, {"name", "init/a"}, {"key", key_hex(a)}}));
  EXPECT_EQ(log[2], (nlohmann::json{{"type", "stream"}, {"name", "data/order"}, {"key", key_hex(d)}}));
  EXPECT_EQ(log[3]["type"], "tensor");
  EXPECT_THROW(reg.record(nlohmann::json::array()), Error);
  EXPECT_THROW(reg.record({{"name", "no type"}}), Error);
  EXPECT_THROW(reg.stream_key(""), Error);
}

TEST(SeedRegistry, WritesSeedsJsonlThatParsesBack) {
  const fs::path dir = fresh_dir("seeds");
  const uint64_t big = 18446744073709551557ull;  // > 2^53: must survive as an integer
  SeedRegistry reg(big, SeedSource::kRecipe);
  const PhiloxKey k = reg.stream_key("init/model.norm.weight");
  reg.stream_key("data/order");
  reg.record({{"type", "tokenizer"}, {"sha256", std::string(64, 'a')}});
  reg.write(dir / "seeds.jsonl");

  const std::string text = read_all(dir / "seeds.jsonl");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], (nlohmann::json{{"type", "master"},
                                      {"seed", big},
                                      {"source", "recipe"},
                                      {"kdf", "ssiat/kdf/v1"},
                                      {"rng", "philox4x32-10"}}));
  EXPECT_EQ(lines[0]["seed"].get<uint64_t>(), big);
  EXPECT_EQ(lines[1]["type"], "stream");
  EXPECT_EQ(lines[1]["name"], "init/model.norm.weight");
  EXPECT_EQ(lines[1]["key"], key_hex(k));
  EXPECT_EQ(lines[2]["name"], "data/order");
  EXPECT_EQ(lines[3]["type"], "tokenizer");
  // Atomic write leaves only the target behind; a rewrite replaces it whole.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    files++;
    EXPECT_EQ(e.path().filename(), "seeds.jsonl");
  }
  EXPECT_EQ(files, 1);
  SeedRegistry small(1, SeedSource::kRecipe);
  small.write(dir / "seeds.jsonl");
  EXPECT_EQ(read_all(dir / "seeds.jsonl"),
            R"({"kdf":"ssiat/kdf/v1","rng":"philox4x32-10","seed":1,"source":"recipe","type":"master"})"
            "\n");
  fs::remove_all(dir);
}

TEST(SeedRegistry, FromOptionalUsesRecipeSeedElseTheOs) {
  const SeedRegistry r = SeedRegistry::from_optional(uint64_t{123});
  EXPECT_EQ(r.master_seed(), 123u);
  EXPECT_EQ(r.source(), SeedSource::kRecipe);
  const SeedRegistry a = SeedRegistry::from_optional(std::nullopt);
  const SeedRegistry b = SeedRegistry::from_optional(std::nullopt);
  EXPECT_EQ(a.source(), SeedSource::kOs);
  EXPECT_EQ(a.log()[0]["source"], "os");
  EXPECT_EQ(a.log()[0]["seed"].get<uint64_t>(), a.master_seed());
  EXPECT_NE(a.master_seed(), b.master_seed());  // 2^-63 chance of a false failure
  // OS seeds fit a recipe's signed 64-bit integer (so `--set seed=N` can replay them): 64 draws
  // with the top bit always clear (a full 64-bit draw would set it in 64 with chance 1 - 2^-64).
  for (int i = 0; i < 64; i++) EXPECT_LE(SeedRegistry::from_optional(std::nullopt).master_seed(), uint64_t{INT64_MAX});
}

// DESIGN invariant 3: nothing but the registry draws random numbers. Scans the library and tool
// sources (comments stripped) for std::random_device, rand(), srand() and friends. The
// patterns are assembled at run time so this file does not match itself.
std::string strip_comments(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 2, "//") == 0) {
      while (i < s.size() && s[i] != '\n') i++;
    } else if (s.compare(i, 2, "/*") == 0) {
      const size_t end = s.find("*/", i + 2);
      i = end == std::string::npos ? s.size() : end + 2;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

TEST(SeedRegistry, NoOtherRandomSourcesInTheSources) {
  const fs::path root = SSIAT_SOURCE_DIR;
  const std::string rd = std::string("random") + "_device";
  const std::regex forbidden("\\b(" + rd + "|s?rand|rand_r|[dlm]rand48|random|arc4random)\\s*\\(|" + rd);
  const std::set<std::string> exts = {".h", ".hpp", ".c", ".cc", ".cpp", ".cu", ".cuh"};
  int scanned = 0;
  for (const char* sub : {"core", "kernels", "distributed", "tokenizer", "tools"}) {
    if (!fs::exists(root / sub)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root / sub)) {
      if (!e.is_regular_file() || !exts.count(e.path().extension().string())) continue;
      const std::string code = strip_comments(read_all(e.path()));
      std::smatch m;
      EXPECT_FALSE(std::regex_search(code, m, forbidden)) << e.path() << ": uses " << m.str(0);
      scanned++;
    }
  }
  EXPECT_GT(scanned, 0);
}

}  // namespace
}  // namespace ssiat
