// BPE tokenizer (tokenizer/bpe.h).
#include "tokenizer/bpe.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <queue>
#include <thread>

#include "tokenizer/digest.h"
#include "tokenizer/file_io.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/spm_model.h"
#include "tokenizer/utf8.h"

namespace ssiat::tokenizer {
namespace {

constexpr const char* kFormat = "ssiat-bpe/v1";
constexpr const char* kOwnFile = "tokenizer.ssiat.json";
constexpr const char* kSpmFile = "tokenizer.model";
constexpr const char* kHfFile = "tokenizer.json";
constexpr size_t kCacheMaxEntries = size_t{1} << 17;
constexpr size_t kCacheMaxBytes = 64;  // pre-tokens longer than this are not cached

std::atomic<uint64_t> g_instances{1};

// Per-thread cache of pre-token -> ids: open addressing over two arenas (no allocation per
// entry). Emptied when full.
struct UnitCache {
  static constexpr size_t kSlots = kCacheMaxEntries * 2;
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0, id_off = 0;
    uint16_t key_len = 0, id_len = 0;
    bool used = false;
  };
  uint64_t owner = 0;
  size_t entries = 0;
  std::vector<Slot> slots = std::vector<Slot>(kSlots);
  std::string keys;
  std::vector<int32_t> ids;

  static uint64_t hash_of(std::string_view s) {  // FNV-1a, 64-bit
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h;
  }
  void clear() {
    std::fill(slots.begin(), slots.end(), Slot{});
    keys.clear();
    ids.clear();
    entries = 0;
  }
  // The cached ids of unit, or nullptr; *slot_out is where to insert on a miss.
  const Slot* find(std::string_view unit, uint64_t h, size_t* slot_out) const {
    for (size_t i = h & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
      const Slot& sl = slots[i];
      if (!sl.used) {
        *slot_out = i;
        return nullptr;
      }
      if (sl.hash == h && sl.key_len == unit.size() && std::string_view(keys.data() + sl.key_off, sl.key_len) == unit) return &sl;
    }
  }
  void insert(size_t at, std::string_view unit, uint64_t h, const std::vector<int32_t>& v) {
    Slot& sl = slots[at];
    sl = {h, static_cast<uint32_t>(keys.size()), static_cast<uint32_t>(ids.size()), static_cast<uint16_t>(unit.size()),
          static_cast<uint16_t>(v.size()), true};
    keys.append(unit);
    ids.insert(ids.end(), v.begin(), v.end());
    entries++;
  }
};
thread_local UnitCache t_cache;

NormForm parse_form(const std::string& s, const std::string& where) {
  if (s == "nfc") return NormForm::kNfc;
  if (s == "nfkc") return NormForm::kNfkc;
  if (s == "identity") return NormForm::kIdentity;
  throw TokenizerError(where + ": normalizer.form must be nfc, nfkc or identity, got '" + s + "'");
}

}  // namespace

nlohmann::json vocab_definition_json(const Vocab& v) {
  nlohmann::json pieces = nlohmann::json::array();
  for (const auto& p : v.pieces) pieces.push_back({p.text, p.score, static_cast<int>(p.type)});
  return {{"format", kFormat},
          {"normalizer",
           {{"form", norm_form_name(v.normalizer.form)},
            {"add_dummy_prefix", v.normalizer.add_dummy_prefix},
            {"remove_extra_whitespaces", v.normalizer.remove_extra_whitespaces},
            {"replace_invalid_utf8", v.normalizer.replace_invalid_utf8}}},
          {"pretokenizer", {{"split_digits", v.pretok.split_digits}, {"max_piece_chars", v.pretok.max_piece_chars}}},
          {"byte_fallback", v.byte_fallback},
          {"special", {{"unk_id", v.unk_id}, {"bos_id", v.bos_id}, {"eos_id", v.eos_id}, {"pad_id", v.pad_id}}},
          {"pieces", std::move(pieces)}};
}

std::string vocab_digest(const Vocab& v) { return sha256_hex_of(vocab_definition_json(v).dump()); }

namespace {

std::vector<std::string> user_defined_texts(const Vocab& v) {
  std::vector<std::string> out;
  for (const auto& p : v.pieces)
    if (p.type == PieceType::kUserDefined) out.push_back(p.text);
  return out;
}

// Pieces that take part in merges (user-defined ones are frozen).
bool is_merge_type(PieceType t) { return t == PieceType::kNormal || t == PieceType::kUnused; }

}  // namespace

