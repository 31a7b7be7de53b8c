// `ssiat tokenizer {train,encode,decode,stats}`.
//   train  --input FILE... --vocab-size N --out DIR [--force] [options]: learns a BPE vocabulary
//          from text lines (one sentence per line, empty lines skipped) and publishes
//          DIR/tokenizer.ssiat.json, DIR/tokenizer.model (SentencePiece), DIR/tokenizer.json
//          (Hugging Face) and DIR/seeds.jsonl as one set (tokenizer/file_io.h); a DIR that already
//          holds a tokenizer is replaced only under --force. Hidden temporaries of DIR left by a
//          killed run are removed first. Sampling (--max-sentences) draws from the seed
//          registry's stream "tokenizer/sample" of --seed (or an OS seed, logged).
//   encode --tokenizer DIR: stdin lines -> ids space-separated per line (spm_encode
//          --output_format=id); --output-format piece prints pieces instead.
//   decode --tokenizer DIR: lines of ids -> text (the inverse of encode).
//   stats  --tokenizer DIR --input FILE: compression and hygiene figures on held-out text.
// Inputs are read with checked reads (core/fs.h): an I/O error is an error naming the file and
// byte offset, never a shorter input. Corpus and --input files may be streams (a FIFO, a pipe,
// "-" for stdin); a directory is refused at once.
#include <cerrno>
#include <charconv>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/seed_registry.h"
#include "tokenizer/bpe.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/digest.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/utf8.h"
#include "tools/cli/commands.h"

namespace ssiat::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct TrainArgs {
  std::vector<std::string> inputs;
  std::string out, normalization = "nfc", user_defined, control;
  int32_t vocab_size = 32000, threads = 0, max_piece_chars = 16;
  double coverage = 0.9995;
  int64_t max_sentences = 0, min_pair_count = 2;
  std::optional<uint64_t> seed;
  bool no_dummy_prefix = false, remove_extra_ws = false, split_digits = false, replace_invalid = false, no_byte_fallback = false,
       quiet = false, force = false;
};

struct CodecArgs {
  std::string tokenizer, input, output_format = "id";
  int threads = 0;
  bool json = false;
};

// All of out to stdout, or IoError (a full disk or a closed pipe is not a silent success).
void write_stdout(const std::string& out) {
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
    throw IoError(std::string("stdout: write failed: ") + std::strerror(errno));
}

// --input FILE, or stdin when none is given; checked reads either way.
std::string read_input(const std::string& input) {
  return input.empty() ? read_fd_until_eof(STDIN_FILENO, "stdin") : read_whole_file(input, InputKind::kStreamOk);
}

// Refuses (before any work) an --out that save() would refuse: a tokenizer already there without
// --force, or a directory holding other files; then removes temporaries of killed runs.
void check_out_dir(const std::string& out, bool force) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(out).has_filename() ? fs::path(out) : fs::path(out).parent_path();
  std::error_code ec;
  if (fs::is_directory(dir, ec) && !force)
    for (const auto& name : tokenizer::BpeTokenizer::file_names())
      if (fs::exists(dir / name, ec)) throw IoError(out + ": already holds a tokenizer; pass --force to replace it");
  try {
    tokenizer::check_publish_target(dir, force ? tokenizer::Overwrite::kReplace : tokenizer::Overwrite::kRefuse,
                                    tokenizer::BpeTokenizer::file_names());
  } catch (const tokenizer::TokenizerError& e) {
    throw IoError(e.what());
  }
  remove_stale_temporaries(dir.has_parent_path() ? dir.parent_path() : fs::path("."), dir.filename().string());
}

// Lines of text without their '\n' (and a trailing '\r'); keeps empty lines if keep_empty.
std::vector<std::string_view> split_lines(std::string_view text, bool keep_empty) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (keep_empty || !line.empty()) lines.push_back(line);
    pos = nl + 1;
  }
  return lines;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (!s.empty() && pos <= s.size()) {
    size_t c = s.find(',', pos);
    if (c == std::string::npos) c = s.size();
    if (c > pos) out.push_back(s.substr(pos, c - pos));
    pos = c + 1;
  }
  return out;
}

