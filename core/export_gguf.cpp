// GGUF export (contract in core/export_gguf.h).
#include "core/export_gguf.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/model_source.h"
#include "tokenizer/bpe.h"

namespace ssiat {

namespace fs = std::filesystem;

void permute_rope_rows_for_gguf(float* dst, const float* src, int64_t heads, int64_t head_size, int64_t cols) {
  const int64_t half = head_size / 2;
  for (int64_t h = 0; h < heads; h++)
    for (int64_t j = 0; j < half; j++)
      for (int64_t s = 0; s < 2; s++)
        std::memcpy(dst + (h * head_size + 2 * j + s) * cols, src + (h * head_size + s * half + j) * cols,
                    static_cast<size_t>(cols) * sizeof(float));
}

namespace {

constexpr uint64_t kAlign = 32;
enum GgufType : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

// The metadata section, built in memory (its size decides where the data starts).
class Meta {
 public:
  void u32(const std::string& key, uint32_t v) { head(key, kU32), raw(&v, 4); }
  void f32(const std::string& key, float v) { head(key, kF32), raw(&v, 4); }
  void boolean(const std::string& key, bool v) {
    head(key, kBool);
    const uint8_t b = v ? 1 : 0;
    raw(&b, 1);
  }
  void str(const std::string& key, const std::string& v) { head(key, kString), string(v); }
  void strings(const std::string& key, const std::vector<std::string>& v) {
    array_head(key, kString, v.size());
    for (const auto& s : v) string(s);
  }
  void f32s(const std::string& key, const std::vector<float>& v) {
    array_head(key, kF32, v.size());
    raw(v.data(), v.size() * 4);
  }
  void i32s(const std::string& key, const std::vector<int32_t>& v) {
    array_head(key, kI32, v.size());
    raw(v.data(), v.size() * 4);
  }
  uint64_t count() const { return count_; }
  const std::string& bytes() const { return out_; }
  void raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void u64(uint64_t v) { raw(&v, 8); }
  void string(const std::string& s) { u64(s.size()), out_.append(s); }