BpeTokenizer::BpeTokenizer(Vocab v, nlohmann::json provenance)
    : vocab_(std::move(v)),
      provenance_(std::move(provenance)),
      user_defined_(user_defined_texts(vocab_)),
      norm_(vocab_.normalizer, user_defined_),
      pre_(vocab_.pretok, user_defined_),
      instance_(g_instances.fetch_add(1)) {
  const auto n = static_cast<int32_t>(vocab_.pieces.size());
  auto check_id = [&](int32_t id, const char* what, PieceType want) {
    if (id < 0 || id >= n) throw TokenizerError(std::string(what) + " " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(n));
    if (vocab_.pieces[static_cast<size_t>(id)].type != want) throw TokenizerError(std::string(what) + " " + std::to_string(id) + " has the wrong piece type");
  };
  check_id(vocab_.unk_id, "unk_id", PieceType::kUnknown);
  check_id(vocab_.bos_id, "bos_id", PieceType::kControl);
  check_id(vocab_.eos_id, "eos_id", PieceType::kControl);
  bmp_char_.assign(0x10000, -1);
  for (int32_t i = 0; i < n; i++) {
    const Piece& p = vocab_.pieces[static_cast<size_t>(i)];
    if (p.text.empty()) throw TokenizerError("piece " + std::to_string(i) + " is empty");
    if (find_invalid_utf8(p.text)) throw TokenizerError("piece " + std::to_string(i) + " is not valid UTF-8");
    if (!all_.emplace(p.text, i).second) throw TokenizerError("piece '" + p.text + "' appears twice (id " + std::to_string(i) + ")");
    if (p.type == PieceType::kByte && p.text == "<0x00>") byte_base_ = i;
    int len;
    const char32_t c = decode_utf8(p.text.data(), &len);  // one-character pieces
    if (static_cast<size_t>(len) != p.text.size()) continue;
    if (c < 0x10000)
      bmp_char_[c] = i;
    else
      astral_[c] = i;
  }
  if (vocab_.byte_fallback) {
    if (byte_base_ < 0 || byte_base_ + 256 > n) throw TokenizerError("byte_fallback is set but the 256 byte pieces are missing");
    for (int b = 0; b < 256; b++) {
      const Piece& p = vocab_.pieces[static_cast<size_t>(byte_base_ + b)];
      if (p.type != PieceType::kByte || p.text != byte_piece(b)) throw TokenizerError("byte pieces must be <0x00>..<0xFF> at consecutive ids");
    }
  }
  auto merge_id = [&](std::string_view text) {
    auto it = all_.find(text);
    return it != all_.end() && is_merge_type(vocab_.pieces[static_cast<size_t>(it->second)].type) ? it->second : -1;
  };
  // For each mergeable piece: per-pre-token encoding is exact only if none spans a pre-token
  // boundary; the pair table gets every split into two mergeable pieces.
  std::vector<std::pair<uint64_t, Entry>> items;
  for (int32_t id = 0; id < n; id++) {
    const Piece& p = vocab_.pieces[static_cast<size_t>(id)];
    if (!is_merge_type(p.type)) continue;
    const std::string& text = p.text;
    char32_t prev = 0;
    for (size_t i = 0; i < text.size();) {
      int len;
      const char32_t c = decode_utf8(text.data() + i, &len);
      if (merge_id(text.substr(i, static_cast<size_t>(len))) < 0)
        throw TokenizerError("piece '" + text + "' (id " + std::to_string(id) + ") holds a character that is not a piece itself");
      if (i > 0) {
        if (pre_.boundary(prev, c)) pretokenized_ = false;
        const int32_t l = merge_id(std::string_view(text).substr(0, i)), r = merge_id(std::string_view(text).substr(i));
        if (l >= 0 && r >= 0)
          items.push_back({(static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r), Entry{id, p.score}});
      }
      prev = c;
      i += static_cast<size_t>(len);
    }
  }
  pairs_.build(items);
}

int32_t BpeTokenizer::piece_id(std::string_view piece) const {
  auto it = all_.find(piece);
  return it == all_.end() ? -1 : it->second;
}