tokenizer::NormForm parse_norm(const std::string& s) {
  if (s == "nfc") return tokenizer::NormForm::kNfc;
  if (s == "nfkc") return tokenizer::NormForm::kNfkc;
  if (s == "identity") return tokenizer::NormForm::kIdentity;
  throw ConfigError("--normalization: expected nfc, nfkc or identity, got '" + s + "'");
}

void run_train(const TrainArgs& a) {
  tokenizer::BpeTrainOptions opt;
  opt.vocab_size = a.vocab_size;
  opt.normalizer.form = parse_norm(a.normalization);
  opt.normalizer.add_dummy_prefix = !a.no_dummy_prefix;
  opt.normalizer.remove_extra_whitespaces = a.remove_extra_ws;
  opt.normalizer.replace_invalid_utf8 = a.replace_invalid;
  opt.pretok.split_digits = a.split_digits;
  opt.pretok.max_piece_chars = a.max_piece_chars;
  opt.character_coverage = a.coverage;
  opt.byte_fallback = !a.no_byte_fallback;
  opt.user_defined_symbols = split_list(a.user_defined);
  opt.control_symbols = split_list(a.control);
  opt.max_sentences = a.max_sentences;
  opt.min_pair_count = a.min_pair_count;
  opt.threads = a.threads;
  opt.progress = !a.quiet;
  try {
    opt.validate();
  } catch (const tokenizer::TokenizerError& e) {
    throw ConfigError(std::string("tokenizer train: ") + e.what());
  }
  check_out_dir(a.out, a.force);

  SeedRegistry reg = SeedRegistry::from_optional(a.seed);
  const PhiloxKey key = reg.stream_key("tokenizer/sample");
  opt.sample_seed = (static_cast<uint64_t>(key.k0) << 32) | key.k1;

  const auto t0 = Clock::now();
  std::vector<std::string> contents;
  std::vector<std::string_view> sentences;
  nlohmann::json sources = nlohmann::json::array();
  contents.reserve(a.inputs.size());
  for (const auto& path : a.inputs) {
    contents.push_back(read_whole_file(path, InputKind::kStreamOk));
    std::string& text = contents.back();
    const std::string sha = tokenizer::sha256_hex_of(text);
    const int64_t bytes = static_cast<int64_t>(text.size());
    text = tokenizer::check_or_replace_utf8(text, a.replace_invalid, path);
    const auto lines = split_lines(text, false);
    if (lines.empty()) throw DataError(path + ": no non-empty lines to train on");
    sentences.insert(sentences.end(), lines.begin(), lines.end());
    sources.push_back({{"path", path}, {"sha256", sha}, {"bytes", bytes}, {"lines", lines.size()}});
  }
  if (!a.quiet)
    std::fprintf(stderr, "tokenizer train: %zu sentences from %zu file(s) read in %.1fs\n", sentences.size(), a.inputs.size(),
                 std::chrono::duration<double>(Clock::now() - t0).count());

  tokenizer::BpeTrainStats st;
  tokenizer::Vocab v;
  try {
    v = tokenizer::train_bpe(sentences, opt, &st);
  } catch (const tokenizer::TokenizerError& e) {
    throw ConfigError(std::string("tokenizer train: ") + e.what());
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  nlohmann::json prov = {
      {"trainer", "ssiat " SSIAT_VERSION " (" SSIAT_GIT_COMMIT ")"},
      {"sources", sources},
      {"options",
       {{"vocab_size", opt.vocab_size},
        {"character_coverage", opt.character_coverage},
        {"max_sentences", opt.max_sentences},
        {"min_pair_count", opt.min_pair_count},
        {"user_defined_symbols", opt.user_defined_symbols},
        {"control_symbols", opt.control_symbols}}},
      {"sample", {{"master_seed", reg.master_seed()}, {"stream", "tokenizer/sample"}, {"key", key_hex(key)}}},
      {"stats",
       {{"sentences_total", st.sentences_total},
        {"sentences_used", st.sentences_used},
        {"distinct_pretokens", st.distinct_pretokens},
        {"alphabet", st.alphabet},
        {"chars_to_byte_fallback", st.chars_dropped},
        {"merges", st.merges}}}};
  tokenizer::BpeTokenizer tok(std::move(v), prov);
  reg.record({{"type", "tokenizer"}, {"name", "bpe"}, {"digest", tok.digest()}, {"vocab_size", tok.vocab_size()}, {"sources", sources}});
  std::string seeds;
  for (const auto& rec : reg.log()) seeds += rec.dump() + "\n";
  try {
    tok.save(a.out, a.force ? tokenizer::Overwrite::kReplace : tokenizer::Overwrite::kRefuse, {{"seeds.jsonl", seeds}});
  } catch (const tokenizer::TokenizerError& e) {
    throw IoError(e.what());
  }
  if (st.vocab_short)
    std::fprintf(stderr, "tokenizer train: warning: only %d pieces: no pair occurs %lld times or more\n", tok.vocab_size(),
                 static_cast<long long>(opt.min_pair_count));
  std::printf("tokenizer train: vocab %d (%lld merges, %lld characters, %lld rare characters left to bytes) from %lld of %lld sentences, "
              "%lld distinct pre-tokens; %.2fs (count %.2fs, merge %.2fs) -> %s\ndigest %s\n",
              tok.vocab_size(), static_cast<long long>(st.merges), static_cast<long long>(st.alphabet),
              static_cast<long long>(st.chars_dropped), static_cast<long long>(st.sentences_used),
              static_cast<long long>(st.sentences_total), static_cast<long long>(st.distinct_pretokens), secs, st.seconds_count,
              st.seconds_merge, a.out.c_str(), tok.digest().c_str());
}

std::unique_ptr<tokenizer::BpeTokenizer> load_tok(const std::string& dir) {
  try {
    return tokenizer::BpeTokenizer::load(dir);
  } catch (const tokenizer::TokenizerError& e) {
    throw IoError(e.what());
  }
}

void run_encode(const CodecArgs& a) {
  auto tok = load_tok(a.tokenizer);
  if (a.output_format != "id" && a.output_format != "piece")
    throw ConfigError("--output-format: expected id or piece, got '" + a.output_format + "'");
  const std::string in = read_input(a.input);
  const auto lines = split_lines(in, true);
  std::vector<std::vector<int32_t>> ids;
  try {
    ids = tok->encode_batch(lines, a.threads);
  } catch (const tokenizer::TokenizerError& e) {
    throw DataError(std::string("tokenizer encode: ") + e.what());
  }
  std::string out;
  out.reserve(in.size() * 2);
  char buf[16];
  for (const auto& line : ids) {
    for (size_t i = 0; i < line.size(); i++) {
      if (i) out.push_back(' ');
      if (a.output_format == "id") {
        auto r = std::to_chars(buf, buf + sizeof buf, line[i]);
        out.append(buf, r.ptr);
      } else {
        out += tok->vocab().pieces[static_cast<size_t>(line[i])].text;
      }
    }
    out.push_back('\n');
  }
  write_stdout(out);
}

void run_decode(const CodecArgs& a) {
  auto tok = load_tok(a.tokenizer);
  const std::string in = read_input(a.input);
  const auto lines = split_lines(in, true);
  std::string out;
  std::vector<int32_t> ids;
  for (size_t ln = 0; ln < lines.size(); ln++) {
    ids.clear();
    const std::string_view l = lines[ln];
    const char* p = l.data();
    const char* end = l.data() + l.size();
    while (p < end) {
      while (p < end && *p == ' ') p++;
      if (p == end) break;
      int32_t v;
      auto r = std::from_chars(p, end, v);
      if (r.ec != std::errc() || (r.ptr < end && *r.ptr != ' '))
        throw DataError("tokenizer decode: line " + std::to_string(ln + 1) + ": '" + std::string(p, std::min<size_t>(16, end - p)) +
                        "' is not an id");
      ids.push_back(v);
      p = r.ptr;
    }
    try {
      out += tok->decode(ids);
    } catch (const tokenizer::TokenizerError& e) {
      throw DataError("tokenizer decode: line " + std::to_string(ln + 1) + ": " + e.what());
    }
    out.push_back('\n');
  }
  write_stdout(out);
}

bool is_hangul_syllable(char32_t c) { return c >= 0xAC00 && c <= 0xD7A3; }

void run_stats(const CodecArgs& a) {
  auto tok = load_tok(a.tokenizer);
  if (a.input.empty()) throw ConfigError("tokenizer stats: --input is required");
  const std::string text = read_whole_file(a.input, InputKind::kStreamOk);
  if (auto bad = tokenizer::find_invalid_utf8(text)) throw DataError(a.input + ": invalid UTF-8 at byte offset " + std::to_string(*bad));
  const auto lines = split_lines(text, false);
  const auto t0 = Clock::now();
  const auto ids = tok->encode_batch(lines, a.threads);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  int64_t bytes = 0, chars = 0, hangul = 0, tokens = 0, byte_tokens = 0, unk = 0, exact = 0;
  std::vector<uint8_t> used(static_cast<size_t>(tok->vocab_size()), 0);
  for (size_t i = 0; i < lines.size(); i++) {
    bytes += static_cast<int64_t>(lines[i].size());
    for (size_t k = 0; k < lines[i].size();) {
      int len;
      const char32_t c = tokenizer::decode_utf8(lines[i].data() + k, &len);
      chars++, hangul += is_hangul_syllable(c);
      k += static_cast<size_t>(len);
    }
    tokens += static_cast<int64_t>(ids[i].size());
    for (int32_t id : ids[i]) {
      used[static_cast<size_t>(id)] = 1;
      const auto type = tok->vocab().pieces[static_cast<size_t>(id)].type;
      byte_tokens += type == tokenizer::PieceType::kByte;
      unk += type == tokenizer::PieceType::kUnknown;
    }
    exact += tok->decode(ids[i]) == tok->normalizer().normalize(lines[i]);
  }
  int64_t used_n = 0;
  for (auto u : used) used_n += u;
  const double t = static_cast<double>(std::max<int64_t>(tokens, 1));
  const nlohmann::json j = {{"lines", lines.size()},
                            {"bytes", bytes},
                            {"chars", chars},
                            {"hangul_syllables", hangul},
                            {"tokens", tokens},
                            {"bytes_per_token", bytes / t},
                            {"chars_per_token", chars / t},
                            {"hangul_per_token", hangul / t},
                            {"byte_fallback_token_share", byte_tokens / t},
                            {"unk_tokens", unk},
                            {"round_trip_exact_lines", exact},
                            {"vocab_used", used_n},
                            {"vocab_size", tok->vocab_size()},
                            {"encode_mb_per_s", secs > 0 ? bytes / 1e6 / secs : 0.0}};
  if (a.json) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s: %zu lines, %lld bytes, %lld tokens\n", a.input.c_str(), lines.size(), static_cast<long long>(bytes),
              static_cast<long long>(tokens));
  std::printf("  bytes/token %.3f  chars/token %.3f  Hangul syllables/token %.3f\n", bytes / t, chars / t, hangul / t);
  std::printf("  byte-fallback tokens %.4f%%  <unk> %lld  round trip exact %lld/%zu lines  vocab used %lld/%d\n",
              100.0 * byte_tokens / t, static_cast<long long>(unk), static_cast<long long>(exact), lines.size(),
              static_cast<long long>(used_n), tok->vocab_size());
}

}  // namespace

