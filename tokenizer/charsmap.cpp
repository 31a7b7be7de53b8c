// Builds and reads SentencePiece precompiled charsmaps (contract in charsmap.h).
#include "tokenizer/charsmap.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <map>
#include <numeric>


namespace ssiat::tokenizer {
namespace {

constexpr uint32_t kValueBit = 1u << 31;
constexpr uint32_t kUnusedUnit = kValueBit;  // label() includes bit 31: never equals a byte
constexpr uint32_t kHasLeafBit = 1u << 8;
constexpr uint32_t kMaxOffset = 1u << 21;    // plain (unshifted) offsets only
constexpr uint32_t kBlock = 256;

// ---- trie of the rule sources --------------------------------------------------------------

struct TrieNode {
  std::vector<std::pair<uint8_t, int>> children;  // sorted by label
  int32_t value = -1;                             // pool offset if a key ends here
};

// Trie over sorted, unique keys (children therefore come out sorted by label).
std::vector<TrieNode> build_trie(const std::vector<std::pair<std::string_view, uint32_t>>& keys) {
  std::vector<TrieNode> nodes(1);
  for (const auto& [key, value] : keys) {
    int n = 0;
    for (unsigned char c : key) {
      auto& ch = nodes[n].children;
      if (!ch.empty() && ch.back().first == c) {
        n = ch.back().second;
      } else {
        ch.emplace_back(c, static_cast<int>(nodes.size()));
        n = static_cast<int>(nodes.size());
        nodes.emplace_back();
      }
    }
    nodes[n].value = static_cast<int32_t>(value);
  }
  return nodes;
}

// ---- double array placement ----------------------------------------------------------------

class DoubleArrayBuilder {
 public:
  std::vector<uint32_t> build(const std::vector<TrieNode>& nodes) {
    grow();
    take(0);                // root
    used_base_[0] = true;   // base 0 would make a node's label-0 slot the root: a NUL byte loops back
    std::deque<std::pair<int, uint32_t>> queue{{0, 0}};
    while (!queue.empty()) {
      const auto [n, pos] = queue.front();
      queue.pop_front();
      const TrieNode& node = nodes[n];
      std::vector<uint32_t> labels;
      if (node.value >= 0) labels.push_back(0);
      for (const auto& c : node.children) labels.push_back(c.first);
      if (labels.empty()) continue;  // cannot happen: only key ends are leaves, and they have a value
      const uint32_t base = find_base(labels);
      used_base_[base] = true;
      for (uint32_t c : labels) take(base ^ c);
      const uint32_t offset = pos ^ base;
      if (offset >= kMaxOffset) throw TokenizerError("charsmap: double array too large (offset " + std::to_string(offset) + ")");
      units_[pos] = (units_[pos] & 0xFF) | (offset << 10) | (node.value >= 0 ? kHasLeafBit : 0);
      if (node.value >= 0) units_[base] = kValueBit | static_cast<uint32_t>(node.value);
      for (const auto& [c, child] : node.children) {
        units_[base ^ c] = c;  // label; offset and leaf bit written when the child is processed
        queue.emplace_back(child, base ^ c);
      }
    }
    return units_;
  }

 private:
  // First unused base b (scanning free slots for b ^ labels[0] in increasing order) such that every
  // b ^ label is free; grows the array by a block when none fits.
  uint32_t find_base(const std::vector<uint32_t>& labels) {
    for (;;) {
      for (uint32_t i = next_[0]; i != 0; i = next_[i]) {
        const uint32_t b = (i - 1) ^ labels[0];
        if (used_base_[b]) continue;
        bool fits = true;
        for (size_t k = 1; k < labels.size() && fits; ++k) fits = !used_[b ^ labels[k]];
        if (fits) return b;
      }
      grow();
    }
  }

  void grow() {
    const uint32_t old = static_cast<uint32_t>(units_.size());
    units_.resize(old + kBlock, kUnusedUnit);
    used_.resize(old + kBlock, false);
    used_base_.resize(old + kBlock, false);
    next_.resize(old + kBlock + 1);
    prev_.resize(old + kBlock + 1);
    for (uint32_t s = old; s < old + kBlock; ++s) {  // append slot s (list index s + 1) at the tail
      const uint32_t tail = prev_[0];
      next_[tail] = s + 1;
      prev_[s + 1] = tail;
      next_[s + 1] = 0;
      prev_[0] = s + 1;
    }
  }

