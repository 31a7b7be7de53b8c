// End-to-end tests of the `ssiat` CLI: data prepare + train on a tiny Korean corpus made here.
// Loss falls; N steps straight == k steps + --resume + N-k steps, every tensor byte-identical;
// bad recipes and bad corpora fail with one line naming the file/key/line and write nothing.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "tests/common/cli.h"
#include "kernels/device.h"
#include "tests/tools/cli_test_util.h"

namespace fs = std::filesystem;

namespace {

using ssiat::testing::Cmd;
using ssiat::testing::korean_corpus;
using ssiat::testing::kRecipe;
using ssiat::testing::run_cli;
void write(const fs::path& p, const std::string& s) { ssiat::testing::write_file(p, s); }

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ssiat_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ssiat::testing::write_tiny_inputs(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void prepare() { ASSERT_TRUE(ssiat::testing::prepare_tiny_data(dir_)); }
  std::vector<nlohmann::json> metrics(const std::string& run) {
    std::vector<nlohmann::json> v;
    std::ifstream f(dir_ / run / "metrics.jsonl");
    std::string line;
    while (std::getline(f, line))
      if (!line.empty()) v.push_back(nlohmann::json::parse(line));
    return v;
  }
  fs::path dir_;
};

TEST_F(CliTest, LossFallsAndRunDirectoryIsComplete) {
  prepare();
  const Cmd r = run_cli(dir_, "train tiny.toml --run-dir run");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto m = metrics("run");
  ASSERT_EQ(m.size(), 40u);
  EXPECT_EQ(m.front()["step"], 1);
  EXPECT_EQ(m.back()["step"], 40);
  // Initial loss is about ln(258) = 5.55; 40 steps on a repetitive corpus must go far below.
  EXPECT_GT(m.front()["loss"].get<double>(), 5.0);
  EXPECT_LT(m.back()["loss"].get<double>(), 3.0);
  ASSERT_TRUE(m.back().contains("val_loss"));
  EXPECT_LT(m.back()["val_loss"].get<double>(), 3.5);
  for (const char* f : {"recipe.toml", "run.json", "seeds.jsonl", "metrics.jsonl", "checkpoints/latest"})
    EXPECT_TRUE(fs::exists(dir_ / "run" / f)) << f;
  // seeds.jsonl: master seed from the recipe, and one tensor record per parameter with a hash.
  std::ifstream seeds(dir_ / "run" / "seeds.jsonl");
  std::string line;
  int tensors = 0;
  bool master = false;
  while (std::getline(seeds, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j["type"] == "master") master = j["seed"] == 77;
    if (j["type"] == "tensor") {
      tensors++;
      EXPECT_EQ(j["sha256"].get<std::string>().size(), 64u);
    }
  }
  EXPECT_TRUE(master);
  EXPECT_EQ(tensors, 1 + 2 * 9 + 2);  // embed, 2 layers x 9, norm, lm_head
  EXPECT_NE(r.err.find("ETA"), std::string::npos) << "progress lines expected on stderr";
}

TEST_F(CliTest, ResumeIsBitExact) {
  prepare();
  const std::string set = " --set train.steps=8 --set train.eval_interval=0 --set checkpoint.interval=0";
  ASSERT_EQ(run_cli(dir_, "train tiny.toml --run-dir straight -q" + set).status, 0);
  ASSERT_EQ(run_cli(dir_, "train tiny.toml --run-dir split -q --stop-after 5" + set).status, 0);
  const auto mid = ssiat::latest_checkpoint(dir_ / "split");
  ASSERT_TRUE(mid.has_value());
  EXPECT_EQ(mid->filename().string().find("step_"), 0u);
  const Cmd r = run_cli(dir_, "train tiny.toml --run-dir split -q --resume" + set);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto a = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir_ / "straight"));
  const auto b = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir_ / "split"));
  EXPECT_EQ(a.meta.step, 8);
  EXPECT_EQ(b.meta.step, 8);
  EXPECT_EQ(a.meta.samples_seen, b.meta.samples_seen);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [key, va] : a.tensors) {
    const auto& vb = b.tensors.at(key);
    ASSERT_EQ(va.size(), vb.size()) << key;
    EXPECT_EQ(0, std::memcmp(va.data(), vb.data(), va.size() * sizeof(float))) << key << " differs";
  }
  const auto ma = metrics("straight"), mb = metrics("split");
  ASSERT_EQ(ma.size(), 8u);
  ASSERT_EQ(mb.size(), 8u);
  for (size_t i = 0; i < 8; i++) EXPECT_EQ(ma[i]["loss"], mb[i]["loss"]) << "step " << i + 1;
  // The resumed checkpoint chains to the one it resumed from.
  EXPECT_NE(b.meta.parent, a.meta.parent);
}

// Same recipe on 1 and 2 threads: byte-identical weights and moments (fixed reduction orders).
TEST_F(CliTest, ResultsDoNotDependOnTheThreadCount) {
  prepare();
  // Large enough that every kernel takes its multi-threaded path (work thresholds in kernels/cpu).
  const std::string set =
      " -q --set train.steps=3 --set schedule.warmup_steps=1 --set train.eval_interval=0 --set model.d_model=128"
      " --set model.d_ff=256 --set model.max_seq_len=64 --set train.seq_len=64 --set train.micro_batch=8";
  ASSERT_EQ(run_cli(dir_, "train tiny.toml --run-dir one" + set, 1).status, 0);
  ASSERT_EQ(run_cli(dir_, "train tiny.toml --run-dir two" + set, 2).status, 0);
  const auto a = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir_ / "one"));
  const auto b = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir_ / "two"));
  EXPECT_EQ(a.digest, b.digest) << "checkpoint manifests (hashes of every tensor) differ";
  for (const auto& [key, va] : a.tensors)
    EXPECT_EQ(0, std::memcmp(va.data(), b.tensors.at(key).data(), va.size() * sizeof(float))) << key;
}