void BpeTokenizer::emit(std::string_view piece, std::vector<int32_t>& out) const {
  if (auto it = all_.find(piece); it != all_.end()) {
    out.push_back(it->second);
  } else if (vocab_.byte_fallback) {
    for (unsigned char b : piece) out.push_back(byte_base_ + b);
  } else if (out.empty() || out.back() != vocab_.unk_id) {
    out.push_back(vocab_.unk_id);  // consecutive unknowns make one <unk>, as in SentencePiece
  }
}

void BpeTokenizer::PairTable::build(const std::vector<std::pair<uint64_t, Entry>>& items) {
  size_t cap = 16;
  while (cap < items.size() * 2) cap <<= 1;
  keys.assign(cap, ~uint64_t{0});
  vals.assign(cap, Entry{-1, 0});
  mask = cap - 1;
  for (const auto& [k, v] : items) {
    size_t h = static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask;
    while (keys[h] != ~uint64_t{0} && keys[h] != k) h = (h + 1) & mask;
    keys[h] = k;
    vals[h] = v;
  }
}

const BpeTokenizer::Entry* BpeTokenizer::PairTable::find(int32_t l, int32_t r) const {
  if (l < 0 || r < 0) return nullptr;
  const uint64_t k = (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  for (size_t h = static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask;; h = (h + 1) & mask) {
    if (keys[h] == k) return &vals[h];
    if (keys[h] == ~uint64_t{0}) return nullptr;
  }
}

int32_t BpeTokenizer::char_piece(char32_t c) const {
  if (c < 0x10000) return bmp_char_[c];
  auto it = astral_.find(c);
  return it == astral_.end() ? -1 : it->second;
}

// SentencePiece's BPE merge over the characters of s (text without user-defined symbols).
// Symbols carry piece ids (-1 for a character that is no piece: byte fallback or <unk>).
void BpeTokenizer::bpe(std::string_view s, std::vector<int32_t>& out) const {
  struct Sym {
    uint32_t begin, len;
    int32_t id;
  };
  std::vector<Sym> syms;
  syms.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    int len;
    const char32_t c = decode_utf8(s.data() + i, &len);
    syms.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len), char_piece(c)});
    i += static_cast<size_t>(len);
  }
  auto emit_sym = [&](const Sym& y) {
    if (y.id >= 0)
      out.push_back(y.id);
    else
      emit(s.substr(y.begin, y.len), out);
  };
  if (syms.size() <= kLinearMax) {
    // Linear scan: best score, leftmost on ties (same order as SentencePiece's agenda).
    const Entry* cand[kLinearMax];
    size_t n = syms.size();
    for (size_t i = 0; i + 1 < n; i++) cand[i] = pairs_.find(syms[i].id, syms[i + 1].id);
    while (n > 1) {
      size_t best = n;
      for (size_t i = 0; i + 1 < n; i++)
        if (cand[i] && (best == n || cand[i]->score > cand[best]->score)) best = i;
      if (best == n) break;
      syms[best].len += syms[best + 1].len;
      syms[best].id = cand[best]->id;
      for (size_t i = best + 1; i + 1 < n; i++) syms[i] = syms[i + 1];
      for (size_t i = best + 1; i + 2 < n; i++) cand[i] = cand[i + 1];
      n--;
      if (best > 0) cand[best - 1] = pairs_.find(syms[best - 1].id, syms[best].id);
      if (best + 1 < n) cand[best] = pairs_.find(syms[best].id, syms[best + 1].id);
    }
    for (size_t i = 0; i < n; i++) emit_sym(syms[i]);
    return;
  }
  // Heap with lazy invalidation over a linked list (bpe_model.cc's algorithm).
  struct Node {
    int prev, next;
    uint32_t len;
    int32_t id;
  };
  struct Cand {
    float score;
    int left, right;
    uint32_t size;
    int32_t id;
  };
  auto worse = [](const Cand& a, const Cand& b) { return a.score < b.score || (a.score == b.score && a.left > b.left); };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> agenda(worse);
  std::vector<Node> nodes(syms.size());
  for (size_t i = 0; i < syms.size(); i++)
    nodes[i] = {static_cast<int>(i) - 1, i + 1 < syms.size() ? static_cast<int>(i + 1) : -1, syms[i].len, syms[i].id};
  auto maybe_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const Node& L = nodes[static_cast<size_t>(l)];
    const Node& R = nodes[static_cast<size_t>(r)];
    if (const Entry* e = pairs_.find(L.id, R.id)) agenda.push({e->score, l, r, L.len + R.len, e->id});
  };
  for (size_t i = 1; i < nodes.size(); i++) maybe_add(static_cast<int>(i - 1), static_cast<int>(i));
  while (!agenda.empty()) {
    const Cand top = agenda.top();
    agenda.pop();
    Node& L = nodes[static_cast<size_t>(top.left)];
    Node& R = nodes[static_cast<size_t>(top.right)];
    if (L.len == 0 || R.len == 0 || L.len + R.len != top.size) continue;
    L.len += R.len;
    L.id = top.id;
    L.next = R.next;
    if (R.next >= 0) nodes[static_cast<size_t>(R.next)].prev = top.left;
    R.len = 0;
    maybe_add(L.prev, top.left);
    maybe_add(top.left, L.next);
  }
  for (int i = 0; i >= 0; i = nodes[static_cast<size_t>(i)].next)
    emit_sym({syms[static_cast<size_t>(i)].begin, nodes[static_cast<size_t>(i)].len, nodes[static_cast<size_t>(i)].id});
}

