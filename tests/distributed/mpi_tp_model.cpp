// The tensor-parallel Llama (core/model.h with core/tensor_parallel.h) under mpirun -np 2 and 4,
// the whole world as one tp group, against the one-rank model every rank also builds:
// - init: each rank's block of every tensor (column shards: embedding, q/k/v, gate/up, lm_head;
//   row shards: o_proj, down_proj; replicated norms) equals the matching slice of the one-rank
//   init, byte for byte; tp rank 0 records the logical tensors' hashes, as one rank does;
// - forward loss and every gradient block equal the one-rank values: f64 within 1e-12 relative,
//   f32 within 1e-5, tied and untied embeddings, with grouped-query attention;
// - the vocabulary-parallel cross-entropy in evaluation equals the one-rank loss too.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/memory_plan.h"
#include "core/model.h"
#include "core/philox.h"
#include "core/seed_registry.h"
#include "distributed/comm.h"
#include "tests/distributed/mpi_test_main.h"
#include "tests/distributed/mpi_test_util.h"

namespace ssiat {
namespace {

// Sharded dimensions divisible by 4: NH 8, NKV 4 (GQA, 2 query heads per kv head), F 96, V 264.
ModelConfig config(bool tied) {
  ModelConfig c;
  c.vocab_size = 264;
  c.n_layer = 2;
  c.d_model = 32;
  c.n_head = 8;
  c.n_kv_head = 4;
  c.d_ff = 96;
  c.max_seq_len = 16;
  c.tied_embeddings = tied;
  return c;
}

struct Pair {
  std::unique_ptr<distributed::Communicator> comm;
  TensorParallel tp;
};

Pair world_tp() {
  Pair p;
  p.comm = distributed::make_mpi_communicator();
  p.tp = {p.comm.get(), p.comm->size(), p.comm->rank()};
  return p;
}

// The block of the one-rank tensor `full` (logical (rows, cols), row-major) view v holds.
template <typename T>
std::vector<T> block_of(const T* full, const ParamView& v) {
  const int64_t cols = v.shape.back();
  std::vector<T> out;
  out.reserve(static_cast<size_t>(v.numel));
  for (int64_t r = v.block.rows.start; r < v.block.rows.end(); r++)
    for (int64_t c = v.block.cols.start; c < v.block.cols.end(); c++) out.push_back(full[r * cols + c]);
  return out;
}

// Random tokens and targets in [0, V), the same on every rank.
void tokens(std::vector<int32_t>& x, std::vector<int32_t>& y, int64_t n, int64_t V) {
  x.resize(static_cast<size_t>(n));
  y.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) {
    const PhiloxCounter r = philox4x32_10({static_cast<uint32_t>(i), 0, 0, 0}, PhiloxKey{7, 11});
    x[i] = static_cast<int32_t>(r[0] % static_cast<uint32_t>(V));
    y[i] = static_cast<int32_t>(r[1] % static_cast<uint32_t>(V));
  }
}

TEST(TpModel, EachRankDrawsExactlyItsSliceOfTheOneRankInit) {
  Pair p = world_tp();
  for (bool tied : {false, true}) {
    Llama<float> one(config(tied));
    Llama<float> shard(config(tied), {}, p.tp);
    SeedRegistry r1(1234, SeedSource::kRecipe), r2(1234, SeedSource::kRecipe);
    const auto h1 = one.init_weights(r1);
    const auto h2 = shard.init_weights(r2);
    ASSERT_EQ(one.views().size(), shard.views().size());
    bool saw_row = false, saw_col = false;
    for (size_t i = 0; i < one.views().size(); i++) {
      const ParamView& vf = one.views()[i];
      const ParamView& vs = shard.views()[i];
      ASSERT_EQ(vf.name, vs.name);
      EXPECT_EQ(vf.shape, vs.shape) << vs.name << ": logical shapes";
      saw_row |= vs.shard == distributed::ShardKind::kRow;
      saw_col |= vs.shard == distributed::ShardKind::kColumn;
      if (vs.shard != distributed::ShardKind::kReplicated) {
        EXPECT_LT(vs.numel, vf.numel) << vs.name;
      }
      const std::vector<float> want = block_of(one.params() + vf.offset, vs);
      ASSERT_EQ(static_cast<int64_t>(want.size()), vs.numel) << vs.name;
      EXPECT_EQ(std::memcmp(want.data(), shard.params() + vs.offset, want.size() * sizeof(float)), 0)
          << vs.name << " on tp rank " << p.tp.rank;
      if (p.tp.rank == 0) {
        EXPECT_EQ(h1[i], h2[i]) << vs.name << ": the logical tensor's hash";
      }
    }
    EXPECT_TRUE(saw_row && saw_col);
    // The memory plan of a tp rank counts exactly the parameters the rank holds.
    Recipe r;
    r.model = config(tied);
    r.train.micro_batch = 1;
    r.train.seq_len = 8;
    r.parallel.tp = p.tp.size;
    EXPECT_EQ(plan_memory(r, PlanFor::kTrain).num_params, shard.num_params());
  }
}

template <typename T>
void expect_loss_and_grads_match(const TensorParallel& tp, bool tied, double tol) {
  const ModelConfig cfg = config(tied);
  Llama<T> one(cfg);
  Llama<T> shard(cfg, {}, tp);
  SeedRegistry r1(99, SeedSource::kRecipe), r2(99, SeedSource::kRecipe);
  one.init_weights(r1);
  shard.init_weights(r2);
  const int64_t B = 2, Tn = 16;
  std::vector<int32_t> x, y;
  tokens(x, y, B * Tn, cfg.vocab_size);
  one.zero_grads();
  shard.zero_grads();
  const double l1 = one.forward(x.data(), y.data(), B, Tn, Pass::kTrain);
  const double l2 = shard.forward(x.data(), y.data(), B, Tn, Pass::kTrain);
  EXPECT_NEAR(l2, l1, tol * std::abs(l1)) << "loss";
  one.backward();
  shard.backward();
  for (size_t i = 0; i < one.views().size(); i++) {
    const ParamView& vf = one.views()[i];
    const ParamView& vs = shard.views()[i];
    const std::vector<T> want = block_of(one.grads() + vf.offset, vs);
    double scale = 0, diff = 0;
    for (int64_t k = 0; k < vs.numel; k++) {
      scale = std::max(scale, std::abs(static_cast<double>(want[k])));
      diff = std::max(diff, std::abs(static_cast<double>(want[k]) - static_cast<double>(shard.grads()[vs.offset + k])));
    }
    EXPECT_GT(scale, 0.0) << vs.name;
    EXPECT_LE(diff, tol * scale) << vs.name << " gradient on tp rank " << tp.rank << (tied ? " (tied)" : "");
  }
  // Evaluation (no gradient): the same loss.
  const double e1 = one.forward(x.data(), y.data(), B, Tn, Pass::kEval);
  const double e2 = shard.forward(x.data(), y.data(), B, Tn, Pass::kEval);
  EXPECT_NEAR(e2, e1, tol * std::abs(e1)) << "eval loss";
}

TEST(TpModel, LossAndEveryGradientMatchOneRankF64) {
  Pair p = world_tp();
  for (bool tied : {false, true}) expect_loss_and_grads_match<double>(p.tp, tied, 1e-12);
}

TEST(TpModel, LossAndEveryGradientMatchOneRankF32) {
  Pair p = world_tp();
  for (bool tied : {false, true}) expect_loss_and_grads_match<float>(p.tp, tied, 1e-5);
}

// tp must divide every sharded dimension: refused by the model, naming the rule.
TEST(TpModel, RefusesDimensionsTpDoesNotDivide) {
  Pair p = world_tp();
  ModelConfig c = config(false);
  c.vocab_size = 263;
  try {
    Llama<float> m(c, {}, p.tp);
    FAIL() << "vocab_size 263 accepted at tp " << p.tp.size;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not divide model.vocab_size = 263"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ssiat
