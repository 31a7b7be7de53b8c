// BPE trainer, normaliser, pre-tokeniser and encoder: a merge list worked out by hand, the
// round-trip property on random text, invalid UTF-8, thread independence, and libsentencepiece
// (Debian 0.1.97) as the referee for ids on Korean text.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <utf8proc.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "tokenizer/bpe.h"
#include "tokenizer/file_io.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/spm_model.h"
#include "tokenizer/utf8.h"

namespace ssiat::tokenizer {
namespace {

const std::string kSp = "\xE2\x96\x81";  // ▁

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

std::vector<std::string_view> views(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

std::vector<std::string> pieces_of(const BpeTokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(t.vocab().pieces[static_cast<size_t>(id)].text);
  return out;
}

// Sennrich et al.'s example corpus. Worked by hand: character ids by falling frequency, then
// code point (e 17, w 16, ▁ 16, s 9, t 9, l 7, o 7, n 6, d 3, i 3, r 2); each step takes the
// most frequent pair, then the shorter joined piece, then the smaller (left, right) ids.
TEST(BpeTrainer, MergeListWorkedByHand) {
  std::vector<std::string> lines = {"low low low low low", "lower lower", "newest newest newest newest newest newest",
                                    "widest widest widest"};
  BpeTrainOptions opt;
  opt.vocab_size = 400;
  opt.character_coverage = 1.0;
  BpeTrainStats st;
  const Vocab v = train_bpe(views(lines), opt, &st);
  EXPECT_TRUE(st.vocab_short);
  std::vector<std::string> learned;
  for (const auto& p : v.pieces)
    if (p.type == PieceType::kNormal) learned.push_back(p.text);
  const std::vector<std::string> expect = {"es", "est", kSp + "l", "ow", kSp + "low", "ew", kSp + "n", kSp + "new",
                                           kSp + "newest", "wi", kSp + "wi", "dest", kSp + "widest", "er", kSp + "lower",
                                           "e", "w", kSp, "s", "t", "l", "o", "n", "d", "i", "r"};
  EXPECT_EQ(learned, expect);
  ASSERT_EQ(v.pieces.size(), 3u + 256u + expect.size());
  EXPECT_EQ(v.pieces[3].text, "<0x00>");
  EXPECT_EQ(v.pieces[259].score, 0.0f);
  EXPECT_EQ(v.pieces[260].score, -1.0f);

  // SentencePiece semantics by hand: "lowest" -> es (best score), est, ▁l, ow, ▁low -> ▁low|est.
  const BpeTokenizer tok(v);
  EXPECT_EQ(pieces_of(tok, tok.encode("lowest")), (std::vector<std::string>{kSp + "low", "est"}));
  EXPECT_EQ(pieces_of(tok, tok.encode("newer")), (std::vector<std::string>{kSp + "new", "er"}));
  // Unknown character: byte fallback.
  EXPECT_EQ(pieces_of(tok, tok.encode("z")), (std::vector<std::string>{kSp, "<0x7A>"}));
  EXPECT_EQ(tok.decode(tok.encode("lowest newer z")), "lowest newer z");
}

TEST(PreTokenizer, ScriptDigitAndSpaceBoundaries) {
  const PreTokenizer pre(PretokConfig{}, {"<sep>"});
  const std::string s = kSp + "한국어abc" + kSp + kSp + "12.5%<sep>" + kSp + "ㅋㅋ";
  std::vector<PreToken> pts;
  pre.split(s, pts);
  std::vector<std::string> got;
  for (const auto& p : pts) got.push_back(s.substr(p.begin, p.end - p.begin) + (p.user_defined ? "*" : ""));
  EXPECT_EQ(got, (std::vector<std::string>{kSp + "한국어", "abc", kSp + kSp + "12.5%", "<sep>*", kSp + "ㅋㅋ"}));
  PretokConfig digits;
  digits.split_digits = true;
  const PreTokenizer pre2(digits);
  pts.clear();
  const std::string d = kSp + "123.4";
  pre2.split(d, pts);
  EXPECT_EQ(pts.size(), 5u);  // ▁1 2 3 . 4
}

TEST(Normalizer, NfcFastPathMatchesUtf8proc) {
  // Random strings over code points that exercise composition; our NFC (fast path + runs) must
  // equal utf8proc's whole-string NFC.
  std::mt19937 rng(7);
  const std::vector<char32_t> pool = {'a', 'e', 'A', ' ', '1', 0x0301, 0x0323, 0x0302, 0x0308, 0x00E9, 0x1100, 0x1112, 0x1161,
                                      0x1175, 0x11A8, 0x11AB, 0xAC00, 0xD55C, 0x212B, 0x2126, 0xF900, 0x3131, 0x314B,
                                      0x0F73, 0x0B47, 0x0B3E, 0x1E0B, 0x0327, 0x1F600, 0x2581};
  const Normalizer nfc(NormalizerConfig{});
  for (int it = 0; it < 3000; it++) {
    std::string s;
    const int n = static_cast<int>(rng() % 12);
    for (int k = 0; k < n; k++) append_utf8(s, pool[rng() % pool.size()]);
    char* ref = reinterpret_cast<char*>(utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str())));
    ASSERT_NE(ref, nullptr);
    EXPECT_EQ(nfc.unicode_normalize(s), std::string(ref)) << s;
    std::free(ref);
  }
  // Decomposed Hangul composes; compatibility jamo are untouched by NFC.
  EXPECT_EQ(nfc.unicode_normalize("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), "한");
  EXPECT_EQ(nfc.unicode_normalize("ㅋㅋㅋ"), "ㅋㅋㅋ");
}

TEST(Normalizer, NfkcKeepsCompatibilityJamo) {
  NormalizerConfig cfg;
  cfg.form = NormForm::kNfkc;
  const Normalizer nfkc(cfg);
  EXPECT_EQ(nfkc.unicode_normalize("ㅋㅋㅋ ｈｅｌｌｏ ①"), "ㅋㅋㅋ hello 1");
  EXPECT_EQ(nfkc.unicode_normalize("ﾡ"), "ﾡ");  // halfwidth Hangul kept too
}

TEST(Normalizer, WhitespaceRules) {
  NormalizerConfig cfg;
  const Normalizer keep(cfg);
  EXPECT_EQ(keep.normalize_for_model("  a  b "), kSp + kSp + kSp + "a" + kSp + kSp + "b" + kSp);
  EXPECT_EQ(keep.normalize("a" + kSp + "b"), "a b");  // a literal ▁ reads as a space
  EXPECT_EQ(keep.normalize_for_model(""), "");
  cfg.remove_extra_whitespaces = true;
  const Normalizer squeeze(cfg);
  EXPECT_EQ(squeeze.normalize_for_model("  a  b "), kSp + "a" + kSp + "b");
  EXPECT_EQ(squeeze.normalize_for_model("   "), "");
  cfg.add_dummy_prefix = false;
  EXPECT_EQ(Normalizer(cfg).normalize_for_model("a b"), "a" + kSp + "b");
}

TEST(Normalizer, InvalidUtf8RefusedWithOffsetOrReplaced) {
  const Normalizer strict(NormalizerConfig{});
  try {
    (void)strict.normalize_for_model("ab\xFF" "cd");
    FAIL() << "no error";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("byte offset 2"), std::string::npos) << e.what();
  }
  NormalizerConfig cfg;
  cfg.replace_invalid_utf8 = true;
  EXPECT_EQ(Normalizer(cfg).normalize("ab\xFF\xE3\x80" "cd"), "ab\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "cd");
}

// Random valid UTF-8 drawn from pools that mix scripts, digits, spaces, marks and rare characters.
std::string random_text(std::mt19937& rng, int max_len) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {'a', 'z'}, {'0', '9'}, {' ', ' '}, {' ', ' '}, {0xAC00, 0xD7A3}, {0xAC00, 0xAC20}, {0x1100, 0x1112}, {0x1161, 0x1175},
      {0x11A8, 0x11C2}, {0x3131, 0x318E}, {0x0300, 0x0310}, {0x00C0, 0x00FF}, {0x4E00, 0x4E20}, {'!', '/'}, {0x2581, 0x2581},
      {0x1F600, 0x1F610}, {0x0001, 0x001F}, {0x3000, 0x3010}, {0xFF01, 0xFF5E}, {0x0E00, 0x0E30}};
  std::string s;
  const int n = static_cast<int>(rng() % static_cast<unsigned>(max_len + 1));
  for (int k = 0; k < n; k++) {
    const auto& r = ranges[rng() % ranges.size()];
    append_utf8(s, r.first + static_cast<char32_t>(rng() % (r.second - r.first + 1)));
  }
  return s;
}

class RoundTrip : public ::testing::TestWithParam<int> {};

TEST_P(RoundTrip, DecodeOfEncodeIsNormalizedText) {
  std::mt19937 rng(100 + GetParam());
  BpeTrainOptions opt;
  opt.vocab_size = 1200;
  opt.character_coverage = 0.98;  // random rare characters go to byte fallback
  opt.threads = 2;
  switch (GetParam()) {
    case 1: opt.normalizer.form = NormForm::kNfkc, opt.normalizer.remove_extra_whitespaces = true, opt.pretok.split_digits = true; break;
    case 2: opt.normalizer.form = NormForm::kIdentity, opt.normalizer.add_dummy_prefix = false; break;
    case 3: opt.user_defined_symbols = {"<sep>", "<|user|>"}, opt.control_symbols = {"<pad>"}; break;
    default: break;
  }
  std::vector<std::string> corpus = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt");
  for (int i = 0; i < 300; i++) corpus.push_back(random_text(rng, 30) + (GetParam() == 3 ? "<sep>" : ""));
  const BpeTokenizer tok(train_bpe(views(corpus), opt));
  for (int i = 0; i < 3000; i++) {
    std::string x = random_text(rng, 40);
    if (GetParam() == 3 && i % 3 == 0) x += "<|user|>" + random_text(rng, 5) + "<sep>";
    const auto ids = tok.encode(x);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok.vocab_size());
    ASSERT_EQ(tok.decode(ids), tok.normalizer().normalize(x)) << "input: " << x;
    ASSERT_EQ(ids, tok.encode_whole(tok.normalizer().normalize_for_model(x))) << "input: " << x;
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, RoundTrip, ::testing::Values(0, 1, 2, 3));

TEST(BpeTrainer, SameVocabularyAndIdsForAnyThreadCount) {
  const auto corpus = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt");
  BpeTrainOptions opt;
  opt.vocab_size = 1500;
  opt.threads = 1;
  const Vocab v1 = train_bpe(views(corpus), opt);
  opt.threads = 3;
  const Vocab v3 = train_bpe(views(corpus), opt);
  EXPECT_EQ(v1, v3);
  const BpeTokenizer tok(v1);
  const auto held = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_heldout.txt");
  const auto a = tok.encode_batch(views(held), 1);
  const auto b = tok.encode_batch(views(held), 4);
  EXPECT_EQ(a, b);
  for (size_t i = 0; i < held.size(); i++) EXPECT_EQ(a[i], tok.encode(held[i]));
}

// The incremental pair counts equal a recount from scratch after every merge, on Korean text
// and on repetitive text where a pair overlaps itself ("ㅋㅋㅋㅋ", "aaaa").
TEST(BpeTrainer, IncrementalCountsEqualRecountAfterEveryMerge) {
  auto corpus = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt");
  corpus.resize(300);
  corpus.push_back("ㅋㅋㅋㅋㅋㅋㅋ aaaaaaa ababab 1111 ㅋㅋ ㅋㅋㅋ aaa abab");
  corpus.push_back("ㅋㅋㅋㅋㅋ aaaaa bababa 111 ...... !!!!");
  BpeTrainOptions opt;
  opt.vocab_size = 1400;
  opt.verify_counts = true;
  BpeTrainStats st;
  EXPECT_NO_THROW(train_bpe(views(corpus), opt, &st));
  EXPECT_GT(st.merges, 300);
}

TEST(BpeTrainer, SamplingCapIsSeededAndExact) {
  const auto corpus = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt");
  BpeTrainOptions opt;
  opt.vocab_size = 800;
  opt.max_sentences = 200;
  opt.sample_seed = 11;
  BpeTrainStats st;
  const Vocab a = train_bpe(views(corpus), opt, &st);
  EXPECT_EQ(st.sentences_used, 200);
  EXPECT_EQ(st.sentences_total, static_cast<int64_t>(corpus.size()));
  EXPECT_EQ(a, train_bpe(views(corpus), opt));
  opt.sample_seed = 12;
  EXPECT_NE(a, train_bpe(views(corpus), opt));
}

TEST(BpeTrainer, RefusesTooSmallVocabulary) {
  const auto corpus = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt");
  BpeTrainOptions opt;
  opt.vocab_size = 300;
  opt.character_coverage = 1.0;
  EXPECT_THROW(train_bpe(views(corpus), opt), TokenizerError);
}

// libsentencepiece loads our tokenizer.model and gives our ids (and our decoding) line by line.
void expect_spm_agrees(const BpeTokenizer& tok, const std::vector<std::string>& lines) {
  sentencepiece::SentencePieceProcessor sp;
  const std::string model = write_spm_model(tok.vocab(), spm_trainer_spec_for(tok.vocab()));
  const auto status = sp.LoadFromSerializedProto(model);
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(sp.GetPieceSize(), tok.vocab_size());
  size_t same = 0;
  for (const auto& line : lines) {
    std::vector<int> ref;
    ASSERT_TRUE(sp.Encode(line, &ref).ok());
    const auto ours = tok.encode(line);
    const bool eq = std::vector<int32_t>(ref.begin(), ref.end()) == ours;
    same += eq;
    EXPECT_TRUE(eq) << "line: " << line;
    std::string text;
    ASSERT_TRUE(sp.Decode(ref, &text).ok());
    if (!line.empty() && line[0] != ' ') {
      EXPECT_EQ(text, tok.decode(ours)) << "line: " << line;
    }
  }
  EXPECT_EQ(same, lines.size());
}

TEST(SentencePieceReferee, SameIdsOnKoreanText) {
  const auto corpus = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt");
  BpeTrainOptions opt;
  opt.vocab_size = 2000;
  const BpeTokenizer tok(train_bpe(views(corpus), opt));
  EXPECT_TRUE(tok.pretokenized());
  auto lines = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_heldout.txt");
  // Decomposed Hangul (normalised by the charsmap), compatibility jamo, a long unspaced run (the
  // heap path), rare characters (byte fallback) and runs of spaces.
  lines.push_back("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB\xE1\x84\x80\xE1\x85\xAE\xE1\x86\xA8 어 ㅋㅋㅋ");
  std::string longrun;
  for (int i = 0; i < 40; i++) longrun += "대화상자";
  lines.push_back(longrun);
  lines.push_back("鬱 😀 Å Ω é e\xCC\x81 — ①  두  칸   띄움");
  lines.push_back("LibreOffice 7.4: 123,456.78% (테스트)");
  expect_spm_agrees(tok, lines);
}

TEST(SentencePieceReferee, SameIdsWithNfkcSplitDigitsAndUserSymbols) {
  auto corpus = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt");
  for (size_t i = 0; i < corpus.size(); i += 5) corpus[i] += "<sep>";
  BpeTrainOptions opt;
  opt.vocab_size = 1500;
  opt.normalizer.form = NormForm::kNfkc;
  opt.normalizer.remove_extra_whitespaces = true;
  opt.pretok.split_digits = true;
  opt.user_defined_symbols = {"<sep>"};
  const BpeTokenizer tok(train_bpe(views(corpus), opt));
  auto lines = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_heldout.txt");
  for (size_t i = 0; i < lines.size(); i += 3) lines[i] = "<sep>" + lines[i] + " ｈｅｌｌｏ 2024년 ㅋㅋ<sep>";
  expect_spm_agrees(tok, lines);
}

TEST(BpeTokenizer, SaveLoadRoundTripAndDigest) {
  const auto corpus = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt");
  BpeTrainOptions opt;
  opt.vocab_size = 1200;
  const BpeTokenizer tok(train_bpe(views(corpus), opt), {{"note", "test"}});
  const auto dir = std::filesystem::temp_directory_path() / ("ssiat_bpe_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  tok.save(dir);
  const auto back = BpeTokenizer::load(dir);
  EXPECT_EQ(back->vocab(), tok.vocab());
  EXPECT_EQ(back->digest(), tok.digest());
  EXPECT_EQ(back->provenance().at("note"), "test");
  // The digest covers the encoding: change one score and it changes.
  Vocab v = tok.vocab();
  v.pieces.back().score -= 1;
  EXPECT_NE(vocab_digest(v), tok.digest());
  // An edited file is refused, naming the file.
  std::ifstream in(dir / "tokenizer.ssiat.json");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  const size_t at = text.find("\"<0x41>\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 8, "\"<0x4G>\"");
  std::ofstream(dir / "tokenizer.ssiat.json") << text;
  try {
    (void)BpeTokenizer::load(dir);
    FAIL() << "edited file accepted";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ssiat.json"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(BpeTokenizer, SaveRefusesAnExistingSetUnlessReplaceAndReadsAreChecked) {
  const auto corpus = read_lines(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt");
  BpeTrainOptions opt;
  opt.vocab_size = 1200;
  const BpeTokenizer a(train_bpe(views(corpus), opt));
  opt.vocab_size = 1100;
  const BpeTokenizer b(train_bpe(views(corpus), opt));
  const auto dir = std::filesystem::temp_directory_path() / ("ssiat_bpe_set_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  a.save(dir);
  EXPECT_THROW(b.save(dir), TokenizerError);  // kRefuse: the old set stays
  EXPECT_EQ(BpeTokenizer::load(dir)->digest(), a.digest());
  b.save(dir, Overwrite::kReplace, {{"seeds.jsonl", "{}\n"}});
  const auto back = BpeTokenizer::load(dir);
  EXPECT_EQ(back->digest(), b.digest());
  EXPECT_NE(a.digest(), b.digest());
  for (const auto& [name, bytes] : b.files()) EXPECT_EQ(read_file_checked(dir / name), bytes) << name;
  try {
    (void)read_file_checked(dir);
    FAIL() << "a directory was read";
  } catch (const TokenizerError& e) {
    EXPECT_EQ(std::string(e.what()), dir.string() + ": is a directory, expected a file");
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ssiat::tokenizer
