// SentencePiece model file, precompiled charsmap and Hugging Face tokenizer.json.
//
// Referees: hand-computed protobuf bytes; libsentencepiece 0.1.97 (Debian) loading our .model and
// encoding strings whose ids were worked out by hand from SentencePiece's BPE rule (merge the
// adjacent pair whose joined piece scores best, leftmost on ties; unknown characters become
// <0xXX> byte pieces); libsentencepiece's normalizer running our charsmap compared with utf8proc's
// NFC/NFKC; a naive std::map longest-match over the rules; Python `tokenizers` loading our
// tokenizer.json and giving the same ids as libsentencepiece.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <stdlib.h>
#include <utf8proc.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/charsmap.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/protobuf_wire.h"
#include "tokenizer/spm_model.h"
#include "tokenizer/vocab.h"

using namespace ssiat::tokenizer;

namespace {

const std::string kWs = "\xE2\x96\x81";  // ▁

std::string byte_piece(int b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
  return buf;
}

// ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then merges and characters.
constexpr int kByte0 = 3;
constexpr int kWsA = 259, kAB = 260, kWsAB = 261, kBC = 262, kAA = 263, kWsChar = 264, kA = 265, kB = 266, kC = 267,
              kHan = 268;

Vocab tiny_vocab(NormForm form = NormForm::kIdentity) {
  Vocab v;
  v.pieces.push_back({"<unk>", 0, PieceType::kUnknown});
  v.pieces.push_back({"<s>", 0, PieceType::kControl});
  v.pieces.push_back({"</s>", 0, PieceType::kControl});
  for (int b = 0; b < 256; ++b) v.pieces.push_back({byte_piece(b), 0, PieceType::kByte});
  const std::vector<std::string> rest = {kWs + "a", "ab", kWs + "ab", "bc", "aa", kWs, "a", "b", "c", "\xED\x95\x9C" /*한*/};
  for (size_t i = 0; i < rest.size(); ++i) v.pieces.push_back({rest[i], -static_cast<float>(i + 1), PieceType::kNormal});
  v.normalizer.form = form;
  return v;
}

std::string write_model(const Vocab& v) { return write_spm_model(v, spm_trainer_spec_for(v)); }

std::unique_ptr<sentencepiece::SentencePieceProcessor> load(const std::string& model) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->LoadFromSerializedProto(model);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return sp;
}

std::vector<int> spm_ids(const sentencepiece::SentencePieceProcessor& sp, const std::string& s) {
  std::vector<int> ids;
  const auto status = sp.Encode(s, &ids);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return ids;
}

// SentencePiece's normalized text: its pieces concatenated, byte pieces turned back into bytes.
std::string spm_normalized(const sentencepiece::SentencePieceProcessor& sp, const std::string& s) {
  std::string out;
  for (int id : spm_ids(sp, s)) {
    if (sp.IsByte(id)) out.push_back(static_cast<char>(std::stoi(sp.IdToPiece(id).substr(3, 2), nullptr, 16)));
    else out += sp.IdToPiece(id);
  }
  return out;
}

std::string utf8proc_norm(const std::string& s, int options) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()), &out,
                              static_cast<utf8proc_option_t>(options));
  EXPECT_GE(n, 0);
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  free(out);
  return r;
}

// What SentencePiece should produce with add_dummy_prefix and no whitespace removal.
std::string escaped(const std::string& normalized) {
  if (normalized.empty()) return "";
  std::string out = kWs;
  for (char c : normalized) {
    if (c == ' ') out += kWs; else out.push_back(c);
  }
  return out;
}

// Naive longest match over a rule map.
std::optional<std::pair<size_t, std::string>> naive_longest(const std::map<std::string, std::string>& rules, std::string_view in) {
  for (size_t len = in.size(); len > 0; --len) {
    auto it = rules.find(std::string(in.substr(0, len)));
    if (it != rules.end()) return std::make_pair(len, it->second);
  }
  return std::nullopt;
}

std::filesystem::path fresh_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "ssiat_spm_XXXXXX").string();
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Protobuf wire format and ModelProto round trip.

