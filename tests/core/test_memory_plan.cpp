// The memory plan (core/memory_plan.h): parameter bytes equal the model's, activation bytes equal
// a hand count of core/model.h's buffers, overflowing sizes are refused naming the key, a plan
// above the available memory is refused in one line naming the bytes and the key, and the
// estimate tracks the real peak RSS of `ssiat bench train-step`. Checked size arithmetic in
// Buffer and the model.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "core/buffer.h"
#include "core/error.h"
#include "core/memory_plan.h"
#include "core/model.h"
#include "core/recipe.h"
#include "tests/common/cli.h"

namespace fs = std::filesystem;

namespace ssiat {
namespace {

// The tiny CLI test model: V 258, L 2, C 32, NH 4, NKV 2 (HS 8), F 64, B 4, T 32.
Recipe tiny() {
  Recipe r;
  r.path = "tiny.toml";
  r.model = {.vocab_size = 258, .n_layer = 2, .d_model = 32, .n_head = 4, .n_kv_head = 2, .d_ff = 64, .max_seq_len = 32};
  r.data.train = "prep/train";
  r.train.steps = 10;
  r.train.micro_batch = 4;
  r.train.seq_len = 32;
  r.optim.lr = 0.01;
  return r;
}

const MemoryItem& item(const MemoryPlan& p, const std::string& name) {
  for (const auto& it : p.items)
    if (it.name == name) return it;
  throw std::runtime_error("no item " + name);
}

TEST(MemoryPlan, ParameterCountIsTheModelsExactly) {
  for (bool tied : {false, true}) {
    for (int64_t nkv : {1, 2, 4}) {
      Recipe r = tiny();
      r.model.tied_embeddings = tied;
      r.model.n_kv_head = nkv;
      r.model.d_ff = 72;
      const Llama<float> model(r.model);
      const MemoryPlan plan = plan_memory(r, PlanFor::kTrain);
      EXPECT_EQ(plan.num_params, model.num_params()) << "tied " << tied << " nkv " << nkv;
      // Four flat buffers of P floats, each rounded up to 64 bytes as Buffer allocates.
      const int64_t bytes = (model.num_params() * 4 + 63) / 64 * 64;
      for (const char* name : {"parameters", "gradients", "AdamW m", "AdamW v"}) EXPECT_EQ(item(plan, name).bytes, bytes) << name;
    }
  }
  // The untied tiny model: embed + lm_head 2*258*32, per layer 2*32 + 32*32 + 2*16*32 + 32*32 + 3*64*32, final norm 32.
  EXPECT_EQ(count_params(tiny()), 2 * 258 * 32 + 2 * (64 + 1024 + 1024 + 1024 + 6144) + 32);
}

// Per rank under a layout: tp splits heads, MLP width and vocabulary (norms whole), ZeRO-1
// divides the moments by dp, only the writer holds a checkpoint being resumed, and a node's other
// ranks count against its memory.
TEST(MemoryPlan, PerRankUnderTheLayout) {
  Recipe r = tiny();
  r.model.vocab_size = 260;
  r.parallel.tp = 2;
  // embed + lm_head 2*130*32; per layer 2*32 (norms) + q 16*32 + k,v 2*8*32 + o 32*16 + 3*32*32; final norm 32.
  const int64_t local = 2 * 130 * 32 + 2 * (64 + 512 + 512 + 512 + 3072) + 32;
  const MemoryPlan tp2 = plan_memory(r, PlanFor::kTrain);
  EXPECT_EQ(tp2.num_params, local);
  EXPECT_EQ(item(tp2, "logits").bytes, 4 * 32 * 130 * 4);  // N * V/tp floats
  EXPECT_EQ(item(tp2, "vocab-parallel cross-entropy").bytes, 4 * 32 * 5 * 4);
  r.parallel.tp = 1;
  r.parallel.dp = 4;
  r.parallel.zero1 = true;
  const MemoryPlan z = plan_memory(r, PlanFor::kTrain);
  const int64_t P = count_params(r);
  EXPECT_EQ(item(z, "parameters").bytes, (P * 4 + 63) / 64 * 64);
  EXPECT_EQ(item(z, "AdamW m").bytes, ((P / 4 + 1) * 4 + 63) / 64 * 64);
  const MemoryPlan writer = plan_memory(r, PlanFor::kResume, {true, 1});
  const MemoryPlan other = plan_memory(r, PlanFor::kResume, {false, 1});
  EXPECT_EQ(item(writer, "checkpoint being resumed").bytes, 3 * P * 4);
  EXPECT_THROW(item(other, "checkpoint being resumed"), std::runtime_error);
  EXPECT_LT(other.total_bytes, writer.total_bytes);
  // A node whose other ranks cannot fit: refused, naming them.
  try {
    require_memory(r, PlanFor::kTrain, {true, 1'000'000});
    FAIL() << "a million ranks on one node fit";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find("(the node's other ranks: 999999*their plan = "), std::string::npos) << e.what();
  }
}

TEST(MemoryPlan, ActivationBytesMatchAHandCount) {
  // N = B*T = 128 tokens; HS = 8, QKV = (4 + 2*2)*8 = 64. Floats:
  //   per layer (x2 layers), residual (L+1): res 3*128*32 = 12288; resmid, ln1, ln2 3*2*128*32 = 24576;
  //   rstd1, rstd2 2*2*128 = 512; qkv 2*128*64 = 16384; att 2*128*32 = 8192; lse 2*128*4 = 1024;
  //   gu 2*128*128 = 32768; act 2*128*64 = 16384                                   -> 112128 floats
  //   scratch: lnf, proj, dres, dln 4*128*32 = 16384; datt 4096; rstdf, losses 256; dqkv 8192;
  //   dgu 16384; dact 8192                                      -> 53504 floats, + 128 int32 inputs
  //   logits 128*258 = 33024 floats; RoPE 2*32*4 = 256 floats.
  // Every buffer is a multiple of 64 bytes here, so no rounding.
  const MemoryPlan plan = plan_memory(tiny(), PlanFor::kBench);
  EXPECT_EQ(item(plan, "layer activations").bytes, 112128 * 4);
  EXPECT_EQ(item(plan, "head and backward scratch").bytes, 53504 * 4 + 128 * 4);
  EXPECT_EQ(item(plan, "logits").bytes, 33024 * 4);
  EXPECT_EQ(item(plan, "RoPE tables").bytes, 256 * 4);
  EXPECT_EQ(plan.activation_bytes, (112128 + 53504 + 128 + 33024 + 256) * 4);
  EXPECT_EQ(item(plan, "batch buffers").bytes, 2 * 128 * 4);
  EXPECT_EQ(item(plan, "logits").formula, "train.micro_batch*train.seq_len*model.vocab_size*4 B");
  int64_t sum = 0;
  for (const auto& it : plan.items) sum += it.bytes;
  EXPECT_EQ(plan.total_bytes, sum);
}

TEST(MemoryPlan, UsesCountTheirOwnBuffers) {
  Recipe r = tiny();
  r.data.val = "prep/val";
  const MemoryPlan bench = plan_memory(r, PlanFor::kBench), train = plan_memory(r, PlanFor::kTrain),
                   resume = plan_memory(r, PlanFor::kResume);
  EXPECT_EQ(item(train, "batch buffers").bytes, 2 * item(bench, "batch buffers").bytes) << "eval batches";
  EXPECT_EQ(item(resume, "checkpoint being resumed").bytes, 3 * resume.num_params * 4);
  EXPECT_EQ(resume.total_bytes - train.total_bytes, 3 * resume.num_params * 4);
  // Sampling after training grows the activations to micro_batch * max_seq_len tokens.
  r.model.max_seq_len = 64;
  r.train.sample_tokens = 100;
  const MemoryPlan sampled = plan_memory(r, PlanFor::kTrain);
  EXPECT_EQ(item(sampled, "logits").bytes, 4 * 64 * 258 * 4);
  EXPECT_EQ(item(sampled, "logits").formula, "train.micro_batch*model.max_seq_len*model.vocab_size*4 B");
  EXPECT_EQ(item(sampled, "sampling").bytes, 258 * 8);
}

// On a GPU the host keeps only the init draw and the checkpoint copies of weights and moments.
TEST(MemoryPlan, GpuRunsPlanTheHostsCopiesOnly) {
  Recipe r = tiny();
  r.train.device = ssiat::DeviceKind::kCuda;
  const int64_t P = count_params(r);
  for (const PlanFor use : {PlanFor::kTrain, PlanFor::kBench}) {
    const MemoryPlan plan = plan_memory(r, use);
    for (const char* gone : {"parameters", "gradients", "AdamW m", "AdamW v", "logits", "layer activations"})
      EXPECT_THROW(item(plan, gone), std::runtime_error) << gone;
    EXPECT_EQ(item(plan, "host copies (GPU run)").bytes, (use == PlanFor::kBench ? 1 : 4) * P * 4);
    const MemoryPlan cpu = plan_memory(tiny(), use);
    EXPECT_LT(plan.total_bytes, cpu.total_bytes);
  }
}

TEST(MemoryPlan, OverflowIsAConfigErrorNamingTheKey) {
  Recipe r = tiny();
  r.model.vocab_size = 2147483647;
  r.model.max_seq_len = int64_t{1} << 20;
  r.train.seq_len = int64_t{1} << 20;
  r.train.micro_batch = int64_t{1} << 20;
  try {
    plan_memory(r, PlanFor::kTrain);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "tiny.toml: model.vocab_size = 2147483647 with train.micro_batch*train.seq_len = 1099511627776 "
                 "overflows the logits size");
  }
  // An override is named as the origin of the key that overflowed.
  r.overrides = {"train.seq_len=1048576", "model.vocab_size=2147483647"};
  try {
    plan_memory(r, PlanFor::kTrain);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--set model.vocab_size=2147483647: model.vocab_size = 2147483647", 0), 0u) << e.what();
  }
  // d_model^2 overflows the parameter count (q_proj is d_model x d_model).
  Recipe big = tiny();
  big.model.d_model = int64_t{1} << 32;
  big.model.n_head = 2;
  big.model.n_kv_head = 2;
  try {
    count_params(big);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.d_model = 4294967296"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("overflows the parameter size"), std::string::npos) << e.what();
  }
  // The largest key is blamed, wherever it sits in the product.
  Recipe deep = tiny();
  deep.model.n_layer = INT64_MAX;
  deep.overrides = {"model.n_layer=9223372036854775807"};
  try {
    count_params(deep);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--set model.n_layer=9223372036854775807: model.n_layer = 9223372036854775807 with ", 0), 0u)
        << e.what();
  }
  // Loop counters: samples seen after train.steps * grad_accum * micro_batch.
  Recipe counters = tiny();
  counters.train.steps = int64_t{1} << 40;
  counters.train.grad_accum = int64_t{1} << 30;
  try {
    plan_memory(counters, PlanFor::kTrain);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.steps = 1099511627776"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("overflows the samples seen size"), std::string::npos) << e.what();
  }
}

