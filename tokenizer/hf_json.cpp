// Hugging Face tokenizer.json writer (contract in hf_json.h).
#include "tokenizer/hf_json.h"

#include <openssl/evp.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>
#include <unordered_map>

#include "tokenizer/charsmap.h"

namespace ssiat::tokenizer {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kSpaceSymbol = "\xE2\x96\x81";  // ▁

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Json replace_string(const std::string& from, const std::string& to) {
  return Json{{"type", "Replace"}, {"pattern", {{"String", from}}}, {"content", to}};
}
Json replace_regex(const std::string& from, const std::string& to) {
  return Json{{"type", "Replace"}, {"pattern", {{"Regex", from}}}, {"content", to}};
}

Json normalizer_json(const NormalizerConfig& n) {
  Json steps = Json::array();
  if (n.form == NormForm::kNfkc) {
    const std::string blob = build_charsmap(charsmap_rules(NormForm::kNfkc, CharsmapRuleSet::kCodePointsOnly));
    steps.push_back(Json{{"type", "Precompiled"}, {"precompiled_charsmap", base64(blob)}});
  }
  if (n.form != NormForm::kIdentity) steps.push_back(Json{{"type", "NFC"}});
  steps.push_back(replace_string(kSpaceSymbol, " "));
  if (n.remove_extra_whitespaces) {
    steps.push_back(replace_regex("\\A +", ""));  // \A, \z: Onig's ^ and $ would also match at newlines
    steps.push_back(replace_regex(" +\\z", ""));
    steps.push_back(replace_regex(" {2,}", " "));
  }
  if (n.add_dummy_prefix) steps.push_back(Json{{"type", "Prepend"}, {"prepend", kSpaceSymbol}});
  steps.push_back(replace_string(" ", kSpaceSymbol));
  return Json{{"type", "Sequence"}, {"normalizers", steps}};
}

Json decoder_json(const NormalizerConfig& n) {
  Json steps = Json::array();
  steps.push_back(replace_string(kSpaceSymbol, " "));
  steps.push_back(Json{{"type", "ByteFallback"}});
  steps.push_back(Json{{"type", "Fuse"}});
  if (n.add_dummy_prefix) steps.push_back(Json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  return Json{{"type", "Sequence"}, {"decoders", steps}};
}

Json added_tokens_json(const Vocab& v) {
  Json tokens = Json::array();
  for (size_t id = 0; id < v.pieces.size(); ++id) {
    const Piece& p = v.pieces[id];
    if (p.type != PieceType::kUnknown && p.type != PieceType::kControl && p.type != PieceType::kUserDefined) continue;
    tokens.push_back(Json{{"id", id}, {"content", p.text}, {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", false}, {"special", p.type != PieceType::kUserDefined}});
  }
  return tokens;
}

// Byte lengths of the UTF-8 characters of s (a lead byte starts a character).
std::vector<size_t> char_boundaries(const std::string& s) {
  std::vector<size_t> at;
  for (size_t i = 1; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) at.push_back(i);
  }
  return at;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> hf_merges(const Vocab& v) {
  std::unordered_map<std::string_view, size_t> id_of;
  for (size_t id = 0; id < v.pieces.size(); ++id) id_of.emplace(v.pieces[id].text, id);
  std::vector<size_t> order(v.pieces.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v.pieces[a].score > v.pieces[b].score; });

  std::vector<std::pair<std::string, std::string>> merges;
  for (size_t id : order) {
    const std::string& text = v.pieces[id].text;
    std::vector<std::pair<size_t, size_t>> local;  // (left id, right id)
    for (size_t cut : char_boundaries(text)) {
      const auto l = id_of.find(std::string_view(text).substr(0, cut));
      const auto r = id_of.find(std::string_view(text).substr(cut));
      if (l != id_of.end() && r != id_of.end()) local.emplace_back(l->second, r->second);
    }
    std::sort(local.begin(), local.end());
    for (const auto& [l, r] : local) merges.emplace_back(v.pieces[l].text, v.pieces[r].text);
  }
  return merges;
}

std::string write_hf_tokenizer_json(const Vocab& v) {
  if (v.unk_id < 0 || v.unk_id >= static_cast<int32_t>(v.pieces.size()))
    throw TokenizerError("tokenizer.json: unk_id " + std::to_string(v.unk_id) + " is not a piece");
  Json vocab = Json::object();
  for (size_t id = 0; id < v.pieces.size(); ++id) {
    if (vocab.contains(v.pieces[id].text)) throw TokenizerError("tokenizer.json: piece \"" + v.pieces[id].text + "\" repeats (id " + std::to_string(id) + ")");
    vocab[v.pieces[id].text] = id;
  }
  Json merges = Json::array();
  for (auto& [l, r] : hf_merges(v)) merges.push_back(Json::array({l, r}));

  Json model{{"type", "BPE"},
             {"dropout", nullptr},
             {"unk_token", v.pieces[v.unk_id].text},
             {"continuing_subword_prefix", nullptr},
             {"end_of_word_suffix", nullptr},
             {"fuse_unk", true},
             {"byte_fallback", v.byte_fallback},
             {"ignore_merges", false},
             {"vocab", std::move(vocab)},
             {"merges", std::move(merges)}};
  Json root{{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added_tokens_json(v)},
            {"normalizer", normalizer_json(v.normalizer)},
            {"pre_tokenizer", nullptr},
            {"post_processor", nullptr},
            {"decoder", decoder_json(v.normalizer)},
            {"model", std::move(model)}};
  return root.dump(2) + "\n";
}

}  // namespace ssiat::tokenizer
