// The launch plan (core/launch_plan.h): every per-rank figure of a small model equals a count
// made here by hand from the buffers core/model.h, core/optimizer.h and the CUDA GEMM hold; tp
// and ZeRO-1 divide what they should; recompute saves exactly (L - 1) layers of the recomputable
// buffers; the items shared with core/memory_plan.h are its figures; a Llama-3-8B-shaped layout
// that does not fit is reported so, naming the largest item and the changes that fit.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/launch_plan.h"
#include "core/memory_plan.h"
#include "core/model.h"
#include "core/recipe.h"

namespace ssiat {
namespace {

// V 512, L 2, C 64, NH 4, NKV 2 (HS 16), F 128, untied; B 2, T 32: N = 64 tokens; CUDA, bf16.
Recipe small() {
  Recipe r;
  r.path = "small.toml";
  r.model = {.vocab_size = 512, .n_layer = 2, .d_model = 64, .n_head = 4, .n_kv_head = 2, .d_ff = 128,
             .max_seq_len = 64};
  r.data.train = "prep/train";
  r.train.steps = 10;
  r.train.micro_batch = 2;
  r.train.seq_len = 32;
  r.train.device = DeviceKind::kCuda;
  r.optim.lr = 0.01;
  return r;
}

constexpr int64_t kWorkspace = 32 << 20;  // cuBLASLt workspace, kernels/cuda/matmul.cu

TEST(LaunchPlan, OneRankMatchesAHandCount) {
  const Recipe r = small();
  const RankMemory m = rank_memory(r, {1, 1, false, false});
  // P: embed 512*64 = 32768, lm_head 32768; per layer ln1 64 + q 64*64 + k, v 2*(32*64) + o 64*64
  // + ln2 64 + gate, up, down 3*(128*64) = 64 + 4096 + 4096 + 4096 + 64 + 24576 = 36992, x2 =
  // 73984; final norm 64.  P = 65536 + 73984 + 64 = 139584.
  const int64_t P = 139584;
  EXPECT_EQ(count_params(r), P);
  EXPECT_EQ(m.weights_master, P * 4);   // 558336, a multiple of 64
  EXPECT_EQ(m.weights_working, P * 2);  // bf16 copy, 279168
  EXPECT_EQ(m.gradients, P * 4);
  EXPECT_EQ(m.moments, 2 * P * 4);
  // Layer activations (floats), QKV = (4 + 2*2)*16 = 128:
  //   res 3*64*64 = 12288; resmid 2*64*64 = 8192; ln1, ln2 2*2*64*64 = 16384; rstd1, rstd2
  //   2*2*64 = 256; qkv 2*64*128 = 16384; att 2*64*64 = 8192; lse 2*64*4 = 512;
  //   gate|up 2*64*256 = 32768; SwiGLU 2*64*128 = 16384                      -> 111360 floats
  EXPECT_EQ(m.activations, 111360 * 4);
  EXPECT_EQ(m.logits, 64 * 512 * 4);
  // Scratch: inputs 64 int32; lnf, proj, dres, dln 4*64*64 = 16384; datt 64*64 = 4096; rstdf,
  // losses 2*64 = 128; dqkv 64*128 = 8192; dgu 64*256 = 16384; dact 64*128 = 8192 -> 53376
  // floats; RoPE tables 2*64*8 = 1024 floats.
  EXPECT_EQ(m.scratch, 64 * 4 + 53376 * 4 + 1024 * 4);
  // GEMM: widest = max(QKV + C = 192, NH*HS + C = 128, 2F + C = 320, V + C = 576) = 576 bf16 per token.
  EXPECT_EQ(m.gemm, 64 * 576 * 2 + kWorkspace);
  EXPECT_EQ(m.total, 558336 + 279168 + 558336 + 1116672 + 445440 + 131072 + 217856 + 73728 + kWorkspace);
  EXPECT_EQ(m.total, 36935040);
  EXPECT_EQ(m.largest(), "gemm");  // the 32 MiB workspace dwarfs a model this small

  // f32 precision: no working copy, no bf16 GEMM operands.
  Recipe f = r;
  f.train.precision = Precision::kF32;
  const RankMemory mf = rank_memory(f, {1, 1, false, false});
  EXPECT_EQ(mf.weights_working, 0);
  EXPECT_EQ(mf.gemm, kWorkspace);
}

TEST(LaunchPlan, RecomputeKeepsOneLayerOfTheRecomputableBuffers) {
  const Recipe r = small();
  const RankMemory off = rank_memory(r, {1, 1, false, false});
  const RankMemory on = rank_memory(r, {1, 1, false, true});
  // Kept: res 12288 + resmid 8192 + rstd 256; one layer of ln1, ln2 2*64*64 = 8192, qkv 64*128 =
  // 8192, att 64*64 = 4096, lse 64*4 = 256, gate|up 64*256 = 16384, SwiGLU 64*128 = 8192.
  EXPECT_EQ(on.activations, (12288 + 8192 + 256 + 8192 + 8192 + 4096 + 256 + 16384 + 8192) * 4);
  // Saved: (L - 1) * N * (2C + QKV + NH*HS + NH + 3F) = 1 * 64 * (128 + 128 + 64 + 4 + 384) floats.
  EXPECT_EQ(off.activations - on.activations, 64 * 708 * 4);
  EXPECT_EQ(off.total - on.total, 64 * 708 * 4);
}

TEST(LaunchPlan, TensorParallelAndZero1DivideTheirShares) {
  const Recipe r = small();
  const RankMemory m = rank_memory(r, {2, 2, true, false});
  // Local: NH 2, NKV 1, F 64, V 256, QKV (2 + 2)*16 = 64. P_r: embed, lm_head 2*256*64 = 32768;
  // per layer 64 + q 32*64 + k, v 2*16*64 + o 64*32 + 64 + 3*64*64 = 18560, x2 = 37120; norm 64.
  const int64_t Pr = 32768 + 37120 + 64;  // 69952
  EXPECT_EQ(m.weights_master, Pr * 4);
  EXPECT_EQ(m.weights_working, Pr * 2);
  EXPECT_EQ(m.gradients, Pr * 4);  // the whole flat buffer, also under ZeRO-1
  // ZeRO-1 over dp 2: P_r/2 + P_r/2^24 + 1 = 34977 elements each, 139908 B rounded up to 139968.
  EXPECT_EQ(m.moments, 2 * 139968);
  // Per layer and token: 4C + 2 = 258 whole, QKV 64 + att 32 + lse 2 + 3F 192 split; plus res's extra row.
  EXPECT_EQ(m.activations, (64 * 2 * (258 + 64 + 32 + 2 + 192) + 64 * 64) * 4);
  EXPECT_EQ(m.logits, 64 * 256 * 4);
  // Scratch: inputs 64 int32; 4*64*64 + datt 64*32 + 2*64 + dqkv 64*64 + dgu 64*128 + dact 64*64
  // = 34944 floats; RoPE 1024 floats; vocab-parallel CE (tp + 3)*64 = 320 floats.
  EXPECT_EQ(m.scratch, 64 * 4 + (34944 + 1024 + 320) * 4);
  EXPECT_EQ(m.gemm, 64 * (256 + 64) * 2 + kWorkspace);  // widest: V/tp + C = 320
  EXPECT_EQ(m.total, 35082752);
  // Without ZeRO-1 the moments are whole; dp alone divides nothing else.
  const RankMemory plain = rank_memory(r, {2, 2, false, false});
  EXPECT_EQ(plain.moments, 2 * Pr * 4);
  EXPECT_EQ(plain.total - plain.moments, m.total - m.moments);
}

// The items a CUDA run shares with the trainer's host plan are that plan's figures, and the
// recompute count, run with every layer's slot, is memory_plan's layer activations.
TEST(LaunchPlan, AgreesWithTheMemoryPlan) {
  for (int64_t tp : {1, 2}) {
    for (int64_t nkv : {1, 2, 4}) {
      if (nkv % tp) continue;
      Recipe r = small();
      r.model.n_kv_head = nkv;
      r.parallel.tp = tp;
      r.parallel.dp = 3;
      r.parallel.zero1 = true;
      Recipe host = r;
      host.train.device = DeviceKind::kCpu;
      const MemoryPlan mp = plan_memory(host, PlanFor::kTrain);
      auto item = [&](const std::string& n) {
        for (const auto& it : mp.items)
          if (it.name == n) return it.bytes;
        ADD_FAILURE() << "no item " << n;
        return int64_t{0};
      };
      const RankMemory m = rank_memory(r, {3, tp, true, false});
      EXPECT_EQ(m.weights_master, item("parameters"));
      EXPECT_EQ(m.gradients, item("gradients"));
      EXPECT_EQ(m.moments, item("AdamW m") + item("AdamW v"));
      EXPECT_EQ(m.activations, item("layer activations"));
      EXPECT_EQ(m.logits, item("logits"));
      EXPECT_EQ(layer_activation_bytes(r, r.model.n_layer), item("layer activations")) << "tp " << tp << " nkv " << nkv;
    }
  }
}

TEST(LaunchPlan, FlopsPerTokenAreTheModels) {
  const Recipe r = small();
  // matmul = L*C*((NH + 2NKV)*HS + NH*HS + 3F) + V*C = 2*64*(128 + 64 + 384) + 512*64 = 106496;
  // 6 * 106496 + 12 * L * C * T = 638976 + 12*2*64*32 = 688128.
  const LaunchPlan p = plan_launch(r, 1, gpu_spec("h100"));
  EXPECT_DOUBLE_EQ(p.flops_per_token, 688128.0);
  EXPECT_DOUBLE_EQ(Llama<float>(r.model).flops_per_token(32), 688128.0);
  EXPECT_DOUBLE_EQ(p.tokens_per_s_per_gpu, 0.40 * 989.4e12 / 688128.0);
  EXPECT_TRUE(p.fits);
  EXPECT_TRUE(p.suggestions.empty());
}

TEST(LaunchPlan, GpusAndLayoutRules) {
  EXPECT_EQ(gpu_spec("h100").capacity_bytes, 80'000'000'000);
  EXPECT_EQ(gpu_spec("h100").usable_bytes(), 76'000'000'000);  // less 5 %
  EXPECT_EQ(gpu_spec("h200").capacity_bytes, 141'000'000'000);
  EXPECT_EQ(gpu_spec("h200").usable_bytes(), 133'950'000'000);
  try {
    gpu_spec("a100");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "--gpu = 'a100' is not a known GPU (must be h100 or h200)");
  }
  Recipe r = small();
  r.parallel.tp = 2;
  try {
    plan_launch(r, 3, gpu_spec("h100"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("small.toml: parallel.tp = 2 does not divide --gpus 3"), std::string::npos)
        << e.what();
  }
  // 8 GPUs for a dp 1 x tp 2 recipe: dp = 8 / 2 = 4, said in a note.
  const LaunchPlan p = plan_launch(r, 8, gpu_spec("h100"));
  EXPECT_EQ(p.layout, (LaunchLayout{4, 2, false, false}));
  EXPECT_FALSE(p.layout_from_recipe);
  ASSERT_FALSE(p.notes.empty());
  EXPECT_NE(p.notes[0].find("planned for 8 GPUs as dp 4"), std::string::npos) << p.notes[0];
  EXPECT_EQ(p.params, 139584);
  EXPECT_EQ(p.params_per_rank, 69952);
}

// Llama 3 8B shapes with a 64,000 vocabulary, B 1 x T 4096, dp 8 x tp 1, no ZeRO-1.
Recipe eight_b() {
  Recipe r = small();
  r.model = {.vocab_size = 64000, .n_layer = 32, .d_model = 4096, .n_head = 32, .n_kv_head = 8, .d_ff = 14336,
             .max_seq_len = 4096};
  r.train.micro_batch = 1;
  r.train.seq_len = 4096;
  r.parallel.dp = 8;
  return r;
}

TEST(LaunchPlan, ALayoutThatDoesNotFitNamesTheLargestItemAndWhatFits) {
  const Recipe r = eight_b();
  // P = 2*64000*4096 + 32*(2*4096 + 2*4096*4096 + 2*1024*4096 + 3*14336*4096) + 4096
  //   = 524,288,000 + 32*218,112,000 + 4096 = 7,503,876,096.
  const int64_t P = 7'503'876'096;
  const LaunchPlan h100 = plan_launch(r, 8, gpu_spec("h100"));
  EXPECT_EQ(h100.params, P);
  EXPECT_EQ(h100.without_recompute.moments, 2 * P * 4);  // 60.0e9 B: the largest item
  EXPECT_EQ(h100.without_recompute.weights(), P * 6);
  EXPECT_FALSE(h100.fits);
  EXPECT_EQ(h100.largest, "moments");
  EXPECT_GT(h100.as_set().total, 18 * P);  // state alone: 4 + 2 + 4 + 8 bytes a parameter > 76e9
  // On 76e9 usable bytes neither ZeRO-1 (18P -> 10P + 1P state, plus 36.5e9 of activations) nor
  // recompute nor both fit at tp 1; tp 2 (state 9P) with its 22.6e9 of activations does not either;
  // tp 4 does: the one suggestion, dp 2 with grad_accum 1 * 8 / 2 = 4.
  ASSERT_EQ(h100.suggestions.size(), 1u);
  EXPECT_EQ(h100.suggestions[0].layout, (LaunchLayout{2, 4, false, false}));
  EXPECT_EQ(h100.suggestions[0].change, "parallel.tp = 4 (dp 2; train.grad_accum = 4 keeps the global batch)");
  EXPECT_LE(h100.suggestions[0].total_bytes, gpu_spec("h100").usable_bytes());
  // On an H200 (133.95e9 usable) ZeRO-1 alone fits: 10P + P + activations ~ 121e9.
  const LaunchPlan h200 = plan_launch(r, 8, gpu_spec("h200"));
  EXPECT_FALSE(h200.fits);
  ASSERT_GE(h200.suggestions.size(), 1u);
  EXPECT_EQ(h200.suggestions[0].change, "parallel.zero1 = true");
  EXPECT_EQ(h200.suggestions[0].layout, (LaunchLayout{8, 1, true, false}));
}

}  // namespace
}  // namespace ssiat