  void take(uint32_t s) {
    used_[s] = true;
    const uint32_t i = s + 1;
    next_[prev_[i]] = next_[i];
    prev_[next_[i]] = prev_[i];
  }

  std::vector<uint32_t> units_;
  std::vector<bool> used_, used_base_;
  // Doubly linked list of free slots in increasing order: index 0 is the sentinel, slot s is s + 1.
  std::vector<uint32_t> next_{0}, prev_{0};
};

void put_u32le(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint32_t get_u32le(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(s[at + i])) << (8 * i);
  return v;
}

// ---- Unicode helpers (utf8proc) -----------------------------------------------------------

std::string utf8proc_apply(std::string_view s, int options) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()), &out,
                              static_cast<utf8proc_option_t>(options));
  if (n < 0) throw TokenizerError(std::string("charsmap: utf8proc_map failed: ") + utf8proc_errmsg(n));
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

std::string encode_cp(int32_t cp) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(cp, buf);
  return std::string(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
}

std::vector<int32_t> decode_cps(std::string_view s) {
  std::vector<int32_t> cps;
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (n <= 0) throw TokenizerError("charsmap: invalid UTF-8 from utf8proc");
    cps.push_back(cp);
    i += static_cast<size_t>(n);
  }
  return cps;
}

constexpr int kNfcOptions = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
constexpr int kNfkcOptions = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
constexpr int kNfdOptions = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;

bool keeps_hangul_compat(int32_t cp) { return (cp >= 0x3131 && cp <= 0x318E) || (cp >= 0xFFA0 && cp <= 0xFFDC); }

// Every canonically equivalent spelling of `src` (a code point with a canonical decomposition
// d0 d1..dk): d0 composed with any subset of the marks (when that composes to one code point),
// followed by the remaining marks in every order. Callers keep those whose F equals F(src).
std::vector<std::string> equivalent_spellings(const std::string& src) {
  const std::vector<int32_t> d = decode_cps(utf8proc_apply(src, kNfdOptions));
  std::vector<std::string> out;
  const size_t marks = d.size() - 1;
  if (marks == 0 || marks > 5) return out;  // singletons handled per code point; 5 marks is plenty
  for (uint32_t subset = 0; subset < (1u << marks); ++subset) {
    std::string head = encode_cp(d[0]);
    std::vector<int32_t> rest;
    for (size_t i = 0; i < marks; ++i) {
      if (subset & (1u << i)) head += encode_cp(d[i + 1]); else rest.push_back(d[i + 1]);
    }
    if (subset != 0) {
      head = utf8proc_apply(head, kNfcOptions);
      if (decode_cps(head).size() != 1) continue;
    }
    std::vector<size_t> order(rest.size());
    std::iota(order.begin(), order.end(), 0);
    do {
      std::string key = head;
      for (size_t i : order) key += encode_cp(rest[i]);
      if (key != src) out.push_back(std::move(key));
    } while (std::next_permutation(order.begin(), order.end()));
  }
  return out;
}

}  // namespace

std::string build_charsmap(const CharsmapRules& rules) {
  std::map<std::string_view, std::string_view> sorted;
  for (const auto& [src, dst] : rules) {
    if (src.empty() || src.find('\0') != std::string::npos || dst.find('\0') != std::string::npos)
      throw TokenizerError("charsmap: rule source must be non-empty and rules NUL-free (source \"" + src + "\")");
    if (!sorted.emplace(src, dst).second) throw TokenizerError("charsmap: duplicate rule source \"" + src + "\"");
  }
  // Pool: each distinct replacement once, NUL-terminated, in first-use order of sorted keys.
  std::string pool;
  std::map<std::string_view, uint32_t> pool_at;
  std::vector<std::pair<std::string_view, uint32_t>> keys;
  for (const auto& [src, dst] : sorted) {
    auto [it, fresh] = pool_at.emplace(dst, static_cast<uint32_t>(pool.size()));
    if (fresh) {
      pool.append(dst);
      pool.push_back('\0');
    }
    keys.emplace_back(src, it->second);
  }
  if (pool.empty()) pool.push_back('\0');  // SentencePiece needs a non-empty pool after the trie
  const std::vector<uint32_t> units = DoubleArrayBuilder().build(build_trie(keys));
  std::string blob;
  blob.reserve(4 + 4 * units.size() + pool.size());
  put_u32le(blob, static_cast<uint32_t>(4 * units.size()));
  for (uint32_t u : units) put_u32le(blob, u);
  blob += pool;
  return blob;
}

