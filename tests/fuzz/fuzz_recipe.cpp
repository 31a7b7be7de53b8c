// libFuzzer target for the recipe loader (core/recipe.h): parse_recipe, the same code that
// load_recipe runs on a file's bytes, and first_recipe_difference.
//
// Input: the recipe bytes, optionally followed by a NUL byte and up to 8 `--set` overrides,
// one per line ("section.key=value").
// Properties checked for every input (each stated in core/recipe.h):
//   R1 parse_recipe either returns or throws ssiat::Error (ConfigError); any other exception
//      escapes and libFuzzer reports it as a crash
//   R2 every error message is one line
//   R3 a loaded recipe's canonical text (recipe_to_toml) loads again to the same configuration
//      and is a fixed point of load + recipe_to_toml
//   R4 first_recipe_difference(canonical, canonical) finds nothing; on the raw input against a
//      canonical text it returns or throws ssiat::Error only (one line)
// A violation prints the property and the input (escaped) to stderr, then aborts.
// Build and run: tests/fuzz/run_fuzz.sh SECONDS BUILD_DIR recipe.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/recipe.h"

#include "tests/fuzz/fuzz_util.h"

namespace {

using ssiat::fuzz::escaped;

[[noreturn]] void fail(const char* property, std::string_view input, const std::string& detail) {
  ssiat::fuzz::fail("fuzz_recipe", property, input, detail);
}

void check_one_line(const ssiat::Error& e, std::string_view input) {
  const std::string_view msg = e.what();
  if (msg.empty() || msg.find('\n') != std::string_view::npos || msg.find('\r') != std::string_view::npos)
    fail("R2 one-line error", input, "message \"" + escaped(msg) + "\"");
}

bool same_config(const ssiat::Recipe& a, const ssiat::Recipe& b) {
  return a.seed == b.seed && a.model == b.model && a.tokenizer == b.tokenizer && a.data == b.data &&
         a.train == b.train && a.optim == b.optim && a.schedule == b.schedule && a.checkpoint == b.checkpoint &&
         a.parallel == b.parallel;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string text(input.substr(0, nul));
  std::vector<std::string> overrides;
  if (nul != std::string_view::npos) {
    std::string_view rest = input.substr(nul + 1);
    while (!rest.empty() && overrides.size() < 8) {
      const size_t nl = rest.find('\n');
      overrides.emplace_back(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
  }

  std::string canon;
  try {
    const ssiat::Recipe r = ssiat::parse_recipe(text, "fuzz.toml", overrides);
    canon = ssiat::recipe_to_toml(r);
    ssiat::Recipe again;
    try {
      again = ssiat::parse_recipe(canon, "canon.toml");
    } catch (const ssiat::Error& e) {
      fail("R3 canonical text loads", input, std::string("threw: ") + e.what() + "; canonical: " + escaped(canon));
    }
    if (!same_config(r, again)) fail("R3 same configuration", input, "canonical: " + escaped(canon));
    if (ssiat::recipe_to_toml(again) != canon) fail("R3 fixed point", input, "canonical: " + escaped(canon));
    if (const auto d = ssiat::first_recipe_difference(canon, canon))
      fail("R4 no difference with itself", input, "key " + d->key);
  } catch (const ssiat::Error& e) {
    check_one_line(e, input);
  }
  // Arbitrary text against a valid canonical recipe: a difference or a typed error, nothing else.
  try {
    (void)ssiat::first_recipe_difference(text, canon.empty() ? std::string_view("seed = 1\n") : canon);
  } catch (const ssiat::Error& e) {
    check_one_line(e, input);
  }
  return 0;
}
