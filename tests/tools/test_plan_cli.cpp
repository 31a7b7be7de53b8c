// `ssiat plan` (tools/cli/cmd_plan.cpp) on the shipped recipes: ko-8b fits 8 H200s as its
// [parallel] says (exit 0) and does not fit 8 H100s (exit 2, naming the largest item and what
// would fit); --json carries the same figures; a --gpus that parallel.tp does not divide and an
// unknown --gpu fail with exit 1 and one line naming the key; ko-125m and ko-1b fit 8 H100s.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/common/cli.h"

namespace fs = std::filesystem;

namespace {

using ssiat::testing::Cmd;
using ssiat::testing::run_cli;

const std::string kRecipes = std::string(SSIAT_SOURCE_DIR) + "/recipes/";

class PlanCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ssiat_plan_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  Cmd plan(const std::string& args) { return run_cli(dir_, "plan " + args); }
  fs::path dir_;
};

void expect_contains(const std::string& text, const std::string& needle) {
  EXPECT_NE(text.find(needle), std::string::npos) << "'" << needle << "' not in:\n" << text;
}

void expect_one_line_error(const Cmd& r, const std::string& needle) {
  EXPECT_EQ(r.status, 1) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
  EXPECT_EQ(r.err.rfind("ssiat: ", 0), 0u) << r.err;
  expect_contains(r.err, needle);
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(PlanCli, Ko8bFitsEightH200sAndNotEightH100s) {
  const Cmd h200 = plan("'" + kRecipes + "ko-8b.toml' --gpus 8 --gpu h200");
  EXPECT_EQ(h200.status, 0) << h200.out << h200.err;
  expect_contains(h200.out, "on 8 x H200 SXM 141 GB");
  expect_contains(h200.out, "layout: dp 4 x tp 2, zero1 on, recompute off (the recipe's)");
  expect_contains(h200.out, "parameters: 7,503,876,096 total, 3,752,071,168 per rank");
  expect_contains(h200.out, "FITS: ");
  EXPECT_EQ(h200.out.find("DOES NOT FIT"), std::string::npos);

  const Cmd h100 = plan("'" + kRecipes + "ko-8b.toml' --gpus 8 --gpu h100");
  EXPECT_EQ(h100.status, 2) << h100.out << h100.err;
  EXPECT_TRUE(h100.err.empty()) << h100.err;
  expect_contains(h100.out, "DOES NOT FIT: ");
  expect_contains(h100.out, "largest item: activations");
  expect_contains(h100.out, "fits with: train.recompute = true");
  expect_contains(h100.out, "parallel.tp = 4 (dp 2; train.grad_accum = 64 keeps the global batch)");
}

TEST_F(PlanCli, JsonCarriesTheFigures) {
  const Cmd r = plan("'" + kRecipes + "ko-8b.toml' --gpus 8 --gpu h200 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["dp"], 4);
  EXPECT_EQ(j["tp"], 2);
  EXPECT_EQ(j["zero1"], true);
  EXPECT_EQ(j["fits"], true);
  EXPECT_EQ(j["params"], 7503876096);
  EXPECT_EQ(j["params_per_rank"], 3752071168);
  EXPECT_EQ(j["usable_bytes"], 133950000000);
  // The recipe's setting (recompute off) is the total; the parts add up to it.
  const auto& off = j["per_rank"]["without_recompute"];
  EXPECT_EQ(j["total_bytes"], off["total"]);
  int64_t sum = 0;
  for (const char* k :
       {"weights_f32", "weights_bf16", "gradients", "moments", "activations", "logits", "scratch", "gemm"})
    sum += off[k].get<int64_t>();
  EXPECT_EQ(sum, off["total"].get<int64_t>());
  // f32 master 3,752,071,168 * 4 B, bf16 copy * 2 B.
  EXPECT_EQ(off["weights_f32"], int64_t{3752071168} * 4);
  EXPECT_EQ(off["weights_bf16"], int64_t{3752071168} * 2);
  EXPECT_LT(j["per_rank"]["with_recompute"]["activations"].get<int64_t>(), off["activations"].get<int64_t>());
  // 6 * (32*4096*(48*128 + 32*128 + 3*14336) + 64000*4096) + 12*32*4096*4096
  EXPECT_DOUBLE_EQ(j["flops_per_token"].get<double>(),
                   6.0 * (32.0 * 4096 * (48 * 128 + 32 * 128 + 3 * 14336) + 64000.0 * 4096) + 12.0 * 32 * 4096 * 4096);
}

TEST_F(PlanCli, ErrorsAreOneLineNamingTheKey) {
  expect_one_line_error(plan("'" + kRecipes + "ko-8b.toml' --gpus 3 --gpu h200"),
                        "ko-8b.toml: parallel.tp = 2 does not divide --gpus 3");
  expect_one_line_error(plan("'" + kRecipes + "ko-8b.toml' --gpus 8 --gpu a100"),
                        "--gpu = 'a100' is not a known GPU (must be h100 or h200)");
  expect_one_line_error(plan("missing.toml --gpus 8"), "missing.toml");
}

TEST_F(PlanCli, SmallerRecipesFitEightH100s) {
  for (const char* name : {"ko-125m.toml", "ko-1b.toml"}) {
    const Cmd r = plan("'" + kRecipes + name + "' --gpus 8 --gpu h100");
    EXPECT_EQ(r.status, 0) << name << ": " << r.out << r.err;
    expect_contains(r.out, "layout: dp 8 x tp 1");
    expect_contains(r.out, "FITS: ");
  }
  // 16 GPUs for ko-1b's dp 8 x tp 1: dp 16, and the note says how to keep the global batch.
  const Cmd r = plan("'" + kRecipes + "ko-1b.toml' --gpus 16");
  EXPECT_EQ(r.status, 0) << r.err;
  expect_contains(r.out, "note: the recipe's layout is dp 8 x tp 1 = 8 ranks; planned for 16 GPUs as dp 16 x tp 1 "
                         "(train.grad_accum = 2 keeps the global batch)");
}

}  // namespace