std::vector<int32_t> BpeTokenizer::encode_whole(std::string_view s) const {
  // Units: user-defined symbols (frozen) and the text between them; merging never crosses a
  // frozen symbol, so each stretch of text is merged on its own.
  std::vector<int32_t> out;
  size_t seg = 0, i = 0;
  auto flush = [&](size_t end) {
    if (end > seg) bpe(s.substr(seg, end - seg), out);
  };
  while (i < s.size()) {
    if (const size_t m = user_defined_.match(s.substr(i))) {
      flush(i);
      out.push_back(all_.at(std::string(s.substr(i, m))));
      i += m;
      seg = i;
    } else {
      i += static_cast<size_t>(utf8_len(static_cast<unsigned char>(s[i])));
    }
  }
  flush(s.size());
  return out;
}

void BpeTokenizer::encode_normalized(std::string_view s, std::vector<int32_t>& out) const {
  if (!pretokenized_) {
    auto ids = encode_whole(s);
    out.insert(out.end(), ids.begin(), ids.end());
    return;
  }
  UnitCache& cache = t_cache;
  if (cache.owner != instance_) cache.clear(), cache.owner = instance_;
  // Without byte fallback, consecutive unknowns make one <unk> (SentencePiece), across units too.
  const bool squeeze_unk = !vocab_.byte_fallback;
  auto append = [&](const int32_t* ids, size_t n) {
    for (size_t k = 0; k < n; k++)
      if (!(squeeze_unk && ids[k] == vocab_.unk_id && !out.empty() && out.back() == ids[k])) out.push_back(ids[k]);
  };
  std::vector<PreToken> pts;
  pre_.split(s, pts);
  std::vector<int32_t> tmp;
  for (const auto& p : pts) {
    const std::string_view unit = s.substr(p.begin, p.end - p.begin);
    if (p.user_defined) {
      out.push_back(all_.find(unit)->second);
      continue;
    }
    const bool cacheable = unit.size() <= kCacheMaxBytes;
    uint64_t h = 0;
    size_t at = 0;
    if (cacheable) {
      h = UnitCache::hash_of(unit);
      if (const auto* hit = cache.find(unit, h, &at)) {
        append(cache.ids.data() + hit->id_off, hit->id_len);
        continue;
      }
    }
    tmp.clear();
    bpe(unit, tmp);
    append(tmp.data(), tmp.size());
    if (cacheable) {
      if (cache.entries >= kCacheMaxEntries) {
        cache.clear();
        (void)cache.find(unit, h, &at);
      }
      cache.insert(at, unit, h, tmp);
    }
  }
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  const std::string s = norm_.normalize_for_model(text);
  std::vector<int32_t> out;
  out.reserve(s.size() / 2 + 4);
  encode_normalized(s, out);
  return out;
}

