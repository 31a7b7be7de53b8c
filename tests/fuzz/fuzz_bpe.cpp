// libFuzzer target for the BPE tokenizer (tokenizer/bpe.h, normalizer.h, pretokenizer.h).
//
// Three tokenizers are trained once, in memory, on kCorpus below (mixed Korean, English, digits,
// punctuation; vocab 640, byte fallback, user-defined "<sep>"):
//   nfc      default NormalizerConfig (NFC, dummy prefix, invalid UTF-8 refused)
//   replace  the nfc vocabulary with replace_invalid_utf8 = true
//   nfkc     trained separately with NFKC + remove_extra_whitespaces + split_digits
// Properties checked for every input x (each is stated in the headers named above):
//   valid UTF-8 x, every tokenizer t:
//     P1 decode(encode(x)) == t.normalizer().normalize(x)
//     P2 every id is in [0, vocab_size), none is a control piece or <unk> (byte fallback is on)
//     P3 encode(x) == encode_whole(normalize_for_model(x))  (per-pre-token path == whole text)
//   valid UTF-8 x, nfc only:
//     P4 encode_batch({x, x}, 2 threads) == {encode(x), encode(x)}
//   invalid UTF-8 x:
//     P5 nfc and nfkc: encode throws TokenizerError whose message names find_invalid_utf8(x)
//        as a whole decimal number
//     P6 replace: encode does not throw, decode(encode(x)) is valid UTF-8 and equals
//        normalize(x) (the input with each bad byte read as U+FFFD), ids in range (P2)
// A violation prints the property and the input (hex) to stderr, then aborts.
// Build and run: tests/fuzz/run_fuzz.sh SECONDS BUILD_DIR.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"

namespace {

using ssiat::tokenizer::BpeTokenizer;
using ssiat::tokenizer::BpeTrainOptions;
using ssiat::tokenizer::NormForm;
using ssiat::tokenizer::PieceType;
using ssiat::tokenizer::TokenizerError;
using ssiat::tokenizer::Vocab;

// Training text: one sentence per line. Korean prose, chat (ㅋㅋㅋ, ㅠㅠ), English, numbers,
// dates, prices, URLs, code, Hanja, kana and punctuation, so every character class is present.
constexpr const char* kCorpus[] = {
    "안녕하세요. 오늘은 날씨가 정말 좋네요!",
    "저는 서울에 살고 있습니다. 서울은 대한민국의 수도입니다.",
    "한국어 토크나이저를 학습합니다. 토크나이저는 문장을 토큰으로 나눕니다.",
    "ㅋㅋㅋㅋㅋ 진짜 웃기다 ㅋㅋ",
    "ㅠㅠ 너무 슬퍼요... ㅜㅜ",
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! This is a tokenizer test with English words.",
    "Tokenization splits text into pieces; pieces are merged by frequency.",
    "2024년 3월 15일 오후 3시 30분에 만나요.",
    "가격은 12,500원이고 할인율은 15%입니다.",
    "전화번호: 010-1234-5678, 우편번호 06236",
    "Version 1.2.3 was released on 2023-11-07 at 09:45:00.",
    "π ≈ 3.14159, e ≈ 2.71828, √2 ≈ 1.41421",
    "https://example.com/path?query=value&lang=ko#section",
    "이메일 주소는 user@example.com 입니다.",
    "int main() { return 0; }  // C++ 코드 예시",
    "for (int i = 0; i < 10; ++i) sum += i * i;",
    "대한민국(大韓民國)은 동아시아에 있는 나라이다.",
    "漢字와 한글을 섞어 쓰기도 합니다. 學校, 先生, 學生",
    "ひらがなとカタカナも少し入れます。こんにちは。",
    "「인용문」과 『책 제목』, 그리고 〈작품〉을 씁니다.",
    "\"큰따옴표\"와 '작은따옴표' 그리고 (괄호) [대괄호] {중괄호}",
    "A<sep>B<sep>C: 사용자 정의 기호 <sep> 를 씁니다.",
    "질문<sep>답변<sep>끝",
    "    들여쓰기가   있는   문장   입니다   ",
    "탭\t문자와\t줄바꿈 없는 문장",
    "mixed한글English123숫자",
    "abc123def456ghi789",
    "100 200 300 400 500 600 700 800 900 1000",
    "첫째, 둘째, 셋째; 그리고 마지막으로 넷째.",
    "우리는 인공지능 모델을 훈련합니다. 모델은 데이터를 학습합니다.",
    "학습률은 0.0003이고 배치 크기는 512입니다.",
    "The model has 125M parameters and 12 layers.",
    "Loss: 2.345 -> 1.987 -> 1.654 (step 1000)",
    "!!! ??? ... --- *** ### $$$ %%% ^^^ &&&",
    "😀 이모지도 가끔 나옵니다 👍🏻 🇰🇷",
    "ＡＢＣ 전각 문자와 ①②③ 원문자",
    "ﾊﾝｶｸ 반각 가타카나, ㄱㄴㄷㄹ 호환 자모",
    "서울특별시 강남구 테헤란로 123, 4층",
    "안녕 안녕 안녕하세요 안녕히 가세요 안녕히 계세요",
    "하다 했다 합니다 했습니다 하겠습니다 하였습니다",
    "먹다 먹었다 먹습니다 먹었습니다 먹겠습니다",
    "the the the of of and and to to in in is is",
    "tokenizer tokenizers tokenize tokenized tokenizing",
};

// 260 special and byte pieces + ~290 characters + the merges; coverage below 1 leaves the
// rarest characters to byte fallback.
constexpr int32_t kVocabSize = 640;
constexpr double kCoverage = 0.99;

[[noreturn]] void fail(const char* property, std::string_view input, const std::string& detail) {
  std::fprintf(stderr, "\nfuzz_bpe: %s violated: %s\ninput (%zu bytes, hex):", property, detail.c_str(), input.size());
  for (unsigned char c : input) std::fprintf(stderr, " %02x", c);
  std::fprintf(stderr, "\n");
  std::abort();
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); i++) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

