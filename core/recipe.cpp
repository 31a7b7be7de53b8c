// Recipe loading (core/recipe.h; keys, defaults and ranges in docs/recipes.md).
//
// Pipeline of load_recipe(): read the file verbatim -> parse it with toml++ (TOML v1.0.0) ->
// walk the tree, rejecting unknown sections/keys, and flatten it into "section.key" -> (node,
// origin) -> apply each --set override as another (node, origin) -> convert every known key,
// type-checked, into the config structs -> Recipe::validate(). Every error is one ConfigError
// line prefixed with the origin of the key it names: "FILE:LINE" for a key from the file, the
// override text for a key set by --set. The key table kKeys below is the single list of keys:
// conversion, unknown-key detection and recipe_to_toml all iterate it, so none can miss a key.
#include "core/recipe.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>
#include <variant>

#include <toml++/toml.h>

#include "core/error.h"
#include "core/fs.h"
#include "distributed/mesh.h"

namespace ssiat {
namespace {

constexpr int64_t kMaxVocab = 2147483647;  // token ids are int32 in the model and loader
constexpr int64_t kByteVocabMin = 258;     // 256 bytes + bos + eos

// A ConfigError about one key; load_recipe() catches it to prefix the key's origin. Callers of
// validate() see a plain ConfigError.
class KeyError : public ConfigError {
 public:
  KeyError(std::string key, const std::string& msg) : ConfigError(msg), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

// ---- formatting -------------------------------------------------------------------------

// Shortest decimal that reads back to the same double, always recognisable as a TOML float.
std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

// Shortest decimal for messages ("1", "0.95", "1e-05").
std::string format_number(double v) {
  std::string s = format_double(v);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

// A TOML basic string: quotes, backslash and control characters escaped; other UTF-8 verbatim.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04X", c);
          out += esc;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// `s` with control characters escaped (\n, \r, \t, other C0 and DEL as \xNN), so that an
// error quoting it stays on one line and sends nothing to the terminal but text.
std::string one_line(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", u);
      out += esc;
    } else {
      out += c;
    }
  }
  return out;
}

[[noreturn]] void out_of_range(const std::string& key, const std::string& value, const std::string& must) {
  throw KeyError(key, "'" + key + "' = " + value + " is out of range (must be " + must + ")");
}

void check_int(const std::string& key, int64_t v, int64_t lo, int64_t hi = INT64_MAX) {
  if (v < lo) out_of_range(key, std::to_string(v), ">= " + std::to_string(lo));
  if (v > hi) out_of_range(key, std::to_string(v), "<= " + std::to_string(hi));
}

enum class Bound { kOpen, kClosed };

// v finite and lo < v (kOpen) or lo <= v (kClosed); the same for an optional upper bound.
void check_double(const std::string& key, double v, double lo, Bound lo_b, double hi = INFINITY,
                  Bound hi_b = Bound::kOpen) {
  std::string must = (lo_b == Bound::kOpen ? "> " : ">= ") + format_number(lo);
  if (std::isfinite(hi)) must += std::string(hi_b == Bound::kOpen ? " and < " : " and <= ") + format_number(hi);
  bool ok = std::isfinite(v) && (lo_b == Bound::kOpen ? v > lo : v >= lo) &&
            (!std::isfinite(hi) || (hi_b == Bound::kOpen ? v < hi : v <= hi));
  if (!ok) out_of_range(key, format_number(v), must);
}

// ---- the key table ----------------------------------------------------------------------

enum class Kind { kInt, kFloat, kBool, kString, kSeed };
using Value = std::variant<int64_t, double, bool, std::string>;

struct KeySpec {
  std::string_view name;  // "section.key", or "seed"
  Kind kind;
  bool required;
  void (*set)(Recipe&, const Value&);  // may throw KeyError (enum strings, seed sign)
  Value (*get)(const Recipe&);
};

std::string_view tokenizer_kind_name(TokenizerKind k) {
  switch (k) {
    case TokenizerKind::kByte: return "byte";
    case TokenizerKind::kBpe: return "bpe";
  }
  return "?";
}

std::string_view schedule_kind_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::kCosine: return "cosine";
    case ScheduleKind::kWsd: return "wsd";
  }
  return "?";
}