std::vector<std::vector<int32_t>> BpeTokenizer::encode_batch(std::span<const std::string_view> docs, int threads) const {
  std::vector<std::vector<int32_t>> out(docs.size());
  int T = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  T = static_cast<int>(std::min<size_t>(static_cast<size_t>(T), std::max<size_t>(docs.size(), 1)));
  if (T <= 1) {
    for (size_t i = 0; i < docs.size(); i++) out[i] = encode(docs[i]);
    return out;
  }
  // Interleaved blocks of documents so long and short documents spread evenly.
  std::atomic<size_t> next{0};
  std::vector<std::exception_ptr> errors(static_cast<size_t>(T));
  std::vector<std::thread> pool;
  constexpr size_t kBlock = 64;
  for (int t = 0; t < T; t++)
    pool.emplace_back([&, t] {
      try {
        for (size_t b = next.fetch_add(kBlock); b < docs.size(); b = next.fetch_add(kBlock))
          for (size_t i = b; i < std::min(docs.size(), b + kBlock); i++) out[i] = encode(docs[i]);
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
      }
    });
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string raw;
  bool strip = vocab_.normalizer.add_dummy_prefix || vocab_.normalizer.remove_extra_whitespaces;
  const auto n = static_cast<int32_t>(vocab_.pieces.size());
  for (size_t k = 0; k < ids.size(); k++) {
    const int32_t id = ids[k];
    if (id < 0 || id >= n)
      throw TokenizerError("decode: id " + std::to_string(id) + " at position " + std::to_string(k) + " is outside [0, " + std::to_string(n) + ")");
    const Piece& p = vocab_.pieces[static_cast<size_t>(id)];
    switch (p.type) {
      case PieceType::kControl: break;
      case PieceType::kUnknown: raw += " \xE2\x81\x87 "; strip = false; break;
      case PieceType::kByte: raw.push_back(static_cast<char>(id - byte_base_)); strip = false; break;
      default: {
        std::string_view t = p.text;
        if (strip && t.starts_with("\xE2\x96\x81")) t.remove_prefix(3);
        strip = false;
        for (size_t i = 0; i < t.size();) {
          if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
            raw.push_back(' ');
            i += 3;
          } else {
            raw.push_back(t[i++]);
          }
        }
      }
    }
  }
  return check_or_replace_utf8(raw, true, "decode");
}

namespace {

// The set as written: the tokenizer.ssiat.json document (with "files" and "digest") and the bytes
// of the two other files.
struct RenderedSet {
  nlohmann::json doc;
  std::string spm, hf;
};

// SHA-256 of the canonical JSON (sorted keys, no spaces) of the document without "digest".
std::string set_digest_of(nlohmann::json doc) {
  doc.erase("digest");
  return sha256_hex_of(doc.dump());
}

RenderedSet render_set(const Vocab& vocab, const nlohmann::json& provenance) {
  RenderedSet r;
  SpmTrainerSpec spec = spm_trainer_spec_for(vocab);
  if (provenance.contains("sources"))
    for (const auto& src : provenance.at("sources")) spec.input.push_back(src.value("path", ""));
  r.spm = write_spm_model(vocab, spec);
  r.hf = write_hf_tokenizer_json(vocab);
  r.doc = vocab_definition_json(vocab);
  r.doc["provenance"] = provenance;
  r.doc["files"] = {{kSpmFile, sha256_hex_of(r.spm)}, {kHfFile, sha256_hex_of(r.hf)}};
  r.doc["digest"] = set_digest_of(r.doc);
  return r;
}

// Our file: one piece per line, the rest indented (diff-friendly, still canonical JSON values).
std::string own_file_text(nlohmann::json j) {
  const nlohmann::json pieces = std::move(j["pieces"]);
  j.erase("pieces");
  std::string text = j.dump(1);
  text.pop_back();  // closing brace
  text += ",\n \"pieces\": [\n";
  for (size_t i = 0; i < pieces.size(); i++) text += "  " + pieces[i].dump() + (i + 1 < pieces.size() ? ",\n" : "\n");
  text += " ]\n}\n";
  return text;
}

}  // namespace

std::string BpeTokenizer::digest() const {
  std::call_once(digest_once_, [this] { digest_ = render_set(vocab_, provenance_).doc.at("digest").get<std::string>(); });
  return digest_;
}

nlohmann::json BpeTokenizer::to_json() const { return render_set(vocab_, provenance_).doc; }

