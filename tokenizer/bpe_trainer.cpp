// BPE trainer (tokenizer/bpe_trainer.h).
#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <queue>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"

namespace ssiat::tokenizer {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int resolve_threads(int32_t t) {
  if (t > 0) return t;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

// Runs f(thread, begin, end) over T contiguous chunks of [0, n).
template <class F>
void parallel_chunks(int T, size_t n, F&& f) {
  if (T <= 1 || n < 2) {
    f(0, size_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < T; t++) {
    const size_t b = n * t / T, e = n * (t + 1) / T;
    pool.emplace_back([&f, t, b, e] { f(t, b, e); });
  }
  for (auto& th : pool) th.join();
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using WordMap = std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>>;

struct U64Hash {
  size_t operator()(uint64_t x) const { return static_cast<size_t>(splitmix64(x)); }
};

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

// Sentence indices to train on (all, or the sample described in the header).
std::vector<size_t> select_sentences(size_t n, const BpeTrainOptions& opt) {
  std::vector<size_t> idx;
  if (opt.max_sentences <= 0 || n <= static_cast<size_t>(opt.max_sentences)) {
    idx.resize(n);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    return idx;
  }
  std::vector<std::pair<uint64_t, size_t>> keys(n);
  for (size_t i = 0; i < n; i++) keys[i] = {splitmix64(opt.sample_seed + i * 0x9E3779B97F4A7C15ull), i};
  const size_t k = static_cast<size_t>(opt.max_sentences);
  std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(k), keys.end());
  idx.reserve(k);
  for (size_t i = 0; i < k; i++) idx.push_back(keys[i].second);
  std::sort(idx.begin(), idx.end());
  return idx;
}

// The training state of the merge loop: distinct words as symbol sequences, pair counts and the
// index pair -> words that hold it.
class Merger {
 public:
  Merger(std::vector<std::string> sym_text, std::vector<int32_t> sym_len, int32_t max_len)
      : text_(std::move(sym_text)), len_(std::move(sym_len)), max_len_(max_len) {
    for (size_t i = 0; i < text_.size(); i++) by_text_.emplace(text_[i], static_cast<int32_t>(i));
  }

  void add_word(const std::vector<int32_t>& syms, int64_t count) {
    if (syms.size() < 2) return;
    start_.push_back(static_cast<uint64_t>(flat_.size()));
    size_.push_back(static_cast<uint32_t>(syms.size()));
    count_.push_back(count);
    flat_.insert(flat_.end(), syms.begin(), syms.end());
  }

  // Counts every eligible adjacent pair (threads over words), then indexes pair -> words.
  void count_pairs(int T) {
    const size_t W = count_.size();
    std::vector<std::unordered_map<uint64_t, int64_t, U64Hash>> local(static_cast<size_t>(T));
    parallel_chunks(T, W, [&](int t, size_t b, size_t e) {
      auto& m = local[static_cast<size_t>(t)];
      for (size_t w = b; w < e; w++) {
        const int32_t* s = flat_.data() + start_[w];
        for (uint32_t i = 0; i + 1 < size_[w]; i++)
          if (eligible(s[i], s[i + 1])) m[pair_key(s[i], s[i + 1])] += count_[w];
      }
    });
    // Merge in a fixed order (sorted keys) so pair indices do not depend on T.
    std::vector<std::pair<uint64_t, int64_t>> all;
    for (auto& m : local) {
      for (auto& [k, c] : m) all.emplace_back(k, c);
      m.clear();
    }
    std::sort(all.begin(), all.end());
    for (size_t i = 0; i < all.size();) {
      size_t j = i;
      int64_t c = 0;
      while (j < all.size() && all[j].first == all[i].first) c += all[j++].second;
      const int32_t p = pair_index(all[i].first);
      pcount_[static_cast<size_t>(p)] = c;
      i = j;
    }
    for (size_t w = 0; w < W; w++) {
      const int32_t* s = flat_.data() + start_[w];
      for (uint32_t i = 0; i + 1 < size_[w]; i++)
        if (eligible(s[i], s[i + 1])) where_[static_cast<size_t>(pair_index(pair_key(s[i], s[i + 1])))].push_back(static_cast<uint32_t>(w));
    }
    for (size_t p = 0; p < pcount_.size(); p++) push(static_cast<int32_t>(p));
  }

  // Pops the best pair; false when none has count >= min_count.
  bool best(int64_t min_count, int32_t* a, int32_t* b, int64_t* count) {
    while (!heap_.empty()) {
      const Entry e = heap_.top();
      heap_.pop();
      const int64_t cur = pcount_[static_cast<size_t>(e.pair)];
      if (cur != e.count) {
        if (cur > 0 && cur < e.count) push(e.pair);  // decreased since pushed: queue the current count
        continue;  // (an increase was pushed when it happened)
      }
      if (cur < min_count) return false;
      *a = pa_[static_cast<size_t>(e.pair)], *b = pb_[static_cast<size_t>(e.pair)], *count = cur;
      return true;
    }
    return false;
  }

  // Merges (a, b) everywhere; returns the symbol id of the joined piece and whether it is new.
  std::pair<int32_t, bool> merge(int32_t a, int32_t b) {
    std::string joined = text_[static_cast<size_t>(a)] + text_[static_cast<size_t>(b)];
    int32_t s;
    bool fresh = false;
    if (auto it = by_text_.find(joined); it != by_text_.end()) {
      s = it->second;
    } else {
      s = static_cast<int32_t>(text_.size());
      len_.push_back(len_[static_cast<size_t>(a)] + len_[static_cast<size_t>(b)]);
      by_text_.emplace(joined, s);
      text_.push_back(std::move(joined));
      fresh = true;
    }
    const int32_t p = pair_index(pair_key(a, b));
    std::vector<uint32_t> words;
    words.swap(where_[static_cast<size_t>(p)]);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    touched_.clear();
    for (uint32_t w : words) rewrite(w, a, b, s);
    pcount_[static_cast<size_t>(p)] = 0;
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    for (int32_t q : touched_)
      if (q != p && pcount_[static_cast<size_t>(q)] > 0) push(q);
    return {s, fresh};
  }

  const std::string& text(int32_t s) const { return text_[static_cast<size_t>(s)]; }

  // Recounts every eligible pair over the current words and compares with the incremental
  // counts; throws TokenizerError naming the first pair that differs.
  void verify() const {
    std::unordered_map<uint64_t, int64_t, U64Hash> fresh;
    for (size_t w = 0; w < count_.size(); w++) {
      const int32_t* s = flat_.data() + start_[w];
      for (uint32_t i = 0; i + 1 < size_[w]; i++)
        if (eligible(s[i], s[i + 1])) fresh[pair_key(s[i], s[i + 1])] += count_[w];
    }
    for (const auto& [key, p] : pindex_) {
      const int64_t want = fresh.count(key) ? fresh.at(key) : 0;
      if (pcount_[static_cast<size_t>(p)] != want)
        throw TokenizerError("pair count check: '" + text_[key >> 32] + "' + '" + text_[key & 0xFFFFFFFFu] + "' counted " +
                             std::to_string(pcount_[static_cast<size_t>(p)]) + " incrementally, " + std::to_string(want) + " afresh");
    }
    for (const auto& [key, c] : fresh)
      if (!pindex_.count(key)) throw TokenizerError("pair count check: a pair with count " + std::to_string(c) + " is missing");
  }

 private:
  struct Entry {
    int64_t count;
    int32_t len, pair;
    int32_t a, b;
  };
  struct Worse {  // priority_queue puts the "largest" on top: higher count, shorter, smaller ids
    bool operator()(const Entry& x, const Entry& y) const {
      if (x.count != y.count) return x.count < y.count;
      if (x.len != y.len) return x.len > y.len;
      if (x.a != y.a) return x.a > y.a;
      return x.b > y.b;
    }
  };

  bool eligible(int32_t a, int32_t b) const { return len_[static_cast<size_t>(a)] + len_[static_cast<size_t>(b)] <= max_len_; }

  int32_t pair_index(uint64_t key) {
    auto [it, inserted] = pindex_.try_emplace(key, static_cast<int32_t>(pcount_.size()));
    if (inserted) {
      pcount_.push_back(0);
      where_.emplace_back();
      pa_.push_back(static_cast<int32_t>(key >> 32));
      pb_.push_back(static_cast<int32_t>(key & 0xFFFFFFFFu));
    }
    return it->second;
  }

  void push(int32_t p) {
    const auto i = static_cast<size_t>(p);
    heap_.push({pcount_[i], len_[static_cast<size_t>(pa_[i])] + len_[static_cast<size_t>(pb_[i])], p, pa_[i], pb_[i]});
  }

  void add(int32_t x, int32_t y, int64_t delta, uint32_t w) {
    if (!eligible(x, y)) return;
    const int32_t q = pair_index(pair_key(x, y));
    pcount_[static_cast<size_t>(q)] += delta;
    if (delta > 0) {
      where_[static_cast<size_t>(q)].push_back(w);
      touched_.push_back(q);
    }
  }

  // Replaces each non-overlapping (a, b), left to right, in word w by s; updates neighbours.
  void rewrite(uint32_t w, int32_t a, int32_t b, int32_t s) {
    int32_t* sym = flat_.data() + start_[w];
    const uint32_t n = size_[w];
    const int64_t c = count_[w];
    uint32_t out = 0;
    for (uint32_t i = 0; i < n;) {
      if (i + 1 < n && sym[i] == a && sym[i + 1] == b) {
        if (out > 0) {
          add(sym[out - 1], a, -c, w);
          add(sym[out - 1], s, c, w);
        }
        if (i + 2 < n) {
          add(b, sym[i + 2], -c, w);
          add(s, sym[i + 2], c, w);
        }
        sym[out++] = s;
        i += 2;
      } else {
        sym[out++] = sym[i++];
      }
    }
    size_[w] = out;
  }

  std::vector<std::string> text_;
  std::vector<int32_t> len_;
  int32_t max_len_;
  std::unordered_map<std::string, int32_t> by_text_;
  std::vector<int32_t> flat_;
  std::vector<uint64_t> start_;
  std::vector<uint32_t> size_;
  std::vector<int64_t> count_;
  std::unordered_map<uint64_t, int32_t, U64Hash> pindex_;
  std::vector<int64_t> pcount_;
  std::vector<int32_t> pa_, pb_;
  std::vector<std::vector<uint32_t>> where_;
  std::priority_queue<Entry, std::vector<Entry>, Worse> heap_;
  std::vector<int32_t> touched_;
};

}  // namespace

uint64_t splitmix64(uint64_t x) {  // Steele, Lea, Flood 2014 (SplitMix64 finaliser)
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void BpeTrainOptions::validate() const {
  auto bad = [](const std::string& m) { throw TokenizerError(m); };
  if (vocab_size < 8 || vocab_size > (1 << 30)) bad("vocab_size: must be in [8, 2^30], got " + std::to_string(vocab_size));
  if (!(character_coverage > 0.0 && character_coverage <= 1.0))
    bad("character_coverage: must be in (0, 1], got " + std::to_string(character_coverage));
  if (pretok.max_piece_chars < 2 || pretok.max_piece_chars > 256)
    bad("max_piece_chars: must be in [2, 256], got " + std::to_string(pretok.max_piece_chars));
  if (max_sentences < 0) bad("max_sentences: must be >= 0, got " + std::to_string(max_sentences));
  if (min_pair_count < 1) bad("min_pair_count: must be >= 1, got " + std::to_string(min_pair_count));
  if (threads < 0) bad("threads: must be >= 0, got " + std::to_string(threads));
  for (const auto* list : {&user_defined_symbols, &control_symbols})
    for (const auto& s : *list) {
      if (s.empty()) bad("user-defined/control symbols: empty symbol");
      if (find_invalid_utf8(s)) bad("user-defined/control symbols: '" + s + "' is not valid UTF-8");
    }
}

Vocab train_bpe(const std::vector<std::string_view>& sentences, const BpeTrainOptions& opt, BpeTrainStats* stats_out) {
  opt.validate();
  BpeTrainStats st;
  const int T = resolve_threads(opt.threads);
  const auto t0 = Clock::now();

  // 1. Distinct pre-tokens and their counts.
  const std::vector<size_t> chosen = select_sentences(sentences.size(), opt);
  st.sentences_total = static_cast<int64_t>(sentences.size());
  st.sentences_used = static_cast<int64_t>(chosen.size());
  const Normalizer norm(opt.normalizer, opt.user_defined_symbols);
  const PreTokenizer pre(opt.pretok, opt.user_defined_symbols);
  std::vector<WordMap> local(static_cast<size_t>(T));
  std::vector<int64_t> local_pretokens(static_cast<size_t>(T), 0), local_bytes(static_cast<size_t>(T), 0);
  parallel_chunks(T, chosen.size(), [&](int t, size_t b, size_t e) {
    auto& m = local[static_cast<size_t>(t)];
    std::vector<PreToken> pts;
    auto last = Clock::now();
    for (size_t k = b; k < e; k++) {
      if (opt.progress && t == 0 && (k & 1023) == 0 && seconds_since(last) > 1.0) {
        last = Clock::now();
        const double done = static_cast<double>(k - b + 1) / static_cast<double>(e - b);
        const double el = seconds_since(t0);
        std::fprintf(stderr, "tokenizer train: counting %.0f%% of %zu sentences, %.1fs, ETA %.0fs\n", 100 * done, chosen.size(), el,
                     el * (1 - done) / done);
      }
      const std::string_view line = sentences[chosen[k]];
      local_bytes[static_cast<size_t>(t)] += static_cast<int64_t>(line.size());
      const std::string s = norm.normalize_for_model(line);
      pts.clear();
      pre.split(s, pts);
      for (const auto& p : pts) {
        if (p.user_defined) continue;
        const std::string_view w(s.data() + p.begin, p.end - p.begin);
        if (auto it = m.find(w); it != m.end())
          it->second++;
        else
          m.emplace(std::string(w), 1);
      }
      local_pretokens[static_cast<size_t>(t)] += static_cast<int64_t>(pts.size());
    }
  });
  WordMap words = std::move(local[0]);
  for (size_t t = 1; t < local.size(); t++) {
    for (auto& [w, c] : local[t]) words[w] += c;
    local[t] = WordMap();
  }
  for (int t = 0; t < T; t++) st.pretokens += local_pretokens[static_cast<size_t>(t)], st.bytes_used += local_bytes[static_cast<size_t>(t)];
  std::vector<std::pair<std::string, int64_t>> sorted_words(words.begin(), words.end());
  words = WordMap();
  std::sort(sorted_words.begin(), sorted_words.end());
  st.distinct_pretokens = static_cast<int64_t>(sorted_words.size());

  // 2. Alphabet: most frequent characters covering character_coverage; ▁ always.
  std::unordered_map<char32_t, int64_t> char_count;
  int64_t total_chars = 0;
  for (const auto& [w, c] : sorted_words)
    for (size_t i = 0; i < w.size();) {
      int len;
      char_count[decode_utf8(w.data() + i, &len)] += c;
      total_chars += c;
      i += static_cast<size_t>(len);
    }
  std::vector<std::pair<char32_t, int64_t>> chars(char_count.begin(), char_count.end());
  std::sort(chars.begin(), chars.end(), [](const auto& x, const auto& y) { return x.second != y.second ? x.second > y.second : x.first < y.first; });
  std::vector<std::pair<char32_t, int64_t>> alphabet;
  int64_t covered = 0;
  for (const auto& ch : chars) {
    if (ch.first != 0x2581 && total_chars > 0 && static_cast<double>(covered) / static_cast<double>(total_chars) >= opt.character_coverage) continue;
    alphabet.push_back(ch);
    covered += ch.second;
  }
  st.alphabet = static_cast<int64_t>(alphabet.size());
  st.chars_dropped = static_cast<int64_t>(chars.size() - alphabet.size());

  // Meta pieces first (their texts may not be learned again).
  Vocab v;
  v.normalizer = opt.normalizer;
  v.pretok = opt.pretok;
  v.byte_fallback = opt.byte_fallback;
  v.pieces.push_back({"<unk>", 0, PieceType::kUnknown});
  v.pieces.push_back({"<s>", 0, PieceType::kControl});
  v.pieces.push_back({"</s>", 0, PieceType::kControl});
  for (const auto& s : opt.control_symbols) v.pieces.push_back({s, 0, PieceType::kControl});
  for (const auto& s : opt.user_defined_symbols) v.pieces.push_back({s, 0, PieceType::kUserDefined});
  if (opt.byte_fallback)
    for (int b = 0; b < 256; b++) v.pieces.push_back({byte_piece(b), 0, PieceType::kByte});
  std::unordered_set<std::string> meta;  // texts a learned piece or character may not take again
  for (const auto& p : v.pieces)
    if (!meta.insert(p.text).second)
      throw TokenizerError("symbol '" + p.text + "' appears twice among the special, control and user-defined symbols");
  std::vector<std::string> alphabet_text;  // UTF-8 of each alphabet character
  int64_t alphabet_new = 0;
  for (const auto& ch : alphabet) {
    std::string t;
    append_utf8(t, ch.first);
    alphabet_new += !meta.count(t);
    alphabet_text.push_back(std::move(t));
  }
  const int64_t budget = opt.vocab_size - static_cast<int64_t>(v.pieces.size()) - alphabet_new;
  if (budget < 0)
    throw TokenizerError("vocab_size " + std::to_string(opt.vocab_size) + " is smaller than the " + std::to_string(v.pieces.size()) +
                         " special and byte pieces plus the " + std::to_string(alphabet_new) +
                         " characters kept (raise vocab_size or lower character_coverage)");

  // 3. Words as symbol sequences; characters outside the alphabet split words.
  std::unordered_map<char32_t, int32_t> char_id;
  for (size_t k = 0; k < alphabet.size(); k++) char_id.emplace(alphabet[k].first, static_cast<int32_t>(k));
  Merger merger(alphabet_text, std::vector<int32_t>(alphabet.size(), 1), opt.pretok.max_piece_chars);
  {
    std::vector<int32_t> syms;
    for (const auto& [w, c] : sorted_words) {
      syms.clear();
      for (size_t i = 0; i < w.size();) {
        int len;
        const char32_t cp = decode_utf8(w.data() + i, &len);
        i += static_cast<size_t>(len);
        if (auto it = char_id.find(cp); it != char_id.end()) {
          syms.push_back(it->second);
        } else {
          merger.add_word(syms, c);
          syms.clear();
        }
      }
      merger.add_word(syms, c);
    }
  }
  sorted_words.clear();
  sorted_words.shrink_to_fit();
  merger.count_pairs(T);
  st.seconds_count = seconds_since(t0);

  // 4. Merge loop.
  const auto t1 = Clock::now();
  std::vector<std::string> learned;
  auto last_report = t1;
  while (static_cast<int64_t>(learned.size()) < budget) {
    int32_t a, b;
    int64_t count;
    if (!merger.best(opt.min_pair_count, &a, &b, &count)) {
      st.vocab_short = true;
      break;
    }
    auto [s, fresh] = merger.merge(a, b);
    st.merges++;
    if (opt.verify_counts) merger.verify();
    if (fresh && !meta.count(merger.text(s))) learned.push_back(merger.text(s));
    if (opt.progress && seconds_since(last_report) > 1.0) {
      last_report = Clock::now();
      const double done = static_cast<double>(learned.size()) / static_cast<double>(budget);
      const double el = seconds_since(t1);
      std::fprintf(stderr, "tokenizer train: merges %zu/%lld (%.0f%%), last count %lld, %.1fs, ETA %.0fs\n", learned.size(),
                   static_cast<long long>(budget), 100 * done, static_cast<long long>(count), el, done > 0 ? el * (1 - done) / done : 0.0);
    }
  }
  st.seconds_merge = seconds_since(t1);

  // 5. Vocabulary: merges by rank (score -rank), then characters by frequency.
  float score = 0;
  for (auto& t : learned) v.pieces.push_back({std::move(t), score--, PieceType::kNormal});
  for (auto& t : alphabet_text)
    if (!meta.count(t)) v.pieces.push_back({std::move(t), score--, PieceType::kNormal});
  if (stats_out) *stats_out = st;
  return v;
}

}  // namespace ssiat::tokenizer
