// The init commitment end to end (docs/provenance.md): a trained run's seeds.jsonl holds a leaf
// per tensor and the RFC 6962 root, which the pure-Python reimplementation written from the
// documentation (tests/core/provenance_reference.py) reproduces from the recipe and the seed
// alone, tied and untied; the root is the first checkpoint's parent, and another seed gives
// another root.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/chain.h"
#include "core/checkpoint.h"
#include "tests/common/cli.h"
#include "tests/tools/cli_test_util.h"

namespace fs = std::filesystem;

namespace {

using ssiat::testing::run_cli;
using ssiat::testing::slurp;

bool python_with_tomllib() { return std::system("python3 -c 'import tomllib' >/dev/null 2>&1") == 0; }

// "leaf NAME HEX" lines and the "root HEX" line of the Python reference.
std::map<std::string, std::string> reference(const fs::path& dir, const std::string& recipe, int seed) {
  const fs::path out = dir / "reference.txt";
  const std::string cmd = "cd '" + dir.string() + "' && python3 '" SSIAT_SOURCE_DIR "/tests/core/provenance_reference.py' " +
                          recipe + " --seed " + std::to_string(seed) + " > '" + out.string() + "'";
  if (std::system(cmd.c_str()) != 0) return {};
  std::map<std::string, std::string> r;
  std::istringstream in(slurp(out));
  std::string kind, a, b;
  while (in >> kind >> a) {
    if (kind == "root") r["root"] = a;
    else if (in >> b) r[a] = b;
  }
  return r;
}

// The same from the run's seeds.jsonl.
std::map<std::string, std::string> recorded(const fs::path& run) {
  std::map<std::string, std::string> r;
  std::istringstream in(slurp(run / "seeds.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j["type"] == "tensor") {
      EXPECT_EQ(j.value("origin", ""), "regenerated") << line;
      EXPECT_TRUE(j.value("trainable", false)) << line;
      r[j["name"].get<std::string>()] = j["leaf"].get<std::string>();
    }
    if (j["type"] == "init_commitment") {
      EXPECT_EQ(j["scheme"], "rfc6962-sha256/ssiat-init-leaf-v1");
      r["root"] = j["root"].get<std::string>();
    }
  }
  return r;
}

class Provenance : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!python_with_tomllib()) GTEST_SKIP() << "python3 with tomllib (3.11+) not on PATH";
    dir_ = fs::temp_directory_path() / ("ssiat_provenance_" + std::to_string(::getpid()));
    ssiat::testing::write_tiny_inputs(dir_, 40, 10);
    ASSERT_TRUE(ssiat::testing::prepare_tiny_data(dir_));
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(Provenance, PythonReimplementationReproducesTheInitRoot) {
  for (bool tied : {false, true}) {
    const std::string run = tied ? "tied" : "untied";
    const std::string sets = " --set model.tied_embeddings=" + std::string(tied ? "true" : "false");
    ssiat::testing::write_file(dir_ / (run + ".toml"), slurp(dir_ / "tiny.toml"));
    ASSERT_EQ(run_cli(dir_, "train " + run + ".toml -q --run-dir " + run +
                                " --set train.steps=1 --set schedule.warmup_steps=1 --set checkpoint.interval=1" + sets)
                  .status,
              0);
    // The reference reads the recipe file: give it the effective model (tied or not).
    std::string toml = slurp(dir_ / run / "recipe.toml");
    ssiat::testing::write_file(dir_ / (run + "_effective.toml"), toml);
    const auto want = reference(dir_, run + "_effective.toml", 77);
    const auto got = recorded(dir_ / run);
    ASSERT_FALSE(want.empty()) << "provenance_reference.py failed";
    EXPECT_EQ(got.size(), tied ? 21u : 22u);  // 20 or 21 tensors (lm_head), and the root
    EXPECT_EQ(got, want) << run;
    // The first checkpoint's parent is the init root.
    const auto manifest = nlohmann::json::parse(slurp(dir_ / run / "checkpoints" / "step_00000001" / "manifest.json"));
    EXPECT_EQ(manifest["parent"], got.at("root"));
  }
  // Another seed, another root (the comparison above could not pass by accident).
  EXPECT_NE(reference(dir_, "untied_effective.toml", 78).at("root"), recorded(dir_ / "untied").at("root"));
}

