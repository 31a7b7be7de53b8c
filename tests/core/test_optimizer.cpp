// Optimizer-level tests: LR schedules against their closed forms, global-norm clipping, no
// weight decay on norms, and gradient accumulation equal to one larger batch.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/model.h"
#include "core/optimizer.h"
#include "core/seed_registry.h"

namespace ssiat {
namespace {

TEST(Schedule, WarmupThenCosineToMinLr) {
  OptimConfig o;
  o.lr = 1.0;
  o.min_lr = 0.1;
  ScheduleConfig s;
  s.kind = ScheduleKind::kCosine;
  s.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(lr_at(o, s, 110, 0), 0.1);   // (0 + 1) / 10
  EXPECT_DOUBLE_EQ(lr_at(o, s, 110, 9), 1.0);   // last warmup step reaches lr
  EXPECT_DOUBLE_EQ(lr_at(o, s, 110, 10), 1.0);  // cosine starts at lr
  EXPECT_NEAR(lr_at(o, s, 110, 60), 0.55, 1e-12);  // halfway: min + (lr - min) / 2
  EXPECT_NEAR(lr_at(o, s, 110, 35), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  for (int64_t t = 11; t < 110; t++) EXPECT_LT(lr_at(o, s, 110, t), lr_at(o, s, 110, t - 1));
  EXPECT_GT(lr_at(o, s, 110, 109), 0.1);
}

TEST(Schedule, WarmupStableDecay) {
  OptimConfig o;
  o.lr = 2.0;
  o.min_lr = 0.0;
  ScheduleConfig s;
  s.kind = ScheduleKind::kWsd;
  s.warmup_steps = 5;
  s.decay_fraction = 0.2;  // 100 steps: the last 20 decay
  EXPECT_DOUBLE_EQ(lr_at(o, s, 100, 2), 2.0 * 3 / 5);
  for (int64_t t = 5; t < 80; t++) EXPECT_DOUBLE_EQ(lr_at(o, s, 100, t), 2.0) << t;
  EXPECT_DOUBLE_EQ(lr_at(o, s, 100, 80), 2.0 - 2.0 * 1 / 20);
  EXPECT_DOUBLE_EQ(lr_at(o, s, 100, 89), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(o, s, 100, 99), 0.0);  // the final update uses min_lr
}

TEST(AdamWClip, ScalesToMaxNormAndReportsTheNormBefore) {
  OptimConfig o;
  o.grad_clip = 1.0;
  AdamW<double> opt(o, 4);
  std::vector<double> g = {3, 0, 4, 0};  // norm 5
  EXPECT_DOUBLE_EQ(opt.clip(g.data(), 4), 5.0);
  const double c = 1.0 / (5.0 + 1e-6);
  EXPECT_DOUBLE_EQ(g[0], 3 * c);
  EXPECT_DOUBLE_EQ(g[2], 4 * c);
  std::vector<double> small = {0.3, 0.4};  // norm 0.5 < 1: untouched
  AdamW<double> opt2(o, 2);
  EXPECT_DOUBLE_EQ(opt2.clip(small.data(), 2), 0.5);
  EXPECT_DOUBLE_EQ(small[0], 0.3);
}

TEST(AdamWUpdate, NoWeightDecayOnNorms) {
  OptimConfig o;
  o.weight_decay = 0.5;
  std::vector<ParamView> views(2);
  views[0] = {"w", {2}, 0, 2, InitSpec::zeros(), true};
  views[1] = {"norm", {2}, 2, 2, InitSpec::ones(), false};
  AdamW<double> opt(o, 4);
  std::vector<double> p = {1, 1, 1, 1}, g = {0, 0, 0, 0};
  opt.update(p.data(), g.data(), views, 0.1, 1);
  EXPECT_DOUBLE_EQ(p[0], 1 - 0.1 * 0.5);  // decayed: p *= 1 - lr * wd, zero gradient step
  EXPECT_DOUBLE_EQ(p[2], 1.0);            // norm: untouched
  EXPECT_DOUBLE_EQ(p[3], 1.0);
}

TEST(GradAccumulation, TwoHalfBatchesEqualOneBatch) {
  ModelConfig c;
  c.vocab_size = 13;
  c.n_layer = 1;
  c.d_model = 8;
  c.n_head = 2;
  c.n_kv_head = 2;
  c.d_ff = 16;
  c.max_seq_len = 4;
  c.init_std = 0.2;
  Llama<double> a(c), b(c);
  SeedRegistry r1(3, SeedSource::kRecipe), r2(3, SeedSource::kRecipe);
  a.init_weights(r1);
  b.init_weights(r2);
  std::vector<int32_t> x(16), y(16);
  for (int i = 0; i < 16; i++) x[i] = (i * 5 + 1) % 13, y[i] = (i * 3 + 2) % 13;
  a.zero_grads();
  a.forward(x.data(), y.data(), 4, 4, Pass::kTrain);
  a.backward();
  b.zero_grads();
  for (int half = 0; half < 2; half++) {
    b.forward(x.data() + half * 8, y.data() + half * 8, 2, 4, Pass::kTrain, 0.5);
    b.backward();
  }
  for (int64_t i = 0; i < a.num_params(); i++)
    ASSERT_NEAR(a.grads()[i], b.grads()[i], 1e-13 + 1e-10 * std::abs(a.grads()[i])) << i;
}

}  // namespace
}  // namespace ssiat