TEST(ProtobufWire, KnownBytes) {
  // SentencePiece {piece "a", score 0.5, type NORMAL}: 0A 01 61 | 15 00 00 00 3F | 18 01.
  std::string m;
  wire::put_bytes(m, 1, "a");
  wire::put_float(m, 2, 0.5f);
  wire::put_int32(m, 3, 1);
  EXPECT_EQ(m, std::string("\x0A\x01" "a" "\x15\x00\x00\x00\x3F\x18\x01", 10));
  // int32 -1 (pad_id = 43): key 43<<3 = 344 = D8 02, then ten bytes FF..FF 01.
  std::string n;
  wire::put_int32(n, 43, -1);
  EXPECT_EQ(n, std::string("\xD8\x02\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01", 12));
  // 300 = AC 02.
  std::string k;
  wire::put_uint64(k, 11, 300);
  EXPECT_EQ(k, std::string("\x58\xAC\x02", 3));
}

TEST(SpmModel, RoundTrip) {
  Vocab v = tiny_vocab(NormForm::kNfc);
  v.pieces.push_back({"<sep>", 0, PieceType::kControl});
  v.pieces.push_back({"<|user|>", 0, PieceType::kUserDefined});
  v.pieces.push_back({"zz", -11.5f, PieceType::kUnused});
  v.pad_id = -1;
  v.normalizer.add_dummy_prefix = false;
  v.normalizer.remove_extra_whitespaces = true;
  SpmTrainerSpec t = spm_trainer_spec_for(v);
  t.input = {"a.txt", "b.txt"};
  t.model_prefix = "m";
  t.input_sentence_size = 5'000'000'000ull;
  t.character_coverage = 0.9999f;
  t.split_by_unicode_script = false;
  t.num_threads = 3;
  EXPECT_EQ(t.control_symbols, std::vector<std::string>{"<sep>"});
  EXPECT_EQ(t.user_defined_symbols, std::vector<std::string>{"<|user|>"});

  const SpmModel m = parse_spm_model(write_spm_model(v, t));
  EXPECT_EQ(m.pieces, v.pieces);
  EXPECT_TRUE(m.has_trainer_spec);
  EXPECT_EQ(m.trainer, t);
  EXPECT_EQ(m.normalizer.name, "nfc");
  EXPECT_EQ(m.normalizer.precompiled_charsmap, build_charsmap(charsmap_rules(NormForm::kNfc)));
  EXPECT_FALSE(m.normalizer.add_dummy_prefix);
  EXPECT_TRUE(m.normalizer.remove_extra_whitespaces);
  EXPECT_TRUE(m.normalizer.escape_whitespaces);

  Vocab id = tiny_vocab(NormForm::kIdentity);
  const SpmModel mi = parse_spm_model(write_model(id));
  EXPECT_EQ(mi.normalizer.name, "identity");
  EXPECT_TRUE(mi.normalizer.precompiled_charsmap.empty());
}

TEST(SpmModel, ParseSkipsUnknownFieldsAndUsesProtoDefaults) {
  std::string bytes;
  std::string piece;
  wire::put_bytes(piece, 1, "x");
  wire::put_uint64(piece, 77, 5);           // unknown varint field
  wire::put_bytes(bytes, 1, piece);         // no score, no type: 0 and NORMAL
  wire::put_bytes(bytes, 200, "extension"); // unknown length-delimited field
  wire::put_float(bytes, 201, 1.0f);        // unknown fixed32
  const SpmModel m = parse_spm_model(bytes);
  ASSERT_EQ(m.pieces.size(), 1u);
  EXPECT_EQ(m.pieces[0], (Piece{"x", 0, PieceType::kNormal}));
  EXPECT_EQ(m.trainer.model_type, 1);  // UNIGRAM is the proto default
  EXPECT_FALSE(m.trainer.byte_fallback);
  EXPECT_FALSE(m.has_normalizer_spec);
}

TEST(SpmModel, MalformedInputNamesTheOffset) {
  const std::string good = write_model(tiny_vocab());
  try {
    parse_spm_model(good.substr(0, good.size() - 3));
    FAIL() << "truncated model parsed";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("byte "), std::string::npos) << e.what();
  }
  // A piece with type 9 at a known offset: piece message starts at byte 2.
  std::string piece, bytes;
  wire::put_bytes(piece, 1, "x");
  wire::put_int32(piece, 3, 9);
  wire::put_bytes(bytes, 1, piece);
  try {
    parse_spm_model(bytes);
    FAIL() << "bad piece type accepted";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("at byte 5"), std::string::npos) << e.what();  // 2 + 3 bytes of "x" field
  }
  EXPECT_THROW(parse_spm_model(std::string("\x0A\xFF", 2)), TokenizerError);  // truncated length varint
  EXPECT_THROW(parse_spm_model(std::string("\x0B", 1)), TokenizerError);      // wire type 3 (groups)
  EXPECT_THROW(parse_spm_model(std::string("\x08\x01", 2)), TokenizerError);  // pieces as a varint
}

