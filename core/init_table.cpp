// The model's initial-tensor table and its regeneration (contract in core/init_table.h).
#include "core/init_table.h"

#include <cmath>

#include "core/init_leaf.h"
#include "core/seed_registry.h"

namespace ssiat {

std::vector<TensorInit> init_table(const ModelConfig& m) {
  m.validate();
  const int64_t V = m.vocab_size, C = m.d_model, L = m.n_layer, NH = m.n_head, F = m.d_ff;
  const int64_t NKV = m.n_kv_head > 0 ? m.n_kv_head : m.n_head, HS = C / NH;
  const InitSpec w = InitSpec::normal(0.0, m.init_std);
  // Output projections into the residual stream: init_std / sqrt(2L) (GPT-2, Megatron).
  const InitSpec out = InitSpec::normal(0.0, m.init_std / std::sqrt(2.0 * static_cast<double>(L)));
  std::vector<TensorInit> t = {{"model.embed_tokens.weight", {V, C}, w}};
  for (int64_t l = 0; l < L; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", {C}, InitSpec::ones()});
    t.push_back({p + "self_attn.q_proj.weight", {NH * HS, C}, w});
    t.push_back({p + "self_attn.k_proj.weight", {NKV * HS, C}, w});
    t.push_back({p + "self_attn.v_proj.weight", {NKV * HS, C}, w});
    t.push_back({p + "self_attn.o_proj.weight", {C, NH * HS}, out});
    t.push_back({p + "post_attention_layernorm.weight", {C}, InitSpec::ones()});
    t.push_back({p + "mlp.gate_proj.weight", {F, C}, w});
    t.push_back({p + "mlp.up_proj.weight", {F, C}, w});
    t.push_back({p + "mlp.down_proj.weight", {C, F}, out});
  }
  t.push_back({"model.norm.weight", {C}, InitSpec::ones()});
  if (!m.tied_embeddings) t.push_back({"lm_head.weight", {V, C}, w});
  return t;
}

RegeneratedInit regenerate_init(const ModelConfig& m, uint64_t seed, TensorVisitor each, void* ctx) {
  RegeneratedInit r;
  std::vector<Digest> leaves;
  std::vector<float> buf;
  const std::vector<TensorInit> table = init_table(m);
  for (size_t i = 0; i < table.size(); i++) {
    const TensorInit& t = table[i];
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    buf.resize(static_cast<size_t>(n));
    const bool constant = t.init.kind == InitKind::kZeros || t.init.kind == InitKind::kOnes;
    init_fill(buf.data(), 0, n, t.init, constant ? PhiloxKey{} : SeedRegistry::derive_key(seed, "init/" + t.name));
    leaves.push_back(init_leaf_hash(t.name, "float32", t.shape, t.init, buf.data(), static_cast<size_t>(n) * sizeof(float)));
    r.leaves.push_back(digest_hex(leaves.back()));
    if (each) each(ctx, i, t, buf.data(), n);
  }
  r.root = digest_hex(merkle_root(leaves));
  return r;
}

}  // namespace ssiat
