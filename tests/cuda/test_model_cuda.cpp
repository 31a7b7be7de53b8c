// The whole model on CUDA against the CPU (issue 8): the same core/model.cpp on both backends.
// - f32 operands: loss and every parameter's gradient equal the CPU's within f32 tolerance;
// - init: the weights on the GPU are the CPU generator's bits, the bf16 copy their rounding;
// - bf16 mixed precision: 50 AdamW steps of the ko-tiny shape follow the CPU f32 loss curve;
// - two GPU runs give identical bits; a GPU run resumed from a checkpoint is bit-exact (CLI);
// - KV-cache decoding on the GPU gives the CPU decoder's logits and greedy tokens.
// Every test skips with a reason where no CUDA device can be used.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/inference.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/recipe.h"
#include "core/seed_registry.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/tools/cli_test_util.h"

namespace fs = std::filesystem;

namespace {

using ssiat::ExecConfig;
using ssiat::Llama;
using ssiat::Pass;
using ssiat::Precision;

#define SKIP_WITHOUT_GPU()                                                                  \
  do {                                                                                      \
    const std::string why = ssiat::testing::cuda::gpu_skip_reason();                        \
    if (!why.empty()) GTEST_SKIP() << why;                                                  \
  } while (0)

ExecConfig on_cuda(Precision p) { return ExecConfig{ssiat::DeviceKind::kCuda, 0, p, false}; }

ssiat::ModelConfig small_config() {
  ssiat::ModelConfig c;
  c.vocab_size = 67;
  c.n_layer = 2;
  c.d_model = 48;
  c.n_head = 6;
  c.n_kv_head = 2;
  c.d_ff = 80;
  c.max_seq_len = 32;
  c.tied_embeddings = false;
  return c;
}

// Tokens from a fixed linear congruential stream (both backends see the same batch).
std::vector<int32_t> tokens(int64_t n, int64_t V, uint64_t salt) {
  std::vector<int32_t> t(n);
  uint64_t x = 0x9e3779b97f4a7c15ull ^ salt;
  for (auto& v : t) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(V));
  }
  return t;
}

