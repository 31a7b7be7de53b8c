// `ssiat data prepare --input FILE... --out DIR [--format auto|text|jsonl] [--tokenizer byte|DIR]
// [--shard-tokens N] [--progress]`: tokenises a corpus into HDF5 token shards plus manifest.json
// (format in core/data.h and docs/data.md) and prints a one-paragraph summary. Bad settings
// throw ConfigError; bad input DataError/IoError (main() prints them and exits non-zero). Inputs
// may be streams ("-" is stdin); a directory is refused; a killed run's temporaries are removed.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/data.h"
#include "core/error.h"
#include "core/hash.h"
#include "tokenizer/tokenizer.h"
#include "tools/cli/commands.h"

namespace ssiat::cli {
namespace {

struct DataPrepareArgs {
  std::vector<std::string> inputs;
  std::string out;
  std::string format = "auto";
  std::string tokenizer = "byte";
  int64_t shard_tokens = PrepareOptions{}.shard_tokens;
  bool progress = false;
  int threads = 0;
};

void run_data_prepare(const DataPrepareArgs& a) {
  PrepareOptions opt;
  for (const auto& in : a.inputs) opt.inputs.emplace_back(in);
  if (a.format == "auto") {
    opt.auto_format = true;
  } else if (a.format == "text") {
    opt.auto_format = false, opt.format = InputFormat::kText;
  } else if (a.format == "jsonl") {
    opt.auto_format = false, opt.format = InputFormat::kJsonl;
  } else {
    throw ConfigError("--format: expected auto, text or jsonl, got '" + a.format + "'");
  }
  if (a.shard_tokens <= 0) throw ConfigError("--shard-tokens: must be positive, got " + std::to_string(a.shard_tokens));
  opt.shard_tokens = a.shard_tokens;
  opt.progress = a.progress;
  if (a.threads < 0) throw ConfigError("--threads: must be >= 0, got " + std::to_string(a.threads));
  opt.threads = a.threads;

  // "byte", or a BPE tokenizer directory written by `ssiat tokenizer train`.
  const bool is_byte = a.tokenizer == "byte";
  if (!is_byte && !std::filesystem::is_directory(a.tokenizer))
    throw ConfigError("--tokenizer: '" + a.tokenizer + "' is neither \"byte\" nor a tokenizer directory");
  std::unique_ptr<tokenizer::Tokenizer> tok = open_tokenizer(is_byte ? TokenizerKind::kByte : TokenizerKind::kBpe, a.tokenizer);

  const PrepareResult r = prepare_data(opt, *tok, a.out);
  const std::string manifest_sha = sha256_file(std::filesystem::path(a.out) / "manifest.json");
  std::cout << "data prepare: " << opt.inputs.size() << " source(s), " << r.documents << " documents, " << r.tokens
            << " tokens (" << tok->name() << " tokenizer) in " << r.shards << " shard(s) -> " << a.out << "\n"
            << "manifest sha256 " << manifest_sha << "\n";
}

}  // namespace

void add_data_command(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Prepare token data");
  data->require_subcommand(1);
  CLI::App* prep = data->add_subcommand("prepare", "Tokenise text/JSONL files into HDF5 token shards");
  auto args = std::make_shared<DataPrepareArgs>();
  prep->add_option("--input,-i", args->inputs,
                   "Input file(s): text (blank-line separated documents) or JSONL; a FIFO, pipe or - (stdin) is read once")
      ->required()
      ->expected(1, -1);
  prep->add_option("--out,-o", args->out, "Output directory (must not exist or be empty)")->required();
  prep->add_option("--format", args->format, "auto (by .jsonl extension), text or jsonl");
  prep->add_option("--tokenizer", args->tokenizer, "Tokenizer: byte, or a directory from `ssiat tokenizer train`");
  prep->add_option("--shard-tokens", args->shard_tokens, "Tokens per shard (documents are never split)");
  prep->add_flag("--progress", args->progress, "Print per-file progress to stderr");
  prep->add_option("--threads", args->threads, "Tokenizer threads (0: all cores); the shards do not depend on it");
  prep->callback([args] { run_data_prepare(*args); });
}

}  // namespace ssiat::cli