std::optional<std::pair<size_t, std::string_view>> charsmap_longest_match(std::string_view blob, std::string_view input) {
  if (blob.size() < 4) throw TokenizerError("charsmap: blob shorter than its 4-byte header");
  const uint32_t trie_bytes = get_u32le(blob, 0);
  if (trie_bytes % 4 != 0 || trie_bytes == 0 || trie_bytes > blob.size() - 4)
    throw TokenizerError("charsmap: trie size " + std::to_string(trie_bytes) + " at byte 0 does not fit the blob");
  const size_t num_units = trie_bytes / 4;
  const std::string_view pool = blob.substr(4 + trie_bytes);
  auto unit = [&](size_t pos) {
    if (pos >= num_units) throw TokenizerError("charsmap: unit " + std::to_string(pos) + " out of bounds (byte " + std::to_string(4 + 4 * pos) + ")");
    return get_u32le(blob, 4 + 4 * pos);
  };
  auto offset_of = [](uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); };

  std::optional<std::pair<size_t, std::string_view>> best;
  size_t pos = offset_of(unit(0));
  for (size_t i = 0; i < input.size(); ++i) {
    const uint32_t c = static_cast<uint8_t>(input[i]);
    pos ^= c;
    const uint32_t u = unit(pos);
    if ((u & (kValueBit | 0xFF)) != c) break;
    pos ^= offset_of(u);
    if (u & kHasLeafBit) {
      const size_t value = unit(pos) & ~kValueBit;
      if (value >= pool.size()) throw TokenizerError("charsmap: value " + std::to_string(value) + " past the pool (unit " + std::to_string(pos) + ")");
      const size_t end = pool.find('\0', value);
      if (end == std::string_view::npos) throw TokenizerError("charsmap: replacement at pool byte " + std::to_string(value) + " is not NUL-terminated");
      best = std::make_pair(i + 1, pool.substr(value, end - value));
    }
  }
  return best;
}

std::string charsmap_apply(std::string_view blob, std::string_view input) {
  std::string out;
  while (!input.empty()) {
    if (auto m = charsmap_longest_match(blob, input)) {
      out += m->second;
      input.remove_prefix(m->first);
      continue;
    }
    utf8proc_int32_t cp;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(input.data()), static_cast<utf8proc_ssize_t>(input.size()), &cp);
    if (n <= 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD for one invalid byte, as SentencePiece does
      input.remove_prefix(1);
    } else {
      out += input.substr(0, static_cast<size_t>(n));
      input.remove_prefix(static_cast<size_t>(n));
    }
  }
  return out;
}

CharsmapRules charsmap_rules(NormForm f, CharsmapRuleSet set) {
  if (f == NormForm::kIdentity) return {};
  const int options = f == NormForm::kNfkc ? kNfkcOptions : kNfcOptions;
  std::map<std::string, std::string> rules;
  for (int32_t cp = 1; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    if (f == NormForm::kNfkc && keeps_hangul_compat(cp)) continue;
    const std::string src = encode_cp(cp);
    const std::string target = utf8proc_apply(src, options);
    if (target != src) rules[src] = target;
    if (set != CharsmapRuleSet::kFull || utf8proc_apply(src, kNfdOptions) == src) continue;
    for (std::string& key : equivalent_spellings(src)) {
      if (utf8proc_apply(key, options) == target) rules.emplace(std::move(key), target);
    }
  }
  rules.insert_or_assign(std::string("\xE2\x96\x81"), std::string(1, ' '));  // ▁ -> space
  return CharsmapRules(rules.begin(), rules.end());
}

}  // namespace ssiat::tokenizer