TEST(MemoryPlan, RefusesAPlanAboveTheAvailableMemoryInOneLine) {
  const Recipe r = tiny();
  const MemoryPlan plan = plan_memory(r, PlanFor::kTrain);
  EXPECT_NO_THROW(check_memory(r, plan, {plan.total_bytes, "test"}));
  EXPECT_THROW(check_memory(r, plan, {plan.total_bytes - 1, "test"}), ResourceError);

  // Logits dominate: B 16, T 1024, V 65536 -> 4.0 GiB.
  Recipe big = tiny();
  big.model.vocab_size = 65536;
  big.model.max_seq_len = 1024;
  big.train.seq_len = 1024;
  big.train.micro_batch = 16;
  const MemoryPlan bp = plan_memory(big, PlanFor::kTrain);
  EXPECT_EQ(bp.largest().name, "logits");
  try {
    check_memory(big, bp, {int64_t{3} << 30, "MemAvailable"});
    FAIL() << "no error";
  } catch (const ResourceError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos);
    EXPECT_EQ(m.rfind("tiny.toml: needs " + format_bytes(bp.total_bytes) +
                          " (logits: train.micro_batch*train.seq_len*model.vocab_size*4 B = 4.0 GiB) but 3.0 GiB is "
                          "available (MemAvailable)",
                      0),
              0u)
        << m;
  }
}