double rel_l2(const float* a, const float* ref, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    const double d = static_cast<double>(a[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

TEST(CudaModel, InitialWeightsAreTheCpuBitsAndTheBf16CopyTheirRounding) {
  SKIP_WITHOUT_GPU();
  for (const bool tied : {false, true}) {
    ssiat::ModelConfig cfg = small_config();
    cfg.tied_embeddings = tied;
    Llama<float> cpu(cfg), gpu(cfg, on_cuda(Precision::kBf16));
    ssiat::SeedRegistry r1(7, ssiat::SeedSource::kRecipe), r2(7, ssiat::SeedSource::kRecipe);
    EXPECT_EQ(cpu.init_weights(r1), gpu.init_weights(r2));  // leaf hashes are taken on the host
    std::vector<float> w(gpu.num_params());
    gpu.copy_params_to_host(w.data());
    EXPECT_EQ(0, std::memcmp(w.data(), cpu.params(), w.size() * sizeof(float)));
    std::vector<ssiat::kernels::bf16> lp(gpu.num_params());
    ssiat::kernels::cuda::copy_bytes(lp.data(), gpu.params_lp(), static_cast<int64_t>(lp.size() * 2),
                                     ssiat::kernels::cuda::Copy::kDeviceToHost, gpu.backend().stream());
    for (int64_t i = 0; i < gpu.num_params(); i++)
      ASSERT_EQ(lp[i].bits, ssiat::kernels::bf16_from_float(w[i]).bits) << "element " << i;
  }
}

TEST(CudaModel, LossAndEveryGradientMatchTheCpuInF32) {
  SKIP_WITHOUT_GPU();
  for (const bool tied : {false, true}) {
    for (const bool recompute : {false, true}) {
      ssiat::ModelConfig cfg = small_config();
      cfg.tied_embeddings = tied;
      ExecConfig exec = on_cuda(Precision::kF32);
      exec.recompute = recompute;
      Llama<float> cpu(cfg), gpu(cfg, exec);
      ssiat::SeedRegistry r1(11, ssiat::SeedSource::kRecipe), r2(11, ssiat::SeedSource::kRecipe);
      cpu.init_weights(r1);
      gpu.init_weights(r2);
      const int64_t B = 2, T = 19;
      const auto x = tokens(B * T, cfg.vocab_size, 1), y = tokens(B * T, cfg.vocab_size, 2);
      const double lc = cpu.forward(x.data(), y.data(), B, T, Pass::kTrain);
      const double lg = gpu.forward(x.data(), y.data(), B, T, Pass::kTrain);
      EXPECT_NEAR(lg, lc, 1e-5 * std::abs(lc)) << "tied " << tied << " recompute " << recompute;
      cpu.backward();
      gpu.backward();
      std::vector<float> g(gpu.num_params());
      gpu.copy_grads_to_host(g.data());
      for (const auto& v : cpu.views())
        EXPECT_LE(rel_l2(g.data() + v.offset, cpu.grads() + v.offset, v.numel), 1e-4)
            << v.name << " tied " << tied << " recompute " << recompute;
    }
  }
}

// 50 steps of the ko-tiny shape (recipes/ko-tiny.toml's model and optimizer, shorter sequences)
// on byte-valued tokens of tests/data/ko_sample.txt: the GPU in bf16 against the CPU in f32.
TEST(CudaModel, Bf16TrainingFollowsTheCpuLossCurve) {
  SKIP_WITHOUT_GPU();
  const ssiat::Recipe r = ssiat::load_recipe(std::string(SSIAT_SOURCE_DIR) + "/recipes/ko-tiny.toml");
  const std::string text = ssiat::testing::slurp(fs::path(SSIAT_SOURCE_DIR) / "tests/data/ko_sample.txt");
  const int64_t B = 8, T = 128, steps = 50;
  ASSERT_GE(static_cast<int64_t>(text.size()), B * (T + 1) * 4);
  auto run = [&](Llama<float>& model, ssiat::AdamW<float>& opt) {
    ssiat::SeedRegistry reg(*r.seed, ssiat::SeedSource::kRecipe);
    model.init_weights(reg);
    std::vector<double> losses;
    std::vector<int32_t> x(B * T), y(B * T);
    for (int64_t s = 0; s < steps; s++) {
      for (int64_t i = 0; i < B * T; i++) {
        const size_t at = static_cast<size_t>((s * B * T + i) % (static_cast<int64_t>(text.size()) - 1));
        x[i] = static_cast<unsigned char>(text[at]);
        y[i] = static_cast<unsigned char>(text[at + 1]);
      }
      model.zero_grads();
      losses.push_back(model.forward(x.data(), y.data(), B, T, Pass::kTrain));
      model.backward();
      opt.clip(model.grads(), model.num_params());
      opt.update(model.params(), model.grads(), model.views(), ssiat::lr_at(r.optim, r.schedule, steps, s), s + 1,
                 model.params_lp());
    }
    return losses;
  };
  Llama<float> cpu(r.model), gpu(r.model, on_cuda(Precision::kBf16));
  ssiat::AdamW<float> ocpu(r.optim, cpu.num_params()), ogpu(r.optim, gpu.num_params(), gpu.backend());
  const auto lc = run(cpu, ocpu), lg = run(gpu, ogpu);
  ASSERT_LT(lc.back(), lc.front() - 1.0) << "the CPU run did not learn; the comparison would say nothing";
  for (int64_t s = 0; s < steps; s++)
    EXPECT_NEAR(lg[s], lc[s], 0.03 * lc[s] + 0.02) << "step " << s + 1;
}

// Head size 64, so bf16 runs the tensor-core attention (kernels/cuda/attention_bf16.cu).
TEST(CudaModel, TwoRunsAreBitwiseIdentical) {
  SKIP_WITHOUT_GPU();
  ssiat::ModelConfig cfg = small_config();
  cfg.d_model = 128;
  cfg.n_head = 2;
  cfg.n_kv_head = 1;
  ssiat::OptimConfig oc;
  oc.lr = 1e-2;
  auto run = [&] {
    Llama<float> m(cfg, on_cuda(Precision::kBf16));
    ssiat::AdamW<float> opt(oc, m.num_params(), m.backend());
    ssiat::SeedRegistry reg(3, ssiat::SeedSource::kRecipe);
    m.init_weights(reg);
    for (int64_t s = 0; s < 5; s++) {
      const auto x = tokens(4 * 32, cfg.vocab_size, 10 + s), y = tokens(4 * 32, cfg.vocab_size, 20 + s);
      m.zero_grads();
      m.forward(x.data(), y.data(), 4, 32, Pass::kTrain);
      m.backward();
      opt.clip(m.grads(), m.num_params());
      opt.update(m.params(), m.grads(), m.views(), oc.lr, s + 1, m.params_lp());
    }
    std::vector<float> w(m.num_params());
    m.copy_params_to_host(w.data());
    return w;
  };
  const auto a = run(), b = run();
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

// The CLI on a GPU: 6 steps straight against 3 steps, then --resume to 6: identical tensors.
TEST(CudaModel, ResumeIsBitExactOnTheGpu) {
  SKIP_WITHOUT_GPU();
  const fs::path dir = fs::path(SSIAT_BINARY_DIR) / "cuda_resume_test";
  ssiat::testing::write_tiny_inputs(dir);
  ASSERT_TRUE(ssiat::testing::prepare_tiny_data(dir));
  const std::string set = " -q --set train.device=cuda --set train.steps=6 --set train.eval_interval=0";
  using ssiat::testing::run_cli;
  ASSERT_EQ(run_cli(dir, "train tiny.toml --run-dir straight" + set).status, 0);
  ASSERT_EQ(run_cli(dir, "train tiny.toml --run-dir split --stop-after 3" + set).status, 0);
  ASSERT_EQ(run_cli(dir, "train tiny.toml --run-dir split --resume" + set).status, 0);
  const auto a = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir / "straight"));
  const auto b = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir / "split"));
  EXPECT_EQ(a.meta.step, 6);
  EXPECT_EQ(b.meta.step, 6);
  for (const auto& [key, va] : a.tensors)
    EXPECT_EQ(0, std::memcmp(va.data(), b.tensors.at(key).data(), va.size() * sizeof(float))) << key;
}

}  // namespace

