// Hugging Face export (contract in core/export_hf.h).
#include "core/export_hf.h"

#include <cstdio>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "core/model_source.h"
#include "tokenizer/bpe.h"

namespace ssiat {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct Planned {
  std::string name;
  std::vector<int64_t> shape;
  int64_t bytes = 0;
  size_t shard = 0;
};

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// One shard file being written: its header first, then its tensors in header order.
class ShardWriter {
 public:
  ShardWriter(const fs::path& path, const std::vector<const Planned*>& tensors) : f_(path) {
    json header = json::object();
    header["__metadata__"] = {{"format", "pt"}};
    int64_t off = 0;
    for (const Planned* t : tensors) {
      header[t->name] = {{"dtype", "F32"}, {"shape", t->shape}, {"data_offsets", {off, off + t->bytes}}};
      off += t->bytes;
    }
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
    const uint64_t len = h.size();  // little-endian host (core/init_leaf.h)
    f_.write(&len, 8);
    f_.write(h);
  }
  void write(const void* p, size_t n) { f_.write(p, n); }
  void close() { f_.finish(); }

 private:
  FileWriter f_;
};

std::string shard_name(size_t k, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", k + 1, n);
  return buf;
}

void write_json(const fs::path& path, const json& j) { write_file_atomic(path, j.dump(2) + "\n"); }

json llama_config(const ModelConfig& m, int32_t bos, int32_t eos) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", m.vocab_size},
          {"hidden_size", m.d_model},
          {"intermediate_size", m.d_ff},
          {"num_hidden_layers", m.n_layer},
          {"num_attention_heads", m.n_head},
          {"num_key_value_heads", m.n_kv_head > 0 ? m.n_kv_head : m.n_head},
          {"head_dim", m.head_dim()},
          {"hidden_act", "silu"},
          {"max_position_embeddings", m.max_seq_len},
          {"rms_norm_eps", m.norm_eps},
          {"rope_theta", m.rope_theta},
          {"rope_scaling", nullptr},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"mlp_bias", false},
          {"pretraining_tp", 1},
          {"initializer_range", m.init_std},
          {"tie_word_embeddings", m.tied_embeddings},
          {"torch_dtype", "float32"},
          {"use_cache", true},
          {"bos_token_id", bos},
          {"eos_token_id", eos}};
}

}  // namespace

ExportResult export_hf(const fs::path& source, const ExportOptions& opt) {
  if (opt.shard_bytes < 1) throw ConfigError("export: --shard-size must be positive");
  std::error_code ec;
  if (fs::exists(opt.out, ec) && !(fs::is_directory(opt.out, ec) && fs::is_empty(opt.out, ec)))
    throw IoError(opt.out.string() + ": exists and is not an empty directory; choose another --out");
  const ModelSource src = open_model_source(source);
  const auto tok = open_source_tokenizer(src);

  // The plan: every parameter in name order, cut into shards.
  std::vector<Planned> plan;
  for (const auto& [key, t] : src.manifest.tensors)
    if (key.rfind("param/", 0) == 0) plan.push_back({key.substr(6), t.shape, numel(t.shape) * 4, 0});
  if (plan.empty()) throw IntegrityError(src.checkpoint.string() + ": the checkpoint holds no parameter");
  size_t shards = 1;
  int64_t in_shard = 0, total = 0;
  for (auto& t : plan) {
    if (in_shard > 0 && in_shard + t.bytes > opt.shard_bytes) shards++, in_shard = 0;
    t.shard = shards - 1;
    in_shard += t.bytes;
    total += t.bytes;
  }
  std::vector<std::vector<const Planned*>> by_shard(shards);
  for (const auto& t : plan) by_shard[t.shard].push_back(&t);

  const fs::path out = fs::absolute(opt.out);
  const fs::path tmp = temporary_beside(out);
  remove_stale_temporaries(out.parent_path(), out.filename().string());  // of killed exports
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  ExportResult r;
  r.checkpoint = src.checkpoint;
  r.shards = static_cast<int64_t>(shards);
  try {
    std::unique_ptr<ShardWriter> w;
    size_t next = 0;  // index into plan of the tensor the stream must deliver next
    for_each_parameter(src, [&](const std::string& name, const std::vector<int64_t>& shape, std::vector<float>&& data) {
      if (next >= plan.size() || plan[next].name != name || plan[next].shape != shape)
        throw IntegrityError(src.checkpoint.string() + ": tensor param/" + name + " is not the manifest's next parameter");
      const Planned& t = plan[next];
      if (!w) w = std::make_unique<ShardWriter>(tmp / (shards == 1 ? "model.safetensors" : shard_name(t.shard, shards)), by_shard[t.shard]);
      w->write(data.data(), static_cast<size_t>(t.bytes));
      r.tensors++;
      r.bytes += t.bytes;
      if (opt.progress)
        std::fprintf(stderr, "export: %lld/%zu %s %.1f MB\n", static_cast<long long>(r.tensors), plan.size(), name.c_str(),
                     static_cast<double>(t.bytes) / 1e6);
      next++;
      if (next == plan.size() || plan[next].shard != t.shard) {
        w->close();
        w.reset();
      }
    });
    if (next != plan.size()) throw IntegrityError(src.checkpoint.string() + ": the checkpoint did not deliver param/" + plan[next].name);
    if (shards > 1) {
      json map = json::object();
      for (const auto& t : plan) map[t.name] = shard_name(t.shard, shards);
      write_json(tmp / "model.safetensors.index.json", {{"metadata", {{"total_size", total}}}, {"weight_map", map}});
    }
    const ModelConfig& m = src.recipe.model;
    write_json(tmp / "config.json", llama_config(m, tok->bos_id(), tok->eos_id()));
    write_json(tmp / "generation_config.json",
               {{"bos_token_id", tok->bos_id()}, {"eos_token_id", tok->eos_id()}, {"max_length", m.max_seq_len}});
    if (const auto* bpe = dynamic_cast<const tokenizer::BpeTokenizer*>(tok.get())) {
      for (const char* f : {"tokenizer.model", "tokenizer.json"}) fs::copy_file(src.tokenizer_dir / f, tmp / f);
      const auto& pieces = bpe->vocab().pieces;
      auto piece = [&](int32_t id) { return id >= 0 && id < static_cast<int32_t>(pieces.size()) ? json(pieces[id].text) : json(nullptr); };
      write_json(tmp / "tokenizer_config.json", {{"tokenizer_class", "PreTrainedTokenizerFast"},
                                                  {"bos_token", piece(bpe->vocab().bos_id)},
                                                  {"eos_token", piece(bpe->vocab().eos_id)},
                                                  {"unk_token", piece(bpe->vocab().unk_id)},
                                                  {"pad_token", piece(bpe->vocab().pad_id)},
                                                  {"add_bos_token", false},
                                                  {"add_eos_token", false},
                                                  {"clean_up_tokenization_spaces", false},
                                                  {"model_max_length", m.max_seq_len}});
      r.tokenizer = true;
    }
    if (fs::exists(out, ec)) fs::remove(out);  // an empty directory (checked above)
    publish_dir_atomic(tmp, out);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  return r;
}

}  // namespace ssiat
