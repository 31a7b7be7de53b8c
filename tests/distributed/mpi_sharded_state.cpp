// Checkpoint state across layouts (core/sharded_state.h) under mpirun -np 2 and 4: a logical
// state (weights and both moments, every element distinct) is restored onto each layout the
// world allows — dp, dp with ZeRO-1, tp, dp × tp with and without ZeRO-1 — and saved back:
// - every rank holds exactly its part: its tp block of each weight, and of the moments its
//   share (ZeRO-1: about 1/dp of them);
// - what the one writer (global rank 0) assembles is the original state, byte for byte, so a
//   checkpoint written by N ranks is the one a single rank writes for the same state, and a run
//   saved on one layout resumes on any other with identical weights and moments.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/data_parallel.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/philox.h"
#include "core/ranks.h"
#include "core/sharded_state.h"
#include "distributed/comm.h"
#include "tests/distributed/mpi_test_main.h"
#include "tests/distributed/mpi_test_util.h"

namespace ssiat {
namespace {

// Sharded dimensions divisible by 4: NH 8, NKV 4, F 96, V 264.
ModelConfig config() {
  ModelConfig c;
  c.vocab_size = 264;
  c.n_layer = 2;
  c.d_model = 16;
  c.n_head = 8;
  c.n_kv_head = 4;
  c.d_ff = 96;
  c.max_seq_len = 8;
  return c;
}

// Element i of tensor `key`: distinct, sign and exponent varying (a wrong placement shows).
float value(const std::string& key, int64_t i) {
  uint32_t h = 2166136261u;
  for (char c : key) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  const PhiloxCounter r = philox4x32_10({static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), h, 0}, {3, 5});
  return static_cast<float>(static_cast<int32_t>(r[0])) * 1e-9f + static_cast<float>(i) * 1e-3f;
}

// The logical state of `model` as rank 0 would read it from a checkpoint.
LoadedCheckpoint logical_state(const Llama<float>& model) {
  LoadedCheckpoint ck;
  for (const auto& v : model.views())
    for (const char* g : {"param/", "adam_m/", "adam_v/"}) {
      const std::string key = g + v.name;
      int64_t n = 1;
      for (int64_t d : v.shape) n *= d;
      std::vector<float> t(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; i++) t[i] = value(key, i);
      ck.shapes[key] = v.shape;
      ck.tensors[key] = std::move(t);
    }
  return ck;
}

struct LayoutCase {
  int dp, tp;
  bool zero1;
};

void round_trip(const LayoutCase& c) {
  SCOPED_TRACE("dp " + std::to_string(c.dp) + " x tp " + std::to_string(c.tp) + (c.zero1 ? " ZeRO-1" : ""));
  const ModelConfig cfg = config();
  Ranks ranks = split_ranks(distributed::make_mpi_communicator(), c.dp, c.tp,
                            {cfg.n_head, cfg.n_kv_head, cfg.d_ff, cfg.vocab_size});
  Llama<float> model(cfg, {}, TensorParallel{ranks.tp.get(), ranks.tp->size(), ranks.tp->rank()});
  DataParallel dpar(*ranks.dp, *ranks.dp, model.num_params(), model.views(), c.zero1, /*bucket_elems=*/1000);
  AdamW<float> adamw(OptimConfig{}, dpar.state_size(), model.backend());
  HostState state(model, adamw);
  if (c.zero1 && c.dp > 1) {
    EXPECT_LE(dpar.state_size(), model.num_params() / c.dp + 1000) << "moments shrink by dp";
  }

  const LoadedCheckpoint full = logical_state(model);
  restore_tensors(ranks.root() ? &full : nullptr, model, state, dpar, *ranks.world, "test");

  // Each rank holds exactly its part.
  for (const auto& v : model.views()) {
    const int64_t cols = v.shape.back();
    const auto& w = full.tensors.at("param/" + v.name);
    for (int64_t r = 0; r < v.block.rows.length; r++)
      for (int64_t k = 0; k < v.block.cols.length; k++) {
        const float want = w[(v.block.rows.start + r) * cols + v.block.cols.start + k];
        ASSERT_EQ(model.params()[v.offset + r * v.block.cols.length + k], want) << v.name << " on rank " << ranks.rank;
      }
  }
  // Saved back: what the writer gets is the original, byte for byte.
  Assembler as(state, dpar, ranks);
  if (ranks.root()) {
    const std::vector<CheckpointTensor> ts = checkpoint_tensors(model, state, as);
    ASSERT_EQ(ts.size(), full.tensors.size());
    std::vector<float> buf;
    for (const auto& t : ts) {
      const auto& want = full.tensors.at(t.key);
      const float* got = t.data;
      if (!got) {
        buf.assign(want.size(), 0.0f);
        t.fetch(buf.data());
        got = buf.data();
      }
      EXPECT_EQ(std::memcmp(got, want.data(), want.size() * sizeof(float)), 0) << t.key;
    }
  } else {
    serve_checkpoint_gathers(model, state, as);
  }
}

TEST(ShardedState, EveryLayoutRestoresItsPartAndSavesTheSameBytes) {
  const int W = ssiat::testing::world_size();
  std::vector<LayoutCase> cases = {{W, 1, false}, {W, 1, true}, {1, W, false}};
  if (W == 4) cases.insert(cases.end(), {{2, 2, false}, {2, 2, true}});
  for (const auto& c : cases) round_trip(c);
}

}  // namespace
}  // namespace ssiat