// The chain (core/chain.h): one record per checkpoint, kept when pruning removes the checkpoint,
// linked from the init root record by record, each resumed segment named; the roots of the last
// record are those of the checkpoint's logical tensors read back.
// Each checkpoint carries, per tensor, the number of optimizer steps that changed it. Under wsd
// with min_lr 0 the last update has lr exactly 0 (lr + (0 - lr)·1) and changes nothing, so after
// 6 steps every tensor counts 5, and 3 at step 3; a run stopped at step 4 and resumed counts the
// same (the counts travel in the checkpoint).
TEST_F(Provenance, CheckpointsCountTheStepsThatChangedEachTensor) {
  const std::string args = "train tiny.toml -q --set train.steps=6 --set schedule.kind=wsd --set schedule.decay_fraction=0.5 "
                           "--set optim.min_lr=0 --set schedule.warmup_steps=1 --set checkpoint.interval=3";
  ASSERT_EQ(run_cli(dir_, args + " --run-dir w").status, 0);
  ASSERT_EQ(run_cli(dir_, args + " --run-dir r --stop-after 4").status, 0);
  ASSERT_EQ(run_cli(dir_, args + " --run-dir r --resume").status, 0);
  std::map<std::string, std::string> names = recorded(dir_ / "w");
  names.erase("root");
  ASSERT_EQ(names.size(), 21u);
  auto counts = [](const fs::path& ck) { return ssiat::read_checkpoint(ck).meta.extra.at("steps_changed"); };
  const auto at3 = counts(dir_ / "w" / "checkpoints" / "step_00000003");
  const auto at6 = counts(dir_ / "w" / "checkpoints" / "step_00000006");
  EXPECT_EQ(at6, counts(dir_ / "r" / "checkpoints" / "step_00000006"));
  ASSERT_EQ(at6.size(), names.size());
  for (const auto& [name, leaf] : names) {
    EXPECT_EQ(at3.value(name, -1), 3) << name;
    EXPECT_EQ(at6.value(name, -1), 5) << name;
  }
}

TEST_F(Provenance, ChainSurvivesPruningAndLinksFromTheInitRoot) {
  const std::string args = "train tiny.toml -q --run-dir ch --set train.steps=9 --set schedule.warmup_steps=1 "
                           "--set checkpoint.interval=3 --set checkpoint.keep=1";
  ASSERT_EQ(run_cli(dir_, args + " --stop-after 6").status, 0);
  ASSERT_EQ(run_cli(dir_, args + " --resume").status, 0);
  EXPECT_FALSE(fs::exists(dir_ / "ch" / "checkpoints" / "step_00000003"));  // pruned
  const auto chain = ssiat::read_chain(dir_ / "ch");
  ASSERT_EQ(chain.size(), 3u);
  std::string parent = recorded(dir_ / "ch").at("root");
  const int64_t steps[] = {3, 6, 9}, segments[] = {0, 0, 1};
  for (size_t i = 0; i < chain.size(); i++) {
    EXPECT_EQ(chain[i].step, steps[i]);
    EXPECT_EQ(chain[i].segment, segments[i]);
    EXPECT_EQ(chain[i].samples_seen, steps[i] * 4);
    EXPECT_EQ(chain[i].parent, parent) << "record " << i;
    parent = ssiat::chain_digest(ssiat::chain_line(chain[i]));
  }
  const auto ck = ssiat::read_checkpoint(dir_ / "ch" / "checkpoints" / "step_00000009");
  const ssiat::StateRoots roots = ssiat::state_roots_of(ck);
  EXPECT_EQ(chain[2].weights_root, roots.weights);
  EXPECT_EQ(chain[2].optimizer_root, roots.optimizer);
  EXPECT_EQ(chain[2].manifest_sha256, ck.digest);
  EXPECT_NE(chain[1].weights_root, chain[2].weights_root);
}

}  // namespace