Vocab train(NormForm form, bool squeeze, bool split_digits) {
  BpeTrainOptions opt;
  opt.vocab_size = kVocabSize;
  opt.normalizer.form = form;
  opt.normalizer.remove_extra_whitespaces = squeeze;
  opt.pretok.split_digits = split_digits;
  opt.byte_fallback = true;
  opt.user_defined_symbols = {"<sep>"};
  opt.character_coverage = kCoverage;
  opt.threads = 1;
  std::vector<std::string_view> lines(std::begin(kCorpus), std::end(kCorpus));
  try {
    ssiat::tokenizer::BpeTrainStats st;
    Vocab v = ssiat::tokenizer::train_bpe(lines, opt, &st);
    std::fprintf(stderr, "fuzz_bpe: trained %s: %zu pieces, alphabet %lld, dropped %lld, merges %lld\n",
                 ssiat::tokenizer::norm_form_name(form), v.pieces.size(), static_cast<long long>(st.alphabet),
                 static_cast<long long>(st.chars_dropped), static_cast<long long>(st.merges));
    return v;
  } catch (const std::exception& e) {
    fail("setup", "", std::string("train_bpe threw: ") + e.what());
  }
}

struct Tokenizers {
  std::unique_ptr<BpeTokenizer> nfc, replace, nfkc;
};

const Tokenizers& tokenizers() {
  static const Tokenizers t = [] {
    Tokenizers r;
    Vocab v = train(NormForm::kNfc, false, false);
    r.nfc = std::make_unique<BpeTokenizer>(v);
    v.normalizer.replace_invalid_utf8 = true;
    r.replace = std::make_unique<BpeTokenizer>(v);
    r.nfkc = std::make_unique<BpeTokenizer>(train(NormForm::kNfkc, true, true));
    for (const BpeTokenizer* tok : {r.nfc.get(), r.replace.get(), r.nfkc.get()})
      if (!tok->pretokenized())  // bpe.h: our trainer's pieces never span a pre-token boundary
        fail("setup", "", "a trained vocabulary is not pre-tokenizable");
    return r;
  }();
  return t;
}