 private:
  void head(const std::string& key, uint32_t type) {
    string(key);
    raw(&type, 4);
    count_++;
  }
  void array_head(const std::string& key, uint32_t elem, uint64_t n) {
    head(key, kArray);
    raw(&elem, 4);
    u64(n);
  }
  std::string out_;
  uint64_t count_ = 0;
};

struct GgufTensor {
  std::string ours, theirs;
  std::vector<int64_t> shape;  // ours, row-major
  uint64_t offset = 0, bytes = 0;
  int64_t rope_heads = 0;      // > 0: q or k, rows permuted over this many heads
};

// Our tensor name -> llama.cpp's (empty: unknown).
std::string gguf_name(const std::string& n) {
  static const std::map<std::string, std::string> kLayer = {
      {"input_layernorm.weight", "attn_norm.weight"},  {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},    {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},     {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  if (n == "model.embed_tokens.weight") return "token_embd.weight";
  if (n == "model.norm.weight") return "output_norm.weight";
  if (n == "lm_head.weight") return "output.weight";
  const std::string p = "model.layers.";
  if (n.rfind(p, 0) != 0) return "";
  const size_t dot = n.find('.', p.size());
  if (dot == std::string::npos) return "";
  const auto it = kLayer.find(n.substr(dot + 1));
  return it == kLayer.end() ? "" : "blk." + n.substr(p.size(), dot - p.size()) + "." + it->second;
}

}  // namespace

ExportResult export_gguf(const fs::path& source, const fs::path& out, bool progress) {
  std::error_code ec;
  if (fs::exists(out, ec)) throw IoError(out.string() + ": exists; choose another --out (a new .gguf file)");
  const ModelSource src = open_model_source(source);
  const auto tok = open_source_tokenizer(src);
  const auto* bpe = dynamic_cast<const tokenizer::BpeTokenizer*>(tok.get());
  if (!bpe) throw ConfigError(src.checkpoint.string() + ": GGUF needs a BPE tokenizer (tokenizer.kind = \"bpe\"); this run uses the byte tokenizer");
  const ModelConfig& m = src.recipe.model;
  const int64_t NKV = m.n_kv_head > 0 ? m.n_kv_head : m.n_head;

  Meta meta;
  meta.str("general.architecture", "llama");
  meta.str("general.name", src.checkpoint.parent_path().parent_path().filename().string());
  meta.u32("general.alignment", static_cast<uint32_t>(kAlign));
  meta.u32("general.file_type", 0);
  meta.u32("llama.context_length", static_cast<uint32_t>(m.max_seq_len));
  meta.u32("llama.embedding_length", static_cast<uint32_t>(m.d_model));
  meta.u32("llama.block_count", static_cast<uint32_t>(m.n_layer));
  meta.u32("llama.feed_forward_length", static_cast<uint32_t>(m.d_ff));
  meta.u32("llama.rope.dimension_count", static_cast<uint32_t>(m.head_dim()));
  meta.f32("llama.rope.freq_base", static_cast<float>(m.rope_theta));
  meta.u32("llama.attention.head_count", static_cast<uint32_t>(m.n_head));
  meta.u32("llama.attention.head_count_kv", static_cast<uint32_t>(NKV));
  meta.f32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(m.norm_eps));
  meta.u32("llama.vocab_size", static_cast<uint32_t>(m.vocab_size));
  const tokenizer::Vocab& v = bpe->vocab();
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (const auto& p : v.pieces) {
    pieces.push_back(p.text);
    scores.push_back(p.score);
    types.push_back(static_cast<int32_t>(p.type));
  }
  meta.str("tokenizer.ggml.model", "llama");
  meta.strings("tokenizer.ggml.tokens", pieces);
  meta.f32s("tokenizer.ggml.scores", scores);
  meta.i32s("tokenizer.ggml.token_type", types);
  meta.u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos_id));
  meta.u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos_id));
  meta.u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk_id));
  if (v.pad_id >= 0) meta.u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(v.pad_id));
  meta.boolean("tokenizer.ggml.add_bos_token", false);
  meta.boolean("tokenizer.ggml.add_eos_token", false);
  meta.boolean("tokenizer.ggml.add_space_prefix", v.normalizer.add_dummy_prefix);

  // Tensor infos in the checkpoint's (name) order, which the stream below follows.
  std::vector<GgufTensor> tensors;
  uint64_t off = 0;
  for (const auto& [key, t] : src.manifest.tensors) {
    if (key.rfind("param/", 0) != 0) continue;
    GgufTensor g{key.substr(6), gguf_name(key.substr(6)), t.shape, 0, 4, 0};
    if (g.theirs.empty()) throw IntegrityError(src.checkpoint.string() + ": tensor " + key + " has no llama.cpp name");
    for (int64_t d : t.shape) g.bytes *= static_cast<uint64_t>(d);
    if (g.ours.find("q_proj") != std::string::npos) g.rope_heads = m.n_head;
    if (g.ours.find("k_proj") != std::string::npos) g.rope_heads = NKV;
    off = (off + kAlign - 1) / kAlign * kAlign;
    g.offset = off;
    off += g.bytes;
    tensors.push_back(std::move(g));
  }
  Meta infos;  // tensor infos reuse the string and integer encoders
  for (const auto& g : tensors) {
    infos.string(g.theirs);
    const uint32_t nd = static_cast<uint32_t>(g.shape.size());
    infos.raw(&nd, 4);
    for (size_t i = g.shape.size(); i-- > 0;) infos.u64(static_cast<uint64_t>(g.shape[i]));
    const uint32_t f32 = 0;
    infos.raw(&f32, 4);
    infos.u64(g.offset);
  }
  std::string head = "GGUF";
  const uint32_t version = 3;
  head.append(reinterpret_cast<const char*>(&version), 4);
  const uint64_t nt = tensors.size(), nkv = meta.count();
  head.append(reinterpret_cast<const char*>(&nt), 8);
  head.append(reinterpret_cast<const char*>(&nkv), 8);
  head += meta.bytes();
  head += infos.bytes();
  head.append((kAlign - head.size() % kAlign) % kAlign, '\0');

  const fs::path abs = fs::absolute(out);
  remove_stale_temporaries(abs.parent_path(), abs.filename().string());  // of killed exports
  FileWriter f(temporary_beside(abs));  // removed unless finished
  ExportResult r;
  r.checkpoint = src.checkpoint;
  r.shards = 1;
  r.tokenizer = true;
  {
    auto put = [&](const void* p, size_t n) { f.write(p, n); };
    put(head.data(), head.size());
    uint64_t at = 0;  // bytes of data written
    size_t next = 0;
    std::vector<float> permuted;
    for_each_parameter(src, [&](const std::string& name, const std::vector<int64_t>& shape, std::vector<float>&& data) {
      if (next >= tensors.size() || tensors[next].ours != name || tensors[next].shape != shape)
        throw IntegrityError(src.checkpoint.string() + ": tensor param/" + name + " is not the manifest's next parameter");
      const GgufTensor& g = tensors[next++];
      const std::string pad(g.offset - at, '\0');
      put(pad.data(), pad.size());
      const float* p = data.data();
      if (g.rope_heads > 0) {
        permuted.resize(data.size());
        permute_rope_rows_for_gguf(permuted.data(), data.data(), g.rope_heads, m.head_dim(), shape[1]);
        p = permuted.data();
      }
      put(p, g.bytes);
      at = g.offset + g.bytes;
      r.tensors++;
      r.bytes += static_cast<int64_t>(g.bytes);
      if (progress)
        std::fprintf(stderr, "export: %lld/%zu %s -> %s %.1f MB\n", static_cast<long long>(r.tensors), tensors.size(),
                     name.c_str(), g.theirs.c_str(), static_cast<double>(g.bytes) / 1e6);
    });
    if (next != tensors.size()) throw IntegrityError(src.checkpoint.string() + ": the checkpoint did not deliver param/" + tensors[next].ours);
    f.finish();
    fs::rename(f.path(), abs);
    fsync_path(abs.parent_path());
  }
  return r;
}

}  // namespace ssiat