void add_tokenizer_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("tokenizer", "Train and use the BPE tokenizer");
  cmd->require_subcommand(1);

  auto ta = std::make_shared<TrainArgs>();
  CLI::App* train = cmd->add_subcommand("train", "Learn a BPE vocabulary from text lines");
  train->add_option("--input,-i", ta->inputs, "Text file(s), one sentence per line")->required()->expected(1, -1);
  train->add_option("--vocab-size", ta->vocab_size, "Vocabulary size (special, byte, merged and character pieces)")->required();
  train->add_option("--out,-o", ta->out, "Output directory")->required();
  train->add_option("--threads", ta->threads, "Threads (0: all cores); the vocabulary does not depend on it");
  train->add_option("--character-coverage", ta->coverage, "Share of character occurrences the alphabet covers");
  train->add_option("--max-sentences", ta->max_sentences, "Train on a seeded sample of this many sentences (0: all)");
  train->add_option("--seed", ta->seed, "Master seed for the sampling stream (default: from the OS, logged)");
  train->add_option("--normalization", ta->normalization, "nfc (default), nfkc (keeps Hangul compatibility jamo) or identity");
  train->add_flag("--no-dummy-prefix", ta->no_dummy_prefix, "Do not prepend ▁ to each text");
  train->add_flag("--remove-extra-whitespaces", ta->remove_extra_ws, "Strip and collapse spaces (SentencePiece's default)");
  train->add_flag("--split-digits", ta->split_digits, "Every digit its own token");
  train->add_option("--max-piece-chars", ta->max_piece_chars, "Longest learned piece in characters");
  train->add_option("--user-defined-symbols", ta->user_defined, "Comma-separated symbols kept whole, never merged");
  train->add_option("--control-symbols", ta->control, "Comma-separated control symbols (ids only)");
  train->add_option("--min-pair-count", ta->min_pair_count, "Stop merging below this pair count");
  train->add_flag("--replace-invalid-utf8", ta->replace_invalid, "Replace invalid UTF-8 bytes by U+FFFD instead of refusing");
  train->add_flag("--no-byte-fallback", ta->no_byte_fallback, "Unknown characters become <unk> instead of bytes");
  train->add_flag("-q,--quiet", ta->quiet, "No progress lines");
  train->add_flag("--force", ta->force, "Replace the tokenizer already in --out (atomically, as a set)");
  train->callback([ta] { run_train(*ta); });

  auto ea = std::make_shared<CodecArgs>();
  CLI::App* enc = cmd->add_subcommand("encode", "Encode lines (stdin or --input) to ids, one line each");
  enc->add_option("--tokenizer,-t", ea->tokenizer, "Tokenizer directory")->required();
  enc->add_option("--input,-i", ea->input, "Input file (default: stdin)");
  enc->add_option("--threads", ea->threads, "Threads (0: all cores)");
  enc->add_option("--output-format", ea->output_format, "id (default) or piece");
  enc->callback([ea] { run_encode(*ea); });

  auto da = std::make_shared<CodecArgs>();
  CLI::App* dec = cmd->add_subcommand("decode", "Decode lines of space-separated ids to text");
  dec->add_option("--tokenizer,-t", da->tokenizer, "Tokenizer directory")->required();
  dec->add_option("--input,-i", da->input, "Input file (default: stdin)");
  dec->callback([da] { run_decode(*da); });

  auto sa = std::make_shared<CodecArgs>();
  CLI::App* stats = cmd->add_subcommand("stats", "Compression and round-trip figures on held-out text");
  stats->add_option("--tokenizer,-t", sa->tokenizer, "Tokenizer directory")->required();
  stats->add_option("--input,-i", sa->input, "Held-out text, one document per line")->required();
  stats->add_option("--threads", sa->threads, "Threads (0: all cores)");
  stats->add_flag("--json", sa->json, "One JSON line");
  stats->callback([sa] { run_stats(*sa); });
}

}  // namespace ssiat::cli