const std::vector<std::string>& BpeTokenizer::file_names() {
  static const std::vector<std::string> kNames = {kOwnFile, kSpmFile, kHfFile, "seeds.jsonl"};
  return kNames;
}

std::vector<std::pair<std::string, std::string>> BpeTokenizer::files() const {
  RenderedSet r = render_set(vocab_, provenance_);
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back(kOwnFile, own_file_text(std::move(r.doc)));
  out.emplace_back(kSpmFile, std::move(r.spm));
  out.emplace_back(kHfFile, std::move(r.hf));
  return out;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::load(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / kOwnFile;
  std::string text;
  try {
    text = read_file_checked(file);
  } catch (const TokenizerError& e) {
    std::error_code ec;
    if (std::filesystem::exists(file, ec)) throw;
    throw TokenizerError(std::string(e.what()) + " (is " + dir.string() + " a tokenizer directory?)");
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw TokenizerError(file.string() + ": not valid JSON at byte " + std::to_string(e.byte));
  }
  const std::string where = file.string();
  try {
    if (j.at("format").get<std::string>() != kFormat)
      throw TokenizerError(where + ": format '" + j.at("format").get<std::string>() + "' is not " + kFormat);
    Vocab v;
    const auto& nj = j.at("normalizer");
    v.normalizer.form = parse_form(nj.at("form").get<std::string>(), where);
    v.normalizer.add_dummy_prefix = nj.at("add_dummy_prefix").get<bool>();
    v.normalizer.remove_extra_whitespaces = nj.at("remove_extra_whitespaces").get<bool>();
    v.normalizer.replace_invalid_utf8 = nj.at("replace_invalid_utf8").get<bool>();
    v.pretok.split_digits = j.at("pretokenizer").at("split_digits").get<bool>();
    v.pretok.max_piece_chars = j.at("pretokenizer").at("max_piece_chars").get<int32_t>();
    v.byte_fallback = j.at("byte_fallback").get<bool>();
    const auto& sp = j.at("special");
    v.unk_id = sp.at("unk_id").get<int32_t>(), v.bos_id = sp.at("bos_id").get<int32_t>();
    v.eos_id = sp.at("eos_id").get<int32_t>(), v.pad_id = sp.at("pad_id").get<int32_t>();
    for (const auto& p : j.at("pieces")) {
      const int type = p.at(2).get<int>();
      if (type < 1 || type > 6) throw TokenizerError(where + ": piece type " + std::to_string(type) + " is not 1..6");
      v.pieces.push_back({p.at(0).get<std::string>(), p.at(1).get<float>(), static_cast<PieceType>(type)});
    }
    if (!j.contains("files"))
      throw TokenizerError(where + ": no \"files\" record (written by an older ssiat whose digest covered only this file); "
                           "train the tokenizer again");
    // The other files of the set must be the ones this file was saved with.
    for (const char* name : {kSpmFile, kHfFile}) {
      const std::string want = j.at("files").at(name).get<std::string>();
      const std::filesystem::path other = dir / name;
      const std::string got = sha256_hex_of(read_file_checked(other));
      if (got != want)
        throw TokenizerError(other.string() + ": SHA-256 " + got.substr(0, 12) + "… does not match the " + want.substr(0, 12) +
                             "… recorded in " + where + " (the files come from different saves, or one was edited)");
    }
    const std::string digest = set_digest_of(j);
    if (j.at("digest").get<std::string>() != digest)
      throw TokenizerError(where + ": digest " + j.at("digest").get<std::string>() + " does not match the contents (" + digest +
                           "); the file was changed after it was written");
    auto tok = std::make_unique<BpeTokenizer>(std::move(v), j.value("provenance", nlohmann::json::object()));
    std::call_once(tok->digest_once_, [&] { tok->digest_ = digest; });
    return tok;
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(where + ": missing or wrong-typed field (" + e.what() + ")");
  } catch (const TokenizerError& e) {
    const std::string m = e.what();
    if (m.starts_with(dir.string())) throw;
    throw TokenizerError(where + ": " + m);
  }
}

void BpeTokenizer::save(const std::filesystem::path& dir, Overwrite mode,
                        const std::vector<std::pair<std::string, std::string>>& extra) const {
  auto set = files();
  set.insert(set.end(), extra.begin(), extra.end());
  publish_file_set(dir, set, mode, file_names());
}

}  // namespace ssiat::tokenizer