#define SSIAT_KEY(SEC, FIELD, KIND, TYPE, REQ)                                            \
  KeySpec {                                                                               \
    #SEC "." #FIELD, Kind::KIND, REQ,                                                     \
        [](Recipe& r, const Value& v) { r.SEC.FIELD = std::get<TYPE>(v); },               \
        [](const Recipe& r) -> Value { return r.SEC.FIELD; }                              \
  }

const KeySpec kKeys[] = {
    {"seed", Kind::kSeed, false,
     [](Recipe& r, const Value& v) {
       int64_t s = std::get<int64_t>(v);
       if (s < 0) out_of_range("seed", std::to_string(s), ">= 0 and < 2^63");
       r.seed = static_cast<uint64_t>(s);
     },
     [](const Recipe& r) -> Value { return static_cast<int64_t>(r.seed.value_or(0)); }},
    SSIAT_KEY(model, vocab_size, kInt, int64_t, true),
    SSIAT_KEY(model, n_layer, kInt, int64_t, true),
    SSIAT_KEY(model, d_model, kInt, int64_t, true),
    SSIAT_KEY(model, n_head, kInt, int64_t, true),
    SSIAT_KEY(model, n_kv_head, kInt, int64_t, false),
    SSIAT_KEY(model, d_ff, kInt, int64_t, true),
    SSIAT_KEY(model, max_seq_len, kInt, int64_t, true),
    SSIAT_KEY(model, tied_embeddings, kBool, bool, false),
    SSIAT_KEY(model, rope_theta, kFloat, double, false),
    SSIAT_KEY(model, norm_eps, kFloat, double, false),
    SSIAT_KEY(model, init_std, kFloat, double, false),
    {"tokenizer.kind", Kind::kString, false,
     [](Recipe& r, const Value& v) {
       const auto& s = std::get<std::string>(v);
       if (s != "byte" && s != "bpe")
         throw KeyError("tokenizer.kind", "'tokenizer.kind' = " + quote(s) + " is not a known tokenizer (must be \"byte\" or \"bpe\")");
       r.tokenizer.kind = s == "bpe" ? TokenizerKind::kBpe : TokenizerKind::kByte;
     },
     [](const Recipe& r) -> Value { return std::string(tokenizer_kind_name(r.tokenizer.kind)); }},
    SSIAT_KEY(tokenizer, path, kString, std::string, false),
    SSIAT_KEY(data, train, kString, std::string, true),
    SSIAT_KEY(data, val, kString, std::string, false),
    SSIAT_KEY(train, steps, kInt, int64_t, true),
    SSIAT_KEY(train, micro_batch, kInt, int64_t, true),
    SSIAT_KEY(train, seq_len, kInt, int64_t, true),
    SSIAT_KEY(train, grad_accum, kInt, int64_t, false),
    SSIAT_KEY(train, eval_interval, kInt, int64_t, false),
    SSIAT_KEY(train, eval_batches, kInt, int64_t, false),
    SSIAT_KEY(train, log_interval, kInt, int64_t, false),
    SSIAT_KEY(train, sample_tokens, kInt, int64_t, false),
    SSIAT_KEY(train, sample_prompt, kString, std::string, false),
    {"train.device", Kind::kString, false,
     [](Recipe& r, const Value& v) {
       const auto& s = std::get<std::string>(v);
       const std::optional<DeviceKind> d = parse_device_kind(s);
       if (!d)
         throw KeyError("train.device", "'train.device' = " + quote(s) + " is not a known device (must be \"cpu\" or \"cuda\")");
       r.train.device = *d;
     },
     [](const Recipe& r) -> Value { return std::string(device_kind_name(r.train.device)); }},
    {"train.precision", Kind::kString, false,
     [](Recipe& r, const Value& v) {
       const auto& s = std::get<std::string>(v);
       if (s == "auto") r.train.precision.reset();
       else if (s == "f32") r.train.precision = Precision::kF32;
       else if (s == "bf16") r.train.precision = Precision::kBf16;
       else
         throw KeyError("train.precision",
                        "'train.precision' = " + quote(s) + " is not a known precision (must be \"auto\", \"f32\" or \"bf16\")");
     },
     [](const Recipe& r) -> Value {
       return r.train.precision ? std::string(precision_name(*r.train.precision)) : std::string("auto");
     }},
    SSIAT_KEY(train, recompute, kBool, bool, false),
    SSIAT_KEY(optim, lr, kFloat, double, true),
    SSIAT_KEY(optim, min_lr, kFloat, double, false),
    SSIAT_KEY(optim, beta1, kFloat, double, false),
    SSIAT_KEY(optim, beta2, kFloat, double, false),
    SSIAT_KEY(optim, eps, kFloat, double, false),
    SSIAT_KEY(optim, weight_decay, kFloat, double, false),
    SSIAT_KEY(optim, grad_clip, kFloat, double, false),
    {"schedule.kind", Kind::kString, false,
     [](Recipe& r, const Value& v) {
       const auto& s = std::get<std::string>(v);
       if (s == "cosine") {
         r.schedule.kind = ScheduleKind::kCosine;
       } else if (s == "wsd") {
         r.schedule.kind = ScheduleKind::kWsd;
       } else {
         throw KeyError("schedule.kind",
                        "'schedule.kind' = " + quote(s) + " is not a known schedule (must be \"cosine\" or \"wsd\")");
       }
     },
     [](const Recipe& r) -> Value { return std::string(schedule_kind_name(r.schedule.kind)); }},
    SSIAT_KEY(schedule, warmup_steps, kInt, int64_t, false),
    SSIAT_KEY(schedule, decay_fraction, kFloat, double, false),
    SSIAT_KEY(checkpoint, interval, kInt, int64_t, false),
    SSIAT_KEY(checkpoint, keep, kInt, int64_t, false),
    SSIAT_KEY(parallel, dp, kInt, int64_t, false),
    SSIAT_KEY(parallel, tp, kInt, int64_t, false),
    SSIAT_KEY(parallel, zero1, kBool, bool, false),
    SSIAT_KEY(init, from, kString, std::string, false),
    SSIAT_KEY(provenance, sovereign, kBool, bool, false),
};