// KV-cache decoding on the GPU (core/inference.h, issue 11): the same weights on both backends
// give the CPU decoder's logits at every position within f32 tolerance, the CPU forward's last
// row, and the same greedy tokens.
namespace {

TEST(CudaModel, KvCacheDecodingMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  for (const bool tied : {false, true}) {
    ssiat::ModelConfig cfg = small_config();
    cfg.tied_embeddings = tied;
    Llama<float> cpu(cfg), gpu(cfg, on_cuda(Precision::kF32));
    ssiat::SeedRegistry r1(5, ssiat::SeedSource::kRecipe), r2(5, ssiat::SeedSource::kRecipe);
    cpu.init_weights(r1);
    gpu.init_weights(r2);
    ssiat::KvDecoder dc(cpu), dg(gpu);
    const std::vector<int32_t> prompt = tokens(20, cfg.vocab_size, 9);
    const std::vector<float> full = ssiat::logits_of(cpu, prompt);
    const int64_t V = cfg.vocab_size;
    for (size_t t = 0; t < prompt.size(); t++) {
      const std::vector<float> a = dc.step(prompt[t]);
      const std::vector<float>& b = dg.step(prompt[t]);
      EXPECT_LT(rel_l2(b.data(), a.data(), V), 1e-5) << "position " << t << (tied ? " tied" : "");
      EXPECT_LT(rel_l2(b.data(), full.data() + t * V, V), 1e-5) << "position " << t;
    }
    ssiat::SamplingOptions greedy;
    greedy.max_new_tokens = 10;
    greedy.stop_at_eos = false;
    EXPECT_EQ(ssiat::generate_tokens(dc, prompt, 0, greedy), ssiat::generate_tokens(dg, prompt, 0, greedy));
  }
}

}  // namespace
