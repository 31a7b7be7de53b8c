// The commands that use a trained model (issue 11), each taking a run directory (its latest
// checkpoint) or a checkpoint directory (core/model_source.h):
//   ssiat export SRC --format hf --out DIR [--shard-size BYTES] [-q]
//       a Hugging Face LlamaForCausalLM directory (core/export_hf.h); prints what it wrote
//   ssiat export SRC --format gguf --out FILE.gguf [-q]
//       one GGUF v3 file for llama.cpp (core/export_gguf.h)
//   ssiat logits SRC --prompt TEXT --out FILE.npy [--device cpu|cuda]
//       the f32 logits (T, V) of every prompt position (core/inference.h logits_of), T = the
//       prompt's token count; prints T, V and the prompt's ids
//   ssiat generate SRC --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K]
//       [--top-p P] [--seed S] [--ids] [--ignore-eos] [--device cpu|cuda]
//       KV-cache generation (core/inference.h KvDecoder) on the CPU or one GPU, greedy at
//       temperature 0 (the default); prints the prompt and the continuation decoded together
//       (and the generated ids with --ids); --seed defaults to the run's master seed, and a
//       sampled run names the seed on stderr
//   ssiat eval SRC --data FILE [--lines] [--seq-len T] [--batch B] [--device cpu|cuda] [--json] [-q]
//       loss, perplexity and bits per byte on held-out text, with progress on stderr
// Errors: one line naming the file or option (core/error.h), non-zero exit, no partial output
// file (outputs are written atomically).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/export_gguf.h"
#include "core/export_hf.h"
#include "core/fs.h"
#include "core/inference.h"
#include "core/model_source.h"
#include "core/npy.h"
#include "tools/cli/commands.h"

namespace ssiat::cli {

namespace fs = std::filesystem;

namespace {

// --device cpu|cuda: where the model's forward runs (f32 on either).
ExecConfig exec_of(const std::string& device) {
  const std::optional<DeviceKind> d = parse_device_kind(device);
  if (!d) throw ConfigError("--device: unknown device '" + device + "' (cpu or cuda)");
  ExecConfig e;
  e.device = *d;
  return e;
}

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

void add_export(CLI::App& app) {
  struct Opt {
    std::string src, format = "hf", out;
    int64_t shard = 5'000'000'000;
    bool quiet = false;
  };
  auto o = std::make_shared<Opt>();
  CLI::App* cmd = app.add_subcommand("export", "Export a checkpoint's weights and tokenizer (Hugging Face format)");
  cmd->add_option("source", o->src, "Run directory (its latest checkpoint) or checkpoint directory")->required();
  cmd->add_option("--format", o->format, "hf (LlamaForCausalLM directory, safetensors) or gguf (one llama.cpp file)");
  cmd->add_option("--out", o->out, "hf: output directory (must not exist, or be empty); gguf: a new file")->required();
  cmd->add_option("--shard-size", o->shard, "Largest safetensors file in bytes before sharding (default 5e9)");
  cmd->add_flag("-q,--quiet", o->quiet, "No per-tensor progress");
  cmd->callback([o] {
    if (o->format != "hf" && o->format != "gguf")
      throw ConfigError("--format: unknown format '" + o->format + "' (supported: hf, gguf)");
    if (o->format == "gguf") {
      const ExportResult r = export_gguf(o->src, o->out, !o->quiet);
      std::printf("exported %s: %lld tensors, %.1f MB with the tokenizer -> %s (GGUF v3, F32)\n",
                  r.checkpoint.string().c_str(), static_cast<long long>(r.tensors), static_cast<double>(r.bytes) / 1e6,
                  o->out.c_str());
      return;
    }
    ExportOptions e;
    e.out = o->out;
    e.shard_bytes = o->shard;
    e.progress = !o->quiet;
    const ExportResult r = export_hf(o->src, e);
    std::printf("exported %s: %lld tensors, %.1f MB in %lld safetensors file%s%s -> %s\n", r.checkpoint.string().c_str(),
                static_cast<long long>(r.tensors), static_cast<double>(r.bytes) / 1e6, static_cast<long long>(r.shards),
                r.shards == 1 ? "" : "s", r.tokenizer ? ", with the tokenizer" : " (byte tokenizer: no tokenizer files)",
                o->out.c_str());
  });
}

void add_logits(CLI::App& app) {
  struct Opt {
    std::string src, prompt, out, device = "cpu";
  };
  auto o = std::make_shared<Opt>();
  CLI::App* cmd = app.add_subcommand("logits", "Write the logits of every prompt position to a .npy file");
  cmd->add_option("source", o->src, "Run directory or checkpoint directory")->required();
  cmd->add_option("--prompt", o->prompt, "Text to encode")->required();
  cmd->add_option("--out", o->out, "Output .npy file (f32, shape [T, V])")->required();
  cmd->add_option("--device", o->device, "cpu (default) or cuda");
  cmd->callback([o] {
    const ModelSource src = open_model_source(o->src);
    const auto tok = open_source_tokenizer(src);
    const std::vector<int32_t> ids = tok->encode(o->prompt);
    auto model = load_model(src, exec_of(o->device));
    const std::vector<float> logits = logits_of(*model, ids);
    const int64_t T = static_cast<int64_t>(ids.size()), V = src.recipe.model.vocab_size;
    write_npy_f32(o->out, logits.data(), {T, V});
    std::printf("wrote %s: logits [%lld, %lld] of ids %s\n", o->out.c_str(), static_cast<long long>(T),
                static_cast<long long>(V), ids_text(ids).c_str());
  });
}

void add_generate(CLI::App& app) {
  struct Opt {
    std::string src, prompt, device = "cpu";
    SamplingOptions s;
    bool seed_given = false, ids = false, ignore_eos = false;
  };
  auto o = std::make_shared<Opt>();
  CLI::App* cmd = app.add_subcommand("generate", "Continue a prompt (KV cache; greedy, temperature, top-k, top-p)");
  cmd->add_option("source", o->src, "Run directory or checkpoint directory")->required();
  cmd->add_option("--prompt", o->prompt, "Text to continue")->required();
  cmd->add_option("--max-new-tokens", o->s.max_new_tokens, "Tokens to generate (default 64)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", o->s.temperature, "0: greedy (default); > 0: sample")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o->s.top_k, "Sample among the K most probable tokens (0: all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->s.top_p, "Sample among the most probable tokens of mass P (1: all)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->s.seed, "Seed of the sampling stream (default: the run's master seed)")->each([o](const std::string&) {
    o->seed_given = true;
  });
  cmd->add_flag("--ids", o->ids, "Also print the generated ids");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at the end-of-text id");
  cmd->add_option("--device", o->device, "cpu (default) or cuda");
  cmd->callback([o] {
    if (o->s.top_p <= 0) throw ConfigError("--top-p must be above 0");
    const ModelSource src = open_model_source(o->src);
    const auto tok = open_source_tokenizer(src);
    std::vector<int32_t> prompt = tok->encode(o->prompt);
    if (prompt.empty()) prompt.push_back(tok->eos_id());
    SamplingOptions s = o->s;
    if (!o->seed_given) s.seed = src.manifest.meta.master_seed;
    s.stop_at_eos = !o->ignore_eos;
    auto model = load_model(src, exec_of(o->device));
    KvDecoder dec(*model);
    if (s.temperature > 0)
      std::fprintf(stderr, "generate: sampling with seed %llu (stream \"generate\"; --seed to repeat)\n",
                   static_cast<unsigned long long>(s.seed));
    const std::vector<int32_t> out = generate_tokens(dec, prompt, tok->eos_id(), s);
    // The prompt and the continuation decoded as one sequence (decoding the continuation alone
    // would drop the space a SentencePiece piece starts with).
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), out.begin(), out.end());
    std::printf("%s\n", tok->decode(all).c_str());
    if (o->ids) std::printf("ids: %s\n", ids_text(out).c_str());
  });
}