#undef SSIAT_KEY

// Sections in canonical order (recipe_to_toml writes them so).
constexpr std::string_view kSections[] = {"model", "tokenizer", "data", "train", "optim", "schedule", "checkpoint",
                                           "parallel", "init", "provenance"};

const KeySpec* find_key(std::string_view name) {
  for (const auto& k : kKeys)
    if (k.name == name) return &k;
  return nullptr;
}

bool is_section(std::string_view name) {
  return std::find(std::begin(kSections), std::end(kSections), name) != std::end(kSections);
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) row[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" for the closest known name within edit distance 2, or a key of the
// same leaf name in another section; "" when nothing is close.
std::string suggestion(std::string_view name, bool section) {
  std::string best;
  size_t best_d = 3;
  auto consider = [&](std::string_view cand) {
    size_t d = edit_distance(name, cand);
    if (d < best_d) {
      best_d = d;
      best = std::string(cand);
    }
  };
  if (section) {
    for (auto s : kSections) consider(s);
  } else {
    for (const auto& k : kKeys) consider(k.name);
    if (best.empty()) {
      // The same or a close leaf name in another section ("lr" -> "optim.lr"); short names
      // must match more closely so that two-letter typos do not suggest unrelated keys.
      auto leaf = [](std::string_view n) { return n.substr(n.rfind('.') == std::string_view::npos ? 0 : n.rfind('.') + 1); };
      std::string_view mine = leaf(name);
      size_t limit = std::min<size_t>(3, (mine.size() + 1) / 3);
      size_t best_leaf = limit + 1;
      for (const auto& k : kKeys) {
        size_t d = edit_distance(mine, leaf(k.name));
        if (d < best_leaf) {
          best_leaf = d;
          best = std::string(k.name);
        }
      }
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string_view type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

std::string_view expected(Kind k) {
  switch (k) {
    case Kind::kInt:
    case Kind::kSeed: return "an integer";
    case Kind::kFloat: return "a number";
    case Kind::kBool: return "a boolean";
    case Kind::kString: return "a string";
  }
  return "?";
}

// The node's value as the key's kind; integers are accepted where a float is expected.
Value convert(const KeySpec& spec, const toml::node& n) {
  switch (spec.kind) {
    case Kind::kInt:
    case Kind::kSeed:
      if (auto* v = n.as_integer()) return v->get();
      break;
    case Kind::kFloat:
      if (auto* v = n.as_floating_point()) return v->get();
      if (auto* v = n.as_integer()) return static_cast<double>(v->get());
      break;
    case Kind::kBool:
      if (auto* v = n.as_boolean()) return v->get();
      break;
    case Kind::kString:
      if (auto* v = n.as_string()) return v->get();
      break;
  }
  throw KeyError(std::string(spec.name), "'" + std::string(spec.name) + "' must be " + std::string(expected(spec.kind)) +
                                             ", got " + std::string(type_name(n.type())));
}

// Offset of the first byte that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are invalid); nullopt if `s` is valid.
std::optional<size_t> invalid_utf8_at(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t j = 1; j < n; j++) {
      unsigned char cc = s[i + j];
      if ((cc >> 6) != 0x2) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n;
  }
  return std::nullopt;
}

bool valid_utf8(std::string_view s) { return !invalid_utf8_at(s); }

std::string read_recipe_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw ConfigError(path + ": cannot read recipe");
  return read_whole_file(path);  // checked reads: IoError naming the byte offset (core/fs.h)
}

uint32_t line_of(const toml::key& k, const toml::node& n) {
  uint32_t line = k.source().begin.line;
  return line ? line : n.source().begin.line;
}

// Where a key's value came from: "FILE:LINE" or "--set section.key=value".
struct Entry {
  const toml::node* node;
  std::string origin;
};

class Loader {
 public:
  explicit Loader(std::string path) : path_(std::move(path)) {}

  Recipe load(std::string text, const std::vector<std::string>& overrides) {
    Recipe r;
    r.path = path_;
    r.text = std::move(text);
    r.overrides = overrides;
    // TOML is UTF-8; checked here so that toml++ never sees malformed sequences (toml++ 3.3
    // reaches undefined behaviour on some, marzer/tomlplusplus#295).
    if (const auto bad = invalid_utf8_at(r.text)) {
      const auto line = 1 + std::count(r.text.begin(), r.text.begin() + static_cast<std::ptrdiff_t>(*bad), '\n');
      throw ConfigError(path_ + ":" + std::to_string(line) + ": not valid UTF-8 at byte " + std::to_string(*bad));
    }
    try {
      doc_ = toml::parse(r.text, path_);
    } catch (const toml::parse_error& e) {
      const auto& b = e.source().begin;
      throw ConfigError(path_ + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " +
                        one_line(e.description()));
    }
    collect();
    for (const auto& o : overrides) apply_override(o);
    convert_all(r);
    if (r.model.n_kv_head == 0) r.model.n_kv_head = r.model.n_head;
    try {
      r.validate();
    } catch (const KeyError& e) {
      throw ConfigError(origin_of(e.key()) + ": " + e.what());
    }
    return r;
  }

 private:
  std::string at(uint32_t line) const { return line ? path_ + ":" + std::to_string(line) : path_; }

  std::string origin_of(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? path_ : it->second.origin;
  }

  // Flattens the parsed file into entries_, rejecting anything that is not a known key.
  void collect() {
    for (auto&& [k, node] : doc_) {
      std::string name(k.str());
      uint32_t line = line_of(k, node);
      if (find_key(name)) {
        entries_[name] = {&node, at(line)};
        continue;
      }
      if (!is_section(name)) {
        if (node.is_table())
          throw ConfigError(at(line) + ": unknown section '" + one_line(name) + "'" + suggestion(name, true));
        throw ConfigError(at(line) + ": unknown key '" + one_line(name) + "'" + suggestion(name, false));
      }
      const toml::table* t = node.as_table();
      if (!t) throw ConfigError(at(line) + ": '" + name + "' must be a table, got " + std::string(type_name(node.type())));
      section_line_[name] = line;
      for (auto&& [sk, snode] : *t) {
        std::string full = name + "." + std::string(sk.str());
        uint32_t sline = line_of(sk, snode);
        if (!find_key(full)) throw ConfigError(at(sline) + ": unknown key '" + one_line(full) + "'" + suggestion(full, false));
        entries_[full] = {&snode, at(sline)};
      }
    }
  }

  // "section.key=value" (or "seed=value"): the value is read as the TOML value of `k = value`;
  // if that is not one TOML value (or the key wants a string and it is not one), the raw text
  // is taken as a string.
  void apply_override(const std::string& o) {
    std::string origin = "--set " + one_line(o);
    size_t eq = o.find('=');
    if (eq == std::string::npos) throw ConfigError(origin + ": expected section.key=value");
    auto trim = [](std::string_view s) {
      size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
      return a == std::string_view::npos ? std::string() : std::string(s.substr(a, b - a + 1));
    };
    std::string key = trim(std::string_view(o).substr(0, eq));
    std::string raw = o.substr(eq + 1);
    const KeySpec* spec = find_key(key);
    if (!spec) throw ConfigError(origin + ": unknown key '" + one_line(key) + "'" + suggestion(key, false));
    const toml::node* node = nullptr;
    try {
      toml::table t = toml::parse("k = " + raw);
      const toml::node* v = t.get("k");
      if (t.size() == 1 && v && (spec->kind != Kind::kString || v->is_string())) {
        node = v;
        owned_.push_back(std::move(t));
      }
    } catch (const toml::parse_error&) {
    }
    if (!node) {
      if (!valid_utf8(raw)) throw ConfigError(origin + ": value is not valid UTF-8");
      toml::table t;
      t.insert("k", raw);
      owned_.push_back(std::move(t));
    }
    // toml::table keeps its nodes on the heap, so the pointer survives moves of the table.
    entries_[key] = {node ? node : owned_.back().get("k"), origin};
  }

  void convert_all(Recipe& r) {
    // Missing required keys, grouped by section: "'model.d_ff', 'model.n_head' (in [model] at
    // line 2); 'optim.lr' (no [optim] section)".
    std::string missing, section;
    auto close_section = [&] {
      if (section.empty()) return;
      auto sl = section_line_.find(section);
      missing += sl != section_line_.end() && sl->second
                     ? " (in [" + section + "] at line " + std::to_string(sl->second) + ")"
                     : " (no [" + section + "] section)";
    };
    for (const auto& spec : kKeys) {
      std::string name(spec.name);
      auto it = entries_.find(name);
      if (it == entries_.end()) {
        if (spec.required) {
          std::string sec = name.substr(0, name.find('.'));
          if (sec != section) {
            close_section();
            if (!missing.empty()) missing += "; ";
            section = sec;
          } else {
            missing += ", ";
          }
          missing += "'" + name + "'";
        }
        continue;
      }
      try {
        spec.set(r, convert(spec, *it->second.node));
      } catch (const KeyError& e) {
        throw ConfigError(it->second.origin + ": " + e.what());
      }
    }
    close_section();
    if (!missing.empty()) throw ConfigError(path_ + ": missing required key(s) " + missing);
  }

  std::string path_;
  toml::table doc_;
  std::deque<toml::table> owned_;  // parsed override values
  std::map<std::string, Entry> entries_;
  std::map<std::string, uint32_t> section_line_;
};

}  // namespace

// ---- validation -------------------------------------------------------------------------

void ModelConfig::validate() const {
  check_int("model.vocab_size", vocab_size, 1, kMaxVocab);
  check_int("model.n_layer", n_layer, 1);
  check_int("model.d_model", d_model, 1);
  check_int("model.n_head", n_head, 1);
  if (n_kv_head < 1) out_of_range("model.n_kv_head", std::to_string(n_kv_head), ">= 1; 0 in a recipe means n_head");
  check_int("model.d_ff", d_ff, 1);
  check_int("model.max_seq_len", max_seq_len, 1);
  check_double("model.rope_theta", rope_theta, 0, Bound::kOpen);
  check_double("model.norm_eps", norm_eps, 0, Bound::kOpen);
  check_double("model.init_std", init_std, 0, Bound::kOpen);
  if (d_model % n_head != 0)
    out_of_range("model.n_head", std::to_string(n_head), "a divisor of model.d_model = " + std::to_string(d_model));
  if (n_head % n_kv_head != 0)
    out_of_range("model.n_kv_head", std::to_string(n_kv_head), "a divisor of model.n_head = " + std::to_string(n_head));
  if (head_dim() % 2 != 0)
    out_of_range("model.d_model", std::to_string(d_model),
                 "such that head_dim = d_model / n_head is even for RoPE; head_dim = " + std::to_string(head_dim()));
}

void TokenizerConfig::validate() const {
  if (kind == TokenizerKind::kBpe && path.empty())
    throw KeyError("tokenizer.path", "'tokenizer.path' is required for tokenizer.kind = \"bpe\" (a directory from `ssiat tokenizer train`)");
}

void DataConfig::validate() const {
  if (train.empty()) out_of_range("data.train", "\"\"", "a non-empty path");
}

void TrainConfig::validate() const {
  check_int("train.steps", steps, 1);
  check_int("train.micro_batch", micro_batch, 1);
  check_int("train.seq_len", seq_len, 1);
  check_int("train.grad_accum", grad_accum, 1);
  check_int("train.eval_interval", eval_interval, 0);
  check_int("train.eval_batches", eval_batches, 1);
  check_int("train.log_interval", log_interval, 1);
  check_int("train.sample_tokens", sample_tokens, 0);
  if (device == DeviceKind::kCpu && effective_precision() == Precision::kBf16)
    out_of_range("train.precision", "\"bf16\"", "\"f32\" or \"auto\" with train.device = \"cpu\" (bf16 is the CUDA working copy)");
}

void OptimConfig::validate() const {
  check_double("optim.lr", lr, 0, Bound::kOpen);
  check_double("optim.min_lr", min_lr, 0, Bound::kClosed);
  check_double("optim.beta1", beta1, 0, Bound::kClosed, 1, Bound::kOpen);
  check_double("optim.beta2", beta2, 0, Bound::kClosed, 1, Bound::kOpen);
  check_double("optim.eps", eps, 0, Bound::kOpen);
  check_double("optim.weight_decay", weight_decay, 0, Bound::kClosed);
  check_double("optim.grad_clip", grad_clip, 0, Bound::kClosed);
  if (min_lr > lr) out_of_range("optim.min_lr", format_number(min_lr), "<= optim.lr = " + format_number(lr));
}

void ScheduleConfig::validate() const {
  if (kind != ScheduleKind::kCosine && kind != ScheduleKind::kWsd)
    throw KeyError("schedule.kind", "'schedule.kind' is not a known schedule");
  check_int("schedule.warmup_steps", warmup_steps, 0);
  check_double("schedule.decay_fraction", decay_fraction, 0, Bound::kClosed, 1, Bound::kClosed);
}

void CheckpointConfig::validate() const {
  check_int("checkpoint.interval", interval, 0);
  check_int("checkpoint.keep", keep, 0);
}

void ParallelConfig::validate() const {
  check_int("parallel.dp", dp, 1, INT32_MAX);
  check_int("parallel.tp", tp, 1, INT32_MAX);
}

void Recipe::validate() const {
  if (seed && *seed > static_cast<uint64_t>(INT64_MAX))
    out_of_range("seed", std::to_string(*seed), ">= 0 and < 2^63");
  model.validate();
  tokenizer.validate();
  data.validate();
  train.validate();
  optim.validate();
  schedule.validate();
  checkpoint.validate();
  parallel.validate();
  if (train.seq_len > model.max_seq_len)
    out_of_range("train.seq_len", std::to_string(train.seq_len),
                 "<= model.max_seq_len = " + std::to_string(model.max_seq_len));
  if (schedule.warmup_steps > train.steps)
    out_of_range("schedule.warmup_steps", std::to_string(schedule.warmup_steps),
                 "<= train.steps = " + std::to_string(train.steps));
  if (tokenizer.kind == TokenizerKind::kByte && model.vocab_size < kByteVocabMin)
    out_of_range("model.vocab_size", std::to_string(model.vocab_size),
                 ">= " + std::to_string(kByteVocabMin) + " for tokenizer.kind = \"byte\"");
  // The mesh's own rules (the same messages a launched Layout gives); the world size = dp × tp
  // is known only at launch.
  const distributed::ShardedDims dims{model.n_head, model.n_kv_head, model.d_ff, model.vocab_size};
  if (const auto p = distributed::layout_problem(parallel.dp, parallel.tp, dims)) throw KeyError(p->key, p->message);
}

// ---- entry points -----------------------------------------------------------------------

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  return Loader(path).load(read_recipe_file(path), overrides);
}