TEST(MemoryPlan, FormatsBytes) {
  EXPECT_EQ(format_bytes(17), "17 B");
  EXPECT_EQ(format_bytes(3 * 1024), "3.0 KiB");
  EXPECT_EQ(format_bytes(int64_t{512} << 20), "512.0 MiB");
  EXPECT_EQ(format_bytes(static_cast<int64_t>(37.2 * (1 << 30))), "37.2 GiB");
}

TEST(MemoryPlan, AvailableMemoryIsReadOnLinux) {
  const auto a = available_memory();
  ASSERT_TRUE(a.has_value());
  EXPECT_GT(a->bytes, 0);
  EXPECT_FALSE(a->source.empty());
}

// Peak RSS of a fresh `ssiat bench train-step` process, minus that of the tiny model (code,
// libraries, threads), against the plan's difference: within 15%.
TEST(MemoryPlan, EstimateTracksThePeakResidentSetOfARealStep) {
  const fs::path dir = fs::temp_directory_path() / ("ssiat_mplan_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  testing::write_file(dir / "r.toml", R"([model]
vocab_size = 258
n_layer = 2
d_model = 32
n_head = 4
n_kv_head = 2
d_ff = 64
max_seq_len = 32
[data]
train = "unused"
[train]
steps = 1
micro_batch = 4
seq_len = 32
[optim]
lr = 0.01
)");
  const std::string medium =
      " --set model.vocab_size=4096 --set model.d_model=256 --set model.d_ff=512 --set train.micro_batch=8"
      " --set model.max_seq_len=128 --set train.seq_len=128";
  auto rss = [&](const std::string& sets) {
    const auto r = testing::run_cli(dir, "bench train-step r.toml --steps 1 --warmup 0" + sets);
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out)["peak_rss_mb"].get<double>() * 1024 * 1024;
  };
  const double measured = rss(medium) - rss("");
  fs::remove_all(dir);
  Recipe small = tiny(), mid = tiny();
  mid.model.vocab_size = 4096, mid.model.d_model = 256, mid.model.d_ff = 512, mid.train.micro_batch = 8;
  mid.model.max_seq_len = 128, mid.train.seq_len = 128;
  const double planned = static_cast<double>(plan_memory(mid, PlanFor::kBench).total_bytes -
                                             plan_memory(small, PlanFor::kBench).total_bytes);
  EXPECT_GT(planned, 100e6);  // big enough to dominate allocator noise
  EXPECT_NEAR(measured / planned, 1.0, 0.15) << "measured " << measured << " B, planned " << planned << " B";
}