// ---------------------------------------------------------------------------------------------
// libsentencepiece loads our model and encodes as SentencePiece BPE does.

TEST(SpmModel, LibSentencePieceReadsPieces) {
  const Vocab v = tiny_vocab();
  const auto sp_ptr = load(write_model(v));
  const auto& sp = *sp_ptr;
  ASSERT_EQ(sp.GetPieceSize(), static_cast<int>(v.pieces.size()));
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    EXPECT_EQ(sp.IdToPiece(id), v.pieces[id].text);
    EXPECT_EQ(sp.GetScore(id), v.pieces[id].score);
    EXPECT_EQ(sp.IsByte(id), id >= kByte0 && id < kByte0 + 256);
    EXPECT_EQ(sp.IsControl(id), id == 1 || id == 2);
    EXPECT_EQ(sp.IsUnknown(id), id == 0);
  }
  EXPECT_EQ(sp.unk_id(), 0);
  EXPECT_EQ(sp.bos_id(), 1);
  EXPECT_EQ(sp.eos_id(), 2);
  EXPECT_EQ(sp.pad_id(), -1);
}

TEST(SpmModel, LibSentencePieceEncodesHandWorkedIds) {
  const auto sp_ptr = load(write_model(tiny_vocab()));
  const auto& sp = *sp_ptr;
  // Scores: ▁a -1, ab -2, ▁ab -3, bc -4, aa -5, ▁ -6, a -7, b -8, c -9, 한 -10.
  const std::vector<std::pair<std::string, std::vector<int>>> cases = {
      {"ab", {kWsAB}},                     // ▁ a b -> ▁a b -> ▁ab
      {"abc", {kWsAB, kC}},                // ▁a b c -> ▁ab c (no ▁abc)
      {"bca", {kWsChar, kBC, kA}},         // ▁b, ca unknown pairs; bc merges
      {"a b", {kWsA, kWsChar, kB}},        // ▁ a ▁ b: leftmost ▁a; ▁b not a piece
      {"aaa", {kWsA, kAA}},                // ▁a first (-1), then a a -> aa
      {"baaa", {kWsChar, kB, kAA, kA}},    // two aa pairs tie: leftmost wins
      {"x", {kWsChar, kByte0 + 0x78}},     // unknown char -> byte piece
      {"\xE6\xBC\xA2", {kWsChar, kByte0 + 0xE6, kByte0 + 0xBC, kByte0 + 0xA2}},  // 漢 -> 3 bytes
      {"\xED\x95\x9C" "a", {kWsChar, kHan, kA}},
      {"", {}},
  };
  for (const auto& [text, ids] : cases) EXPECT_EQ(spm_ids(sp, text), ids) << text;
}

// ---------------------------------------------------------------------------------------------
// Charsmap: our double array vs a naive map, and vs libsentencepiece's normalizer.

TEST(Charsmap, LongestMatchEqualsNaiveOnRandomRules) {
  std::mt19937 rng(1234);
  for (int round = 0; round < 20; ++round) {
    // Keys over a tiny alphabet (many shared prefixes), including bytes 0x01 and 0xFF.
    const std::string alphabet = std::string("ab\x01\xFF\xE1\x84", 6);
    std::map<std::string, std::string> rules;
    const int num_rules = 1 + static_cast<int>(rng() % 300);
    for (int i = 0; i < num_rules; ++i) {
      std::string k;
      const int len = 1 + static_cast<int>(rng() % 6);
      for (int j = 0; j < len; ++j) k.push_back(alphabet[rng() % alphabet.size()]);
      std::string r = "r";  // built with += : GCC 12 warns falsely (-Wrestrict) on "r" + string&&
      r += std::to_string(rng() % 50);  // shared replacements exercise the pool
      rules[k] = r;
    }
    const std::string blob = build_charsmap(CharsmapRules(rules.begin(), rules.end()));
    for (int q = 0; q < 2000; ++q) {
      std::string in;
      const int len = static_cast<int>(rng() % 9);
      for (int j = 0; j < len; ++j) in.push_back(rng() % 8 == 0 ? '\0' : alphabet[rng() % alphabet.size()]);
      const auto got = charsmap_longest_match(blob, in);
      const auto want = naive_longest(rules, in);
      ASSERT_EQ(got.has_value(), want.has_value()) << "round " << round << " input len " << in.size();
      if (got) {
        EXPECT_EQ(got->first, want->first);
        EXPECT_EQ(std::string(got->second), want->second);
      }
    }
  }
}