void add_eval(CLI::App& app) {
  struct Opt {
    std::string src, data, device = "cpu";
    int64_t seq_len = 0, batch = 8;
    bool json = false, quiet = false, lines = false;
  };
  auto o = std::make_shared<Opt>();
  CLI::App* cmd = app.add_subcommand("eval", "Loss, perplexity and bits per byte on held-out text");
  cmd->add_option("source", o->src, "Run directory or checkpoint directory")->required();
  cmd->add_option("--data", o->data, "UTF-8 text file; documents separated by blank lines")->required();
  cmd->add_flag("--lines", o->lines, "Every non-blank line is a document");
  cmd->add_option("--seq-len", o->seq_len, "Window length (default: the recipe's train.seq_len)");
  cmd->add_option("--batch", o->batch, "Windows per forward (default 8)");
  cmd->add_option("--device", o->device, "cpu (default) or cuda");
  cmd->add_flag("--json", o->json, "Print one JSON object instead of the summary");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress");
  cmd->callback([o] {
    const ModelSource src = open_model_source(o->src);
    const auto tok = open_source_tokenizer(src);
    const std::string text = read_whole_file(o->data);
    auto model = load_model(src, exec_of(o->device));
    const int64_t T = o->seq_len > 0 ? o->seq_len : src.recipe.train.seq_len;
    const EvalResult r = evaluate_text(*model, *tok, text, T, o->batch, !o->quiet, o->lines);
    if (o->json) {
      std::printf("%s\n", nlohmann::json({{"documents", r.documents},
                                          {"tokens", r.tokens},
                                          {"bytes", r.bytes},
                                          {"loss", r.loss()},
                                          {"perplexity", r.perplexity()},
                                          {"bits_per_byte", r.bits_per_byte()},
                                          {"checkpoint", src.checkpoint.string()}})
                              .dump()
                              .c_str());
    } else {
      std::printf("eval %s on %s: %lld documents, %lld tokens, %lld bytes | loss %.4f | perplexity %.2f | %.4f bits/byte\n",
                  src.checkpoint.string().c_str(), o->data.c_str(), static_cast<long long>(r.documents),
                  static_cast<long long>(r.tokens), static_cast<long long>(r.bytes), r.loss(), r.perplexity(),
                  r.bits_per_byte());
    }
  });
}

}  // namespace

void add_model_commands(CLI::App& app) {
  add_export(app);
  add_logits(app);
  add_generate(app);
  add_eval(app);
}

}  // namespace ssiat::cli
