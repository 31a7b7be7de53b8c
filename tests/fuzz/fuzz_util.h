// Shared by the libFuzzer targets of core/ (fuzz_recipe, fuzz_checkpoint): report a violated
// property with the input printed printable-ASCII-or-\xNN, then abort so libFuzzer keeps the input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace ssiat::fuzz {

inline std::string escaped(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

[[noreturn]] inline void fail(const char* target, const char* property, std::string_view input,
                              const std::string& detail) {
  std::fprintf(stderr, "%s: property %s violated: %s\ninput: \"%s\"\n", target, property, detail.c_str(),
               escaped(input).c_str());
  std::abort();
}

}  // namespace ssiat::fuzz