TEST(Charsmap, RejectsBadRules) {
  EXPECT_THROW(build_charsmap({{"", "x"}}), TokenizerError);
  EXPECT_THROW(build_charsmap({{"a", "x"}, {"a", "y"}}), TokenizerError);
  EXPECT_THROW(build_charsmap({{std::string("a\0", 2), "x"}}), TokenizerError);
  EXPECT_THROW(charsmap_longest_match("\x10\x00\x00\x00", "a"), TokenizerError);  // trie past the end
}

TEST(Charsmap, NfcRulesKnownAnswers) {
  const auto rules_vec = charsmap_rules(NormForm::kNfc);
  const std::map<std::string, std::string> rules(rules_vec.begin(), rules_vec.end());
  auto rule = [&](const std::string& k) { auto it = rules.find(k); return it == rules.end() ? std::string("<none>") : it->second; };
  EXPECT_EQ(rule("e\xCC\x81"), "\xC3\xA9");                      // e + U+0301 -> é
  EXPECT_EQ(rule("a\xCC\xA3\xCC\x82"), "\xE1\xBA\xAD");          // a U+0323 U+0302 -> ậ
  EXPECT_EQ(rule("\xE1\xBA\xA1\xCC\x82"), "\xE1\xBA\xAD");       // ạ U+0302 -> ậ
  EXPECT_EQ(rule("\xE2\x84\xAB"), "\xC3\x85");                   // U+212B -> Å
  EXPECT_EQ(rule("\xE2\x84\xA6"), "\xCE\xA9");                   // U+2126 -> Ω
  EXPECT_EQ(rule("\xEF\xA4\x80"), "\xE8\xB1\x88");               // U+F900 -> U+8C48
  EXPECT_EQ(rule("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), "\xED\x95\x9C");  // ᄒ ᅡ ᆫ -> 한
  EXPECT_EQ(rule("\xEA\xB0\x80\xE1\x86\xA8"), "\xEA\xB0\x81");   // 가 + U+11A8 -> 각
  EXPECT_EQ(rule(kWs), " ");
  EXPECT_EQ(rule("\xE3\x85\x8B"), "<none>");                     // ㅋ
  EXPECT_EQ(rule("\xEF\xBD\x88"), "<none>");                     // fullwidth h is NFC-stable
  // Hangul: 19*21 LV + 19*21*27 LVT + 19*21*27 LV+T sequences.
  size_t hangul = 0;
  for (const auto& [k, val] : rules) {
    if (val.size() == 3 && static_cast<unsigned char>(val[0]) >= 0xEA && static_cast<unsigned char>(val[0]) <= 0xED && k != kWs) {
      utf8proc_int32_t cp;
      utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(val.data()), 3, &cp);
      if (cp >= 0xAC00 && cp <= 0xD7A3) ++hangul;
    }
  }
  EXPECT_EQ(hangul, 399u + 10773u + 10773u);
}

TEST(Charsmap, EveryNfcRuleIsFoundInTheBlob) {
  const auto rules = charsmap_rules(NormForm::kNfc);
  const std::string blob = build_charsmap(rules);
  const std::map<std::string, std::string> map(rules.begin(), rules.end());
  for (const auto& [k, v] : rules) {
    const auto m = charsmap_longest_match(blob, k);
    ASSERT_TRUE(m.has_value()) << k;
    EXPECT_EQ(m->first, k.size());
    EXPECT_EQ(std::string(m->second), v);
    // and every rule's replacement is what utf8proc's NFC gives for the source.
    if (k != kWs) {
      EXPECT_EQ(v, utf8proc_norm(k, UTF8PROC_STABLE | UTF8PROC_COMPOSE)) << k;
    }
  }
  // Random byte strings built from rule pieces: blob == naive map.
  std::mt19937 rng(7);
  for (int q = 0; q < 3000; ++q) {
    std::string in;
    for (int j = 0; j < 3; ++j) {
      const std::string& k = rules[rng() % rules.size()].first;
      in += k.substr(0, 1 + rng() % k.size());
    }
    const auto got = charsmap_longest_match(blob, in);
    const auto want = naive_longest(map, in);
    ASSERT_EQ(got.has_value(), want.has_value());
    if (got) {
      EXPECT_EQ(got->first, want->first);
    }
  }
}

namespace {

std::vector<int32_t> code_points(const std::string& s) {
  std::vector<int32_t> cps;
  for (size_t i = 0; i < s.size();) {
    utf8proc_int32_t cp;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    EXPECT_GT(n, 0);
    if (n <= 0) break;
    cps.push_back(cp);
    i += static_cast<size_t>(n);
  }
  return cps;
}

std::vector<int32_t> hex_list(const std::string& field) {
  std::vector<int32_t> out;
  std::istringstream in(field);
  std::string h;
  while (in >> h) out.push_back(static_cast<int32_t>(std::stol(h, nullptr, 16)));
  return out;
}

}  // namespace

// SentencePiece's own decompiler (Darts-clone traverse over every byte at every node) lists
// exactly our rules from the blob inside our .model file.
TEST(Charsmap, SpmNormalizeDecompilesOurBlob) {
  if (std::system("command -v spm_normalize >/dev/null 2>&1") != 0) GTEST_SKIP() << "spm_normalize CLI not installed";
  for (NormForm f : {NormForm::kNfc, NormForm::kNfkc}) {
    const auto dir = fresh_temp_dir();
    write_file(dir / "m.model", write_model(tiny_vocab(f)));
    const std::string cmd = "spm_normalize --model='" + (dir / "m.model").string() + "' --decompile </dev/null >'" +
                            (dir / "rules.tsv").string() + "' 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::map<std::vector<int32_t>, std::vector<int32_t>> spm_rules, ours;
    std::ifstream tsv(dir / "rules.tsv");
    for (std::string line; std::getline(tsv, line);) {
      const size_t t1 = line.find('\t'), t2 = line.find('\t', t1 + 1);
      spm_rules[hex_list(line.substr(0, t1))] = hex_list(line.substr(t1 + 1, t2 - t1 - 1));
    }
    for (const auto& [k, v] : charsmap_rules(f)) ours[code_points(k)] = code_points(v);
    EXPECT_EQ(spm_rules.size(), ours.size()) << norm_form_name(f);
    EXPECT_TRUE(spm_rules == ours) << norm_form_name(f);
    std::filesystem::remove_all(dir);
  }
}

TEST(Charsmap, LibSentencePieceNormalizesNfc) {
  const auto sp_ptr = load(write_model(tiny_vocab(NormForm::kNfc)));
  const auto& sp = *sp_ptr;
  const std::string han = "\xED\x95\x9C";
  EXPECT_EQ(spm_normalized(sp, "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), kWs + han);
  EXPECT_EQ(spm_normalized(sp, "e\xCC\x81"), kWs + "\xC3\xA9");
  EXPECT_EQ(spm_normalized(sp, "\xE2\x84\xAB"), kWs + "\xC3\x85");
  EXPECT_EQ(spm_normalized(sp, "\xE3\x85\x8B\xE3\x85\x8B\xE3\x85\x8B"), kWs + "\xE3\x85\x8B\xE3\x85\x8B\xE3\x85\x8B");
  EXPECT_EQ(spm_normalized(sp, "a" + kWs + "b"), kWs + "a" + kWs + "b");
  // Our own reader applies the blob exactly as SentencePiece does.
  const std::string blob = parse_spm_model(write_model(tiny_vocab(NormForm::kNfc))).normalizer.precompiled_charsmap;

  // Random text of whole characters in composed, decomposed and partly composed spellings.
  const std::vector<std::string> units = {
      "a", "e", "x", " ", "  ", kWs, "\xC3\xA9" /*é*/, "e\xCC\x81", "\xE1\xBA\xAD" /*ậ*/, "a\xCC\xA3\xCC\x82",
      "a\xCC\x82\xCC\xA3", "\xE1\xBA\xA1\xCC\x82", "\xC3\xA2\xCC\xA3", "\xC3\x85", "\xE2\x84\xAB", "A\xCC\x8A",
      "\xE2\x84\xA6", "n\xCC\x83", "\xC7\x98" /*ǘ*/, "u\xCC\x88\xCC\x81", "\xC3\xBC\xCC\x81", han,
      "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", "\xED\x95\x98\xE1\x86\xAB" /*하+ᆫ*/, "\xEA\xB0\x80" /*가*/,
      "\xE1\x84\x80\xE1\x85\xA1", "\xEA\xB0\x81" /*각*/, "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x80\xE1\x86\xA8",
      "\xE3\x85\x8B" /*ㅋ*/, "\xEF\xBD\x88" /*ｈ*/, "\xE6\xBC\xA2" /*漢*/, "\xEF\xA4\x80" /*U+F900*/};
  std::mt19937 rng(42);
  for (int q = 0; q < 500; ++q) {
    std::string in;
    const int n = 1 + static_cast<int>(rng() % 8);
    for (int j = 0; j < n; ++j) in += units[rng() % units.size()];
    // ▁ in text reads as a space: NFC of the text with ▁ -> ' ', then SentencePiece's escaping.
    std::string spaced;
    for (size_t i = 0; i < in.size(); ++i) {
      if (in.compare(i, 3, kWs) == 0) { spaced += ' '; i += 2; } else spaced += in[i];
    }
    const std::string want = escaped(utf8proc_norm(spaced, UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    ASSERT_EQ(spm_normalized(sp, in), want) << "input: " << in;
    EXPECT_EQ(escaped(charsmap_apply(blob, in)), want) << "input: " << in;
  }
}

TEST(Charsmap, LibSentencePieceNormalizesNfkcButKeepsCompatJamo) {
  const auto rules_vec = charsmap_rules(NormForm::kNfkc);
  const std::map<std::string, std::string> rules(rules_vec.begin(), rules_vec.end());
  for (int32_t cp : {0x3131, 0x314B, 0x318E, 0xFFA0, 0xFFA1, 0xFFDC}) {
    utf8proc_uint8_t buf[4];
    const auto n = utf8proc_encode_char(cp, buf);
    EXPECT_EQ(rules.count(std::string(reinterpret_cast<char*>(buf), n)), 0u) << std::hex << cp;
  }
  const auto sp_ptr = load(write_model(tiny_vocab(NormForm::kNfkc)));
  const auto& sp = *sp_ptr;
  const std::string kk = "\xE3\x85\x8B\xE3\x85\x8B\xE3\x85\x8B";
  EXPECT_EQ(spm_normalized(sp, kk), kWs + kk);
  EXPECT_EQ(spm_normalized(sp, "\xEF\xBD\x88\xEF\xBD\x85\xEF\xBD\x8C\xEF\xBD\x8C\xEF\xBD\x8F"), kWs + "hello");
  EXPECT_EQ(spm_normalized(sp, "\xEF\xBE\xA1"), kWs + "\xEF\xBE\xA1");   // halfwidth ㄱ stays
  EXPECT_EQ(spm_normalized(sp, "\xE2\x91\xA0"), kWs + "1");              // ① -> 1
  EXPECT_EQ(spm_normalized(sp, "a\xE3\x80\x80" "b"), kWs + "a" + kWs + "b");  // U+3000 -> space
  EXPECT_EQ(spm_normalized(sp, "\xEF\xAC\x81"), kWs + "fi");             // ﬁ
  EXPECT_EQ(spm_normalized(sp, "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), kWs + "\xED\x95\x9C");
  // Every per-code-point rule agrees with utf8proc's NFKC.
  for (const auto& [k, v] : rules) {
    if (k != kWs) {
      ASSERT_EQ(v, utf8proc_norm(k, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT)) << k;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json: Python `tokenizers` gives the same ids as libsentencepiece.

TEST(HfJson, MergesFollowScoresThenIds) {
  const auto merges = hf_merges(tiny_vocab());
  // ▁a (▁,a); ab (a,b); ▁ab: (▁a,b) before (▁,ab) because id(▁a)=259 < id(▁)=264; bc; aa.
  const std::vector<std::pair<std::string, std::string>> want = {
      {kWs, "a"}, {"a", "b"}, {kWs + "a", "b"}, {kWs, "ab"}, {"b", "c"}, {"a", "a"}};
  EXPECT_EQ(merges, want);
}

TEST(HfJson, LayoutAndKeyOrder) {
  const auto j = nlohmann::ordered_json::parse(write_hf_tokenizer_json(tiny_vocab(NormForm::kNfc)));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"version", "truncation", "padding", "added_tokens", "normalizer",
                                            "pre_tokenizer", "post_processor", "decoder", "model"}));
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["vocab"][kWs + "ab"], kWsAB);
  EXPECT_EQ(j["model"]["vocab"].size(), 269u);
  EXPECT_EQ(j["added_tokens"].size(), 3u);
  EXPECT_EQ(j["normalizer"]["normalizers"][0]["type"], "NFC");
}

namespace {

// Ids from Python tokenizers for each input; nullopt when `tokenizers` is not importable.
std::optional<std::vector<std::vector<int>>> hf_ids(const std::filesystem::path& dir, const std::string& json,
                                                    const std::vector<std::string>& inputs) {
  if (std::system("python3 -c 'import tokenizers' >/dev/null 2>&1") != 0) return std::nullopt;
  write_file(dir / "tokenizer.json", json);
  write_file(dir / "inputs.json", nlohmann::json(inputs).dump());
  write_file(dir / "run.py",
             "import json, sys, tokenizers\n"
             "d = sys.argv[1]\n"
             "tok = tokenizers.Tokenizer.from_file(d + '/tokenizer.json')\n"
             "inputs = json.load(open(d + '/inputs.json', encoding='utf-8'))\n"
             "out = [tok.encode(s, add_special_tokens=False).ids for s in inputs]\n"
             "json.dump(out, open(d + '/out.json', 'w'))\n");
  const std::string cmd = "python3 '" + (dir / "run.py").string() + "' '" + dir.string() + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(dir / "out.json");
  return nlohmann::json::parse(f).get<std::vector<std::vector<int>>>();
}

void expect_hf_equals_spm(const Vocab& v, const std::vector<std::string>& inputs) {
  const auto dir = fresh_temp_dir();
  const auto sp_ptr = load(write_model(v));
  const auto& sp = *sp_ptr;
  const auto hf = hf_ids(dir, write_hf_tokenizer_json(v), inputs);
  if (!hf) GTEST_SKIP() << "python3 cannot import tokenizers";
  ASSERT_EQ(hf->size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) EXPECT_EQ((*hf)[i], spm_ids(sp, inputs[i])) << "input " << i << ": " << inputs[i];
  std::filesystem::remove_all(dir);
}

const std::vector<std::string> kHfInputs = {
    "ab", "abc", "bca", "a b", "aaa", "baaa", "x", "\xE6\xBC\xA2", "\xED\x95\x9C" "a", "", "  a  b ", " ", "a" + kWs + "b",
    "e\xCC\x81", "\xE2\x84\xAB" "ab", "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB" "ab", "\xE3\x85\x8B\xE3\x85\x8B",
    "\xEF\xBD\x88\xEF\xBD\x81", "\xE2\x91\xA0 ab\xE3\x80\x80" "c", "abc\tab\nab", "a\n b \n  c "};

}  // namespace

TEST(HfJson, PythonTokenizersMatchesLibSentencePieceNfc) { expect_hf_equals_spm(tiny_vocab(NormForm::kNfc), kHfInputs); }

TEST(HfJson, PythonTokenizersMatchesLibSentencePieceNfkc) {
  expect_hf_equals_spm(tiny_vocab(NormForm::kNfkc), kHfInputs);
}

TEST(HfJson, PythonTokenizersMatchesLibSentencePieceIdentityRemoveSpaces) {
  Vocab v = tiny_vocab(NormForm::kIdentity);
  v.normalizer.remove_extra_whitespaces = true;
  expect_hf_equals_spm(v, kHfInputs);
  v.normalizer.add_dummy_prefix = false;
  expect_hf_equals_spm(v, kHfInputs);
}