TEST(CheckedSizes, BufferRefusesOverflowAndImpossibleAllocations) {
  Buffer<float> b;
  EXPECT_THROW(b.resize(INT64_MAX / 2), ResourceError);
  try {
    b.resize(int64_t{1} << 52);  // 16 PiB
    FAIL() << "allocated 16 PiB";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory"), std::string::npos) << e.what();
  }
  EXPECT_EQ(b.size(), 0);
  EXPECT_EQ(buffer_bytes<float>(3), 64);
  EXPECT_EQ(buffer_bytes<float>(17), 128);
  EXPECT_THROW(checked_mul(int64_t{1} << 32, int64_t{1} << 31, "x"), ResourceError);
  EXPECT_EQ(checked_mul(int64_t{1} << 31, int64_t{1} << 31, "x"), int64_t{1} << 62);
}

TEST(CheckedSizes, ModelWithOverflowingShapesThrowsNamingTheTensor) {
  ModelConfig cfg = tiny().model;
  cfg.d_model = int64_t{1} << 32;
  cfg.n_head = 2;
  cfg.n_kv_head = 2;
  try {
    Llama<float> model(cfg);
    FAIL() << "built a model of 2^64-element tensors";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find("self_attn.q_proj.weight"), std::string::npos) << e.what();
  }
}

// The one-line texts core/error.h builds for library exceptions (tools/cli/main.cpp prints them).
TEST(ErrorText, LibraryExceptionsBecomeOneLineNamingThePath) {
  EXPECT_EQ(errno_message(ENOSPC), "no space left on device");
  EXPECT_TRUE(is_disk_full(ENOSPC));
  EXPECT_FALSE(is_disk_full(EIO));
  const fs::path missing = fs::temp_directory_path() / ("ssiat_no_such_" + std::to_string(::getpid()));
  try {
    fs::rename(missing, missing.string() + "2");
    FAIL() << "renamed a missing file";
  } catch (const fs::filesystem_error& e) {
    EXPECT_EQ(describe_fs_error(e), missing.string() + " -> " + missing.string() + "2: cannot rename: no such file or directory");
  }
  try {
    (void)nlohmann::json::parse("{\"a\": 1}").at("a").get<std::string>();
    FAIL() << "no type error";
  } catch (const nlohmann::json::exception& e) {
    EXPECT_EQ(json_error_message(e), "type must be string, but is number");
  }
}

}  // namespace
}  // namespace ssiat