// train.recompute reruns each layer's forward in backward with the same ops: the same bits.
TEST_F(CliTest, RecomputeGivesTheSameBits) {
  prepare();
  const std::string set = " -q --set train.steps=3 --set schedule.warmup_steps=1 --set train.eval_interval=0";
  ASSERT_EQ(run_cli(dir_, "train tiny.toml --run-dir keep" + set).status, 0);
  ASSERT_EQ(run_cli(dir_, "train tiny.toml --run-dir recompute --set train.recompute=true" + set).status, 0);
  const auto a = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir_ / "keep"));
  const auto b = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir_ / "recompute"));
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [key, va] : a.tensors)
    EXPECT_EQ(0, std::memcmp(va.data(), b.tensors.at(key).data(), va.size() * sizeof(float))) << key;
}

TEST_F(CliTest, RefusesToOverwriteARunWithoutResume) {
  prepare();
  ASSERT_EQ(run_cli(dir_, "train tiny.toml --run-dir run -q --set train.steps=4").status, 0);
  const Cmd r = run_cli(dir_, "train tiny.toml --run-dir run -q --set train.steps=4");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
}

// One line on stderr, non-zero exit, and the run directory never created.
void expect_one_line_failure(const Cmd& r, const std::vector<std::string>& needles, const fs::path& run) {
  EXPECT_NE(r.status, 0);
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  EXPECT_FALSE(fs::exists(run)) << "wrote " << run;
}

// device = "cuda" where no CUDA device can be had (a build without the backend, or no GPU):
// one line naming the key, nothing written.
TEST_F(CliTest, CudaDeviceWithoutAGpuFailsWithOneLine) {
  if (ssiat::kernels::cuda::device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  prepare();
  const std::vector<std::string> needles =
      ssiat::kernels::cuda::compiled() ? std::vector<std::string>{"train.device", "no CUDA device 0"}
                                       : std::vector<std::string>{"train.device", "no CUDA backend"};
  expect_one_line_failure(run_cli(dir_, "train tiny.toml --run-dir r --set train.device=cuda"), needles, dir_ / "r");
  expect_one_line_failure(run_cli(dir_, "train tiny.toml --run-dir r --set train.precision=bf16"),
                          {"train.precision", "bf16", "cpu"}, dir_ / "r");
  expect_one_line_failure(run_cli(dir_, "train tiny.toml --run-dir r --set train.device=tpu"),
                          {"train.device", "tpu", "\"cpu\" or \"cuda\""}, dir_ / "r");
}

// A parallel layout in a recipe needs dp * tp ranks: one process refuses it in one line, before
// MPI is started, and says how to launch it.
TEST_F(CliTest, ParallelLayoutIsRefusedInOneProcess) {
  prepare();
  expect_one_line_failure(run_cli(dir_, "train tiny.toml --run-dir r --set parallel.tp=2"),
                          {"tiny.toml: world size 1 != parallel.dp * parallel.tp = 1 * 2 = 2", "mpirun -np 2"},
                          dir_ / "r");
  expect_one_line_failure(run_cli(dir_, "train tiny.toml --run-dir r --set parallel.dp=4"),
                          {"world size 1 != parallel.dp * parallel.tp = 4 * 1 = 4", "mpirun -np 4"}, dir_ / "r");
}

TEST_F(CliTest, BadRecipesFailWithOneLineAndWriteNothing) {
  prepare();
  std::string text = kRecipe;
  // Unknown key: d_ff sits on line 8 of the recipe.
  std::string unknown = text;
  unknown.replace(unknown.find("d_ff = 64"), 9, "d_fff = 64");
  write(dir_ / "unknown.toml", unknown);
  expect_one_line_failure(run_cli(dir_, "train unknown.toml --run-dir r1"), {"unknown.toml:8", "d_fff"}, dir_ / "r1");

  std::string wrong = text;
  wrong.replace(wrong.find("steps = 40"), 10, "steps = \"forty\"");
  write(dir_ / "wrong.toml", wrong);
  expect_one_line_failure(run_cli(dir_, "train wrong.toml --run-dir r2"), {"wrong.toml", "train.steps"}, dir_ / "r2");

  std::string range = text;
  range.replace(range.find("n_head = 4"), 10, "n_head = 0");
  write(dir_ / "range.toml", range);
  expect_one_line_failure(run_cli(dir_, "train range.toml --run-dir r3"), {"range.toml", "model.n_head"}, dir_ / "r3");

  expect_one_line_failure(run_cli(dir_, "train missing.toml --run-dir r4"), {"missing.toml"}, dir_ / "r4");
  expect_one_line_failure(run_cli(dir_, "train tiny.toml --run-dir r5 --set data.train=nowhere"), {"nowhere"},
                          dir_ / "r5");
  expect_one_line_failure(run_cli(dir_, "train tiny.toml --run-dir r6 --set train.stepz=3"), {"train.stepz"},
                          dir_ / "r6");
}

TEST_F(CliTest, BadCorporaAreRefusedWithFileAndOffset) {
  write(dir_ / "empty.txt", "");
  expect_one_line_failure(run_cli(dir_, "data prepare --input empty.txt --out p1"), {"empty.txt"}, dir_ / "p1");
  write(dir_ / "bad.txt", std::string("안녕하세요\n\xff\xfe tail\n"));
  // "안녕하세요" is 15 bytes, then '\n': the bad byte sits at offset 16.
  expect_one_line_failure(run_cli(dir_, "data prepare --input bad.txt --out p2"), {"bad.txt", "16"}, dir_ / "p2");
}

}  // namespace