// P2: ids in range, no control piece, no <unk>.
void check_ids(const BpeTokenizer& tok, const std::vector<int32_t>& ids, std::string_view x, const char* name) {
  const auto& pieces = tok.vocab().pieces;
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size())
      fail("P2 id in range", x, std::string(name) + ": id " + std::to_string(id) + " in " + ids_str(ids));
    const PieceType type = pieces[static_cast<size_t>(id)].type;
    if (type == PieceType::kControl || type == PieceType::kUnknown)
      fail("P2 no control/<unk> id", x, std::string(name) + ": id " + std::to_string(id) + " in " + ids_str(ids));
  }
}

// P1 and P3 (and P2) for input x that the tokenizer accepts.
std::vector<int32_t> check_round_trip(const BpeTokenizer& tok, std::string_view x, const char* name) {
  std::vector<int32_t> ids;
  try {
    ids = tok.encode(x);
  } catch (const std::exception& e) {
    fail("encode accepts input", x, std::string(name) + ": threw " + e.what());
  }
  check_ids(tok, ids, x, name);
  const std::string back = tok.decode(ids);
  const std::string want = tok.normalizer().normalize(x);
  if (back != want) fail("P1 decode(encode(x)) == normalize(x)", x, std::string(name) + ": got '" + back + "', want '" + want + "', ids " + ids_str(ids));
  const std::vector<int32_t> whole = tok.encode_whole(tok.normalizer().normalize_for_model(x));
  if (whole != ids) fail("P3 encode == encode_whole", x, std::string(name) + ": encode " + ids_str(ids) + ", encode_whole " + ids_str(whole));
  return ids;
}

// True when msg contains n as a decimal number not adjacent to other digits.
bool names_number(const std::string& msg, size_t n) {
  const std::string d = std::to_string(n);
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  for (size_t p = msg.find(d); p != std::string::npos; p = msg.find(d, p + 1))
    if ((p == 0 || !is_digit(msg[p - 1])) && (p + d.size() == msg.size() || !is_digit(msg[p + d.size()]))) return true;
  return false;
}

// P5: encode refuses invalid UTF-8 with the offset of the first bad byte.
void check_refuses(const BpeTokenizer& tok, std::string_view x, size_t bad, const char* name) {
  try {
    const auto ids = tok.encode(x);
    fail("P5 encode refuses invalid UTF-8", x, std::string(name) + ": returned " + ids_str(ids));
  } catch (const TokenizerError& e) {
    if (!names_number(e.what(), bad))
      fail("P5 error names the offset", x, std::string(name) + ": offset " + std::to_string(bad) + ", message '" + e.what() + "'");
  } catch (const std::exception& e) {
    fail("P5 error is a TokenizerError", x, std::string(name) + ": threw " + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizers& t = tokenizers();
  const std::string_view x(reinterpret_cast<const char*>(data), size);
  const std::optional<size_t> bad = ssiat::tokenizer::find_invalid_utf8(x);
  if (!bad) {
    const std::vector<int32_t> ids = check_round_trip(*t.nfc, x, "nfc");
    check_round_trip(*t.replace, x, "replace");
    check_round_trip(*t.nfkc, x, "nfkc");
    const std::string_view docs[] = {x, x};
    const auto batch = t.nfc->encode_batch(docs, 2);
    if (batch.size() != 2 || batch[0] != ids || batch[1] != ids)
      fail("P4 encode_batch == encode", x, "nfc: encode " + ids_str(ids));
  } else {
    check_refuses(*t.nfc, x, *bad, "nfc");
    check_refuses(*t.nfkc, x, *bad, "nfkc");
    const std::vector<int32_t> ids = check_round_trip(*t.replace, x, "replace");  // P6
    if (auto b = ssiat::tokenizer::find_invalid_utf8(t.replace->decode(ids)))
      fail("P6 decode gives valid UTF-8", x, "replace: bad byte at " + std::to_string(*b));
  }
  return 0;
}