Recipe parse_recipe(std::string text, const std::string& path, const std::vector<std::string>& overrides) {
  return Loader(path).load(std::move(text), overrides);
}

std::string recipe_to_toml(const Recipe& r) {
  std::string out = "# ssiat effective recipe: file, --set overrides and defaults (docs/recipes.md)\n";
  out += r.seed ? "seed = " + std::to_string(*r.seed) + "\n"
                : "# seed not set: drawn from the OS at the start of the run and logged\n";
  std::string_view section;
  for (const auto& spec : kKeys) {
    if (spec.kind == Kind::kSeed) continue;
    std::string_view name = spec.name;
    std::string_view sec = name.substr(0, name.find('.'));
    if (sec != section) {
      out += "\n[" + std::string(sec) + "]\n";
      section = sec;
    }
    out += std::string(name.substr(name.find('.') + 1)) + " = ";
    Value v = spec.get(r);
    if (auto* i = std::get_if<int64_t>(&v)) out += std::to_string(*i);
    else if (auto* d = std::get_if<double>(&v)) out += format_double(*d);
    else if (auto* b = std::get_if<bool>(&v)) out += *b ? "true" : "false";
    else out += quote(std::get<std::string>(v));
    out += "\n";
  }
  return out;
}

// ---- comparing recipes ------------------------------------------------------------------

