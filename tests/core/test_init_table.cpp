// The model-free table of initial tensors (core/init_table.h) is the model's: the same names,
// logical shapes and init specs in the same order as Llama<float>::views(), and regenerating from
// it gives the leaves and root the model's own init gives (so the verifier, which never builds a
// model, checks what the trainer committed to).
#include <gtest/gtest.h>

#include <vector>

#include "core/init_table.h"
#include "core/merkle.h"
#include "core/model.h"
#include "core/seed_registry.h"

namespace ssiat {
namespace {

ModelConfig config(bool tied, int64_t nkv, int64_t layers) {
  ModelConfig c;
  c.vocab_size = 50;
  c.n_layer = layers;
  c.d_model = 24;
  c.n_head = 4;
  c.n_kv_head = nkv;
  c.d_ff = 40;
  c.max_seq_len = 8;
  c.tied_embeddings = tied;
  c.init_std = 0.03;
  return c;
}

TEST(InitTable, IsTheModelsTableAndRegeneratesItsInit) {
  for (bool tied : {false, true})
    for (int64_t nkv : {1, 2, 4})
      for (int64_t layers : {1, 3}) {
        SCOPED_TRACE(testing::Message() << "tied " << tied << " nkv " << nkv << " layers " << layers);
        const ModelConfig cfg = config(tied, nkv, layers);
        Llama<float> model(cfg);
        const std::vector<TensorInit> table = init_table(cfg);
        ASSERT_EQ(table.size(), model.views().size());
        for (size_t i = 0; i < table.size(); i++) {
          const ParamView& v = model.views()[i];
          EXPECT_EQ(table[i].name, v.name);
          EXPECT_EQ(table[i].shape, v.shape) << v.name;
          EXPECT_EQ(table[i].init.to_json(), v.init.to_json()) << v.name;
        }
        SeedRegistry reg(4242, SeedSource::kRecipe);
        const std::vector<InitHash> hashes = model.init_weights(reg);
        const RegeneratedInit g = regenerate_init(cfg, 4242);
        std::vector<Digest> leaves;
        for (size_t i = 0; i < hashes.size(); i++) {
          EXPECT_EQ(g.leaves[i], hashes[i].leaf) << table[i].name;
          leaves.push_back(*digest_from_hex(hashes[i].leaf));
        }
        EXPECT_EQ(g.root, digest_hex(merkle_root(leaves)));
        EXPECT_NE(regenerate_init(cfg, 4243).root, g.root);
      }
}

}  // namespace
}  // namespace ssiat
