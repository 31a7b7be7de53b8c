// The model's initial-tensor table and its regeneration (contract in core/init_table.h).
#include "core/init_table.h"

#include <algorithm>
#include <cmath>
#include <memory>

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

// Each tensor is drawn and hashed in pieces of kPiece elements, as OpenMP tasks: piece k is drawn
// by any thread while the pieces before it are hashed in order on another (a leaf is one SHA-256
// stream, so hashing is serial per leaf; drawing is not). Without a visitor the pieces go through
// a ring of kSlots buffers and no tensor is ever held whole; with one, into the tensor, which the
// visitor then sees. Without OpenMP the tasks run in program order: the same leaves.
RegeneratedInit regenerate_init(const ModelConfig& m, uint64_t seed, TensorVisitor each, void* ctx) {
  constexpr int64_t kPiece = 1 << 18;  // 1 MiB of float32
  constexpr int kSlots = 8;
  const std::vector<TensorInit> table = init_table(m);
  for (const TensorInit& t : table) t.init.validate();  // nothing may throw inside the tasks
  std::vector<Digest> leaves(table.size());
  std::vector<float> ring(each ? 0 : static_cast<size_t>(kPiece) * kSlots), whole;
  char slot_dep[kSlots] = {};
  [[maybe_unused]] char hash_dep = 0;
  [[maybe_unused]] char* slot = slot_dep;  // (the dependence list items; unused without OpenMP)
  int64_t piece_no = 0;
#pragma omp parallel
#pragma omp single
  for (size_t i = 0; i < table.size(); i++) {
    const TensorInit& t = table[i];
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    if (each) whole.resize(static_cast<size_t>(n));
    const bool constant = t.init.kind == InitKind::kZeros || t.init.kind == InitKind::kOnes;
    const PhiloxKey key = constant ? PhiloxKey{} : SeedRegistry::derive_key(seed, "init/" + t.name);
    auto hasher = std::make_shared<LeafHasher>();
    hasher->update(init_leaf_header(t.name, "float32", t.shape, t.init, static_cast<uint64_t>(n) * sizeof(float)));
    for (int64_t off = 0; off < n; off += kPiece, piece_no++) {
      const int64_t len = std::min(kPiece, n - off);
      const int s = static_cast<int>(piece_no % kSlots);
      float* buf = each ? whole.data() + off : ring.data() + static_cast<size_t>(s) * kPiece;
#pragma omp task default(none) firstprivate(buf, off, len, key) shared(t) depend(out : slot[s])
      init_fill_serial(buf, static_cast<uint64_t>(off), len, t.init, key);
#pragma omp task default(none) firstprivate(buf, len, hasher) depend(inout : slot[s]) depend(inout : hash_dep)
      hasher->update(buf, static_cast<size_t>(len) * sizeof(float));
    }
#pragma omp task default(none) firstprivate(hasher, i) shared(leaves) depend(inout : hash_dep)
    leaves[i] = hasher->finish();
    if (each) {
#pragma omp taskwait
      each(ctx, i, t, whole.data(), n);
    }
  }
  RegeneratedInit r;
  for (const Digest& d : leaves) r.leaves.push_back(digest_hex(d));
  r.root = digest_hex(merkle_root(leaves));
  return r;
}

}  // namespace ssiat