namespace {

// Every value of a parsed TOML document by dotted path ("optim.lr"; a nested table adds parts).
void flatten(const toml::table& t, const std::string& prefix, std::map<std::string, const toml::node*>& out) {
  for (auto&& [k, node] : t) {
    const std::string name = prefix + std::string(k.str());
    if (const toml::table* sub = node.as_table()) flatten(*sub, name + ".", out);
    else out[name] = &node;
  }
}

// A node's value as it would appear in canonical TOML ("0.001", "\"x\"", "true").
std::string value_text(const toml::node* n) {
  if (!n) return "(absent)";
  if (auto* v = n->as_integer()) return std::to_string(v->get());
  if (auto* v = n->as_floating_point()) {
    // Fixed notation while it is short ("0.0003", "1.0"), else the canonical form ("1e-300").
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, v->get(), std::chars_format::fixed);
    if (res.ec != std::errc() || !std::isfinite(v->get())) return format_double(v->get());
    std::string s(buf, res.ptr);
    if (s.find('.') == std::string::npos) s += ".0";
    return s.size() <= 16 ? s : format_double(v->get());
  }
  if (auto* v = n->as_boolean()) return v->get() ? "true" : "false";
  if (auto* v = n->as_string()) return quote(v->get());
  std::ostringstream os;
  n->visit([&os](const auto& v) { os << v; });
  return one_line(os.str());
}

bool same_value(const toml::node* a, const toml::node* b) {
  if (!a || !b) return a == b;
  if (a->type() != b->type()) return false;
  if (auto* v = a->as_integer()) return v->get() == b->as_integer()->get();
  if (auto* v = a->as_floating_point()) {
    const double x = v->get(), y = b->as_floating_point()->get();
    return x == y || (std::isnan(x) && std::isnan(y));
  }
  if (auto* v = a->as_boolean()) return v->get() == b->as_boolean()->get();
  if (auto* v = a->as_string()) return v->get() == b->as_string()->get();
  return value_text(a) == value_text(b);  // arrays, dates: compare their TOML text
}

toml::table parse_for_comparison(std::string_view text, int which) {
  if (const auto bad = invalid_utf8_at(text))
    throw ConfigError("recipe text #" + std::to_string(which) + " is not valid UTF-8 at byte " + std::to_string(*bad));
  try {
    return toml::parse(text);
  } catch (const toml::parse_error& e) {
    throw ConfigError("recipe text #" + std::to_string(which) + " does not parse (line " +
                      std::to_string(e.source().begin.line) + ": " + one_line(e.description()) + ")");
  }
}

}  // namespace

std::optional<RecipeDifference> first_recipe_difference(std::string_view ours, std::string_view theirs,
                                                        std::span<const std::string_view> ignore) {
  const toml::table a = parse_for_comparison(ours, 1), b = parse_for_comparison(theirs, 2);
  std::map<std::string, const toml::node*> fa, fb;
  flatten(a, "", fa);
  flatten(b, "", fb);
  std::vector<std::string> order;
  for (const auto& spec : kKeys) order.emplace_back(spec.name);
  std::vector<std::string> rest;
  for (const auto* m : {&fa, &fb})
    for (const auto& [name, node] : *m)
      if (!find_key(name)) rest.push_back(name);
  std::sort(rest.begin(), rest.end());
  rest.erase(std::unique(rest.begin(), rest.end()), rest.end());
  order.insert(order.end(), rest.begin(), rest.end());
  for (const auto& name : order) {
    if (std::find(ignore.begin(), ignore.end(), name) != ignore.end()) continue;
    const auto ia = fa.find(name), ib = fb.find(name);
    const toml::node* na = ia == fa.end() ? nullptr : ia->second;
    const toml::node* nb = ib == fb.end() ? nullptr : ib->second;
    if (!same_value(na, nb)) return RecipeDifference{name, value_text(na), value_text(nb)};
  }
  return std::nullopt;
}

}  // namespace ssiat
