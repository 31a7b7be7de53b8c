// Strict resume and no dead ends (issue 7, items 3 and 5), end to end through `ssiat train`:
//   - a changed model shape, tied flag, learning rate or data directory is refused with one line
//     naming the key, both values and the checkpoint, and the run directory is left as it was;
//   - an allowed change (train.steps, logging and checkpoint cadence) resumes, and the result
//     equals a straight run of the new recipe byte for byte; the segment is appended to
//     history.jsonl while recipe.toml and run.json keep the first segment's;
//   - a checkpoint holding a tensor the model lacks (lm_head under tied embeddings), or lacking
//     one it has, is refused naming the tensor;
//   - `latest` missing, or naming a torn checkpoint (what a crash leaves), resumes from the newest
//     complete one and says which; no complete checkpoint restarts from step 0 with the run's seed
//     (the recorded one when the recipe has none) and gives the bits of a fresh run; --resume on a
//     directory with no run starts one and says so;
//   - an edited checkpoint (a manifest field: step, samples_seen, parent, the recipe text, the
//     recipe digest, master_seed; or one flipped byte of a tensor in state.h5) is refused with one
//     line naming the file and the key or tensor: non-zero exit, nothing renamed, `latest` as it was.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "tests/common/cli.h"
#include "tests/tools/cli_test_util.h"

namespace fs = std::filesystem;

namespace {

using ssiat::testing::Cmd;
using ssiat::testing::slurp;

// 8 steps, a checkpoint every 2 steps, evaluation only at the end, no progress lines.
const std::string kArgs = " -q --set train.steps=8 --set train.eval_interval=0 --set checkpoint.interval=2";

class Resume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("ssiat_resume_" + std::to_string(::getpid()));
    ssiat::testing::write_tiny_inputs(dir_);
    // The same recipe without a seed: the first segment draws one from the OS and logs it.
    const std::string text = ssiat::testing::kRecipe;
    ssiat::testing::write_file(dir_ / "noseed.toml", text.substr(text.find('\n') + 1));
    setup_ok_ = ssiat::testing::prepare_tiny_data(dir_) && run("train tiny.toml --run-dir straight" + kArgs).status == 0;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override { ASSERT_TRUE(setup_ok_) << "data prepare or the straight run failed in " << dir_; }

  static Cmd run(const std::string& args) { return ssiat::testing::run_cli(dir_, args); }
  static fs::path ckpts(const std::string& run) { return dir_ / run / "checkpoints"; }

  // Every tensor of the two runs' latest checkpoints: same keys, same bytes.
  static void expect_same_tensors(const std::string& a, const std::string& b, int64_t step) {
    const auto ca = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir_ / a));
    const auto cb = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir_ / b));
    EXPECT_EQ(ca.meta.step, step);
    EXPECT_EQ(cb.meta.step, step);
    EXPECT_EQ(ca.meta.samples_seen, cb.meta.samples_seen);
    ASSERT_EQ(ca.tensors.size(), cb.tensors.size());
    for (const auto& [key, va] : ca.tensors) {
      ASSERT_EQ(cb.tensors.count(key), 1u) << key;
      const auto& vb = cb.tensors.at(key);
      ASSERT_EQ(va.size(), vb.size()) << key;
      EXPECT_EQ(0, std::memcmp(va.data(), vb.data(), va.size() * sizeof(float))) << key << " differs";
    }
  }

  // Every regular file under `run` (but the lock file) with its content.
  static std::map<std::string, std::string> snapshot(const std::string& run) {
    std::map<std::string, std::string> s;
    for (const auto& e : fs::recursive_directory_iterator(dir_ / run))
      if (e.is_regular_file() && e.path().filename() != ".lock") s[e.path().string()] = slurp(e.path());
    return s;
  }

  static std::vector<nlohmann::json> history(const std::string& run) {
    std::vector<nlohmann::json> v;
    std::istringstream in(slurp(dir_ / run / "history.jsonl"));
    std::string line;
    while (std::getline(in, line)) v.push_back(nlohmann::json::parse(line));
    return v;
  }

  static uint64_t logged_seed(const std::string& run) {
    std::istringstream in(slurp(dir_ / run / "seeds.jsonl"));
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line);
      if (j["type"] == "master") return j["seed"].get<uint64_t>();
    }
    ADD_FAILURE() << "no master seed in " << run;
    return 0;
  }

  static void expect_one_line(const Cmd& r, const std::vector<std::string>& needles) {
    EXPECT_NE(r.status, 0);
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
    for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  }

  static inline fs::path dir_;
  static inline bool setup_ok_ = false;
};

// A checkpoint written by a build that did not know train.device, train.precision,
// train.recompute and [parallel] yet: the keys it lacks count as their defaults, so the run
// resumes and ends with the straight run's bits.
TEST_F(Resume, KeysAnOlderBuildDidNotWriteCountAsTheirDefaults) {
  ASSERT_EQ(run("train tiny.toml --run-dir older --stop-after 4" + kArgs).status, 0);
  const fs::path ck = *ssiat::latest_checkpoint(dir_ / "older");
  ssiat::LoadedCheckpoint loaded = ssiat::read_checkpoint(ck);
  std::istringstream in(loaded.meta.recipe);
  std::string line, older;
  while (std::getline(in, line))
    if (line.rfind("device =", 0) != 0 && line.rfind("precision =", 0) != 0 && line.rfind("recompute =", 0) != 0 &&
        line != "[parallel]" && line.rfind("dp =", 0) != 0 && line.rfind("tp =", 0) != 0 && line.rfind("zero1 =", 0) != 0)
      older += line + "\n";
  ASSERT_LT(older.size(), loaded.meta.recipe.size()) << "the new keys were not in the recorded recipe";
  loaded.meta.recipe = older;
  std::vector<ssiat::CheckpointTensor> tensors;
  for (const auto& [key, data] : loaded.tensors) tensors.push_back({key, loaded.shapes.at(key), data.data()});
  fs::remove_all(ck);
  fs::remove(ckpts("older") / "latest");
  ssiat::write_checkpoint(dir_ / "older", loaded.meta, tensors);
  // recipe.toml of the first segment as the older build wrote it, too.
  ssiat::testing::write_file(dir_ / "older" / "recipe.toml", older);
  const Cmd r = run("train tiny.toml --run-dir older --resume" + kArgs);
  ASSERT_EQ(r.status, 0) << r.err;
  expect_same_tensors("straight", "older", 8);
}

TEST_F(Resume, ChangedKeysAreRefusedNamingKeyBothValuesAndCheckpoint) {
  ASSERT_EQ(run("train tiny.toml --run-dir r --stop-after 4" + kArgs).status, 0);
  const auto before = snapshot("r");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"model.d_model=64", "recipe key model.d_model is 64 here but 32 in checkpoint step_00000004"},
      {"model.tied_embeddings=true", "recipe key model.tied_embeddings is true here but false in checkpoint step_00000004"},
      {"optim.lr=0.02", "recipe key optim.lr is 0.02 here but 0.01 in checkpoint step_00000004"},
      {"data.train=prep/val", "recipe key data.train is \"prep/val\" here but \"prep/train\" in checkpoint step_00000004"},
  };
  for (const auto& [set, want] : cases) {
    SCOPED_TRACE(set);
    const Cmd r = run("train tiny.toml --run-dir r --resume" + kArgs + " --set " + set);
    expect_one_line(r, {want, "--resume", "only train.steps", "data.val may change"});
    EXPECT_EQ(snapshot("r"), before) << "a refused resume changed the run directory";
  }
  // A seed other than the checkpoint's master seed.
  expect_one_line(run("train tiny.toml --run-dir r --resume" + kArgs + " --set seed=78"),
                  {"seed = 78", "77", "step_00000004"});
  // The unchanged recipe still resumes.
  ASSERT_EQ(run("train tiny.toml --run-dir r --resume" + kArgs).status, 0);
  expect_same_tensors("r", "straight", 8);
}

TEST_F(Resume, AllowedChangesResumeBitExactAndAppendHistory) {
  // wsd keeps a constant rate until its decay phase, so 5 steps of an 8-step schedule equal 5
  // steps of a 12-step one: extending such a run must give the straight 12-step run's bits.
  const std::string wsd = " --set schedule.kind=wsd --set schedule.decay_fraction=0.25";
  ASSERT_EQ(run("train tiny.toml --run-dir long" + kArgs + wsd + " --set train.steps=12").status, 0);
  ASSERT_EQ(run("train tiny.toml --run-dir grow --stop-after 5" + kArgs + wsd).status, 0);
  const std::string recipe_before = slurp(dir_ / "grow" / "recipe.toml");
  const std::string run_json_before = slurp(dir_ / "grow" / "run.json");
  ASSERT_EQ(history("grow").size(), 1u);
  const Cmd r = run("train tiny.toml --run-dir grow --resume" + kArgs + wsd +
                    " --set train.steps=12 --set checkpoint.interval=5 --set train.log_interval=3 --set checkpoint.keep=2"
                    " --set train.eval_batches=1 --set data.val=prep/train");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "") << "a resume from a good `latest` has nothing to say";
  expect_same_tensors("grow", "long", 12);

  EXPECT_EQ(slurp(dir_ / "grow" / "recipe.toml"), recipe_before);
  EXPECT_NE(recipe_before.find("steps = 8\n"), std::string::npos);
  EXPECT_EQ(slurp(dir_ / "grow" / "run.json"), run_json_before);
  const auto h = history("grow");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0]["segment"], 0);
  EXPECT_EQ(h[0]["start_step"], 0);
  EXPECT_TRUE(h[0]["resumed_from"].is_null());
  EXPECT_EQ(h[0]["recipe"], recipe_before);
  EXPECT_EQ(h[1]["segment"], 1);
  EXPECT_EQ(h[1]["start_step"], 5);
  EXPECT_EQ(h[1]["resumed_from"], "step_00000005");
  EXPECT_NE(h[1]["recipe"].get<std::string>().find("steps = 12\n"), std::string::npos);
  EXPECT_EQ(h[1]["recipe_sha256"].get<std::string>().size(), 64u);
  for (const char* k : {"git_commit", "compiler", "version"}) EXPECT_TRUE(h[1]["build"].contains(k)) << k;
  EXPECT_EQ(h[1]["time"].get<std::string>().size(), 20u);  // 2025-01-02T03:04:05Z
  // The checkpoints record the recipe each segment ran with.
  const auto last = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir_ / "grow"));
  EXPECT_EQ(last.meta.recipe, h[1]["recipe"]);
}

// A checkpoint whose tensor set differs from the model's, behind a recipe that matches.
TEST_F(Resume, ExtraOrMissingTensorIsRefusedNamingIt) {
  const std::string tied = kArgs + " --set model.tied_embeddings=true";
  ASSERT_EQ(run("train tiny.toml --run-dir tied --stop-after 2" + tied).status, 0);
  ASSERT_EQ(run("train tiny.toml --run-dir untied --stop-after 2" + kArgs).status, 0);
  // Rewrites run's only checkpoint with `edit` applied to its tensor list.
  auto rewrite = [](const std::string& run, const std::function<void(std::vector<ssiat::CheckpointTensor>&)>& edit) {
    const fs::path dir = *ssiat::latest_checkpoint(dir_ / run);
    const auto ck = ssiat::read_checkpoint(dir);
    std::vector<ssiat::CheckpointTensor> ts;
    for (const auto& [key, v] : ck.tensors) ts.push_back({key, ck.shapes.at(key), v.data()});
    edit(ts);
    fs::remove_all(dir.parent_path());
    ssiat::write_checkpoint(dir_ / run, ck.meta, ts);
  };
  std::vector<float> copy;
  rewrite("tied", [&](auto& ts) {
    for (const auto& t : ts)
      if (t.key == "param/model.embed_tokens.weight") {
        copy.assign(t.data, t.data + t.shape[0] * t.shape[1]);
        ts.push_back({"param/lm_head.weight", t.shape, copy.data()});
        break;
      }
  });
  expect_one_line(run("train tiny.toml --run-dir tied --resume" + tied),
                  {"step_00000002", "checkpoint has tensor 'param/lm_head.weight'", "which the recipe's model does not have"});
  rewrite("untied", [](auto& ts) {
    std::erase_if(ts, [](const auto& t) { return t.key == "adam_v/lm_head.weight"; });
  });
  expect_one_line(run("train tiny.toml --run-dir untied --resume" + kArgs),
                  {"step_00000002", "checkpoint has no tensor 'adam_v/lm_head.weight'"});
}

TEST_F(Resume, MissingLatestResumesFromNewestCompleteCheckpoint) {
  ASSERT_EQ(run("train tiny.toml --run-dir nolatest --stop-after 5" + kArgs).status, 0);  // steps 2, 4, 5
  fs::remove(ckpts("nolatest") / "latest");
  const Cmd r = run("train tiny.toml --run-dir nolatest --resume" + kArgs);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "ssiat: nolatest: checkpoints/latest is missing; resuming from step_00000005\n")
      << r.err;
  EXPECT_EQ(history("nolatest").back()["resumed_from"], "step_00000005");
  expect_same_tensors("nolatest", "straight", 8);
}

TEST_F(Resume, TornLatestResumesFromNewestCompleteCheckpoint) {
  // Torn: the newest checkpoint's state file lost its second half.
  ASSERT_EQ(run("train tiny.toml --run-dir torn --stop-after 5" + kArgs).status, 0);  // steps 2, 4, 5
  const fs::path state = ckpts("torn") / "step_00000005" / "state.h5";
  fs::resize_file(state, fs::file_size(state) / 2);
  const Cmd r = run("train tiny.toml --run-dir torn --resume" + kArgs);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  for (const std::string n : {"checkpoints/latest names step_00000005, which is torn (",
                              "torn/checkpoints/step_00000005/state.h5: HDF5 file open failed (the file is truncated",
                              "set aside as checkpoints/rejected-step_*", "; resuming from step_00000004\n"})
    EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  EXPECT_TRUE(fs::exists(ckpts("torn") / "rejected-step_00000005" / "state.h5"));
  EXPECT_EQ(history("torn").back()["start_step"], 4);
  expect_same_tensors("torn", "straight", 8);
}

TEST_F(Resume, EditedCheckpointIsRefusedNamingFileAndKeyAndNothingChanges) {
  ASSERT_EQ(run("train tiny.toml --run-dir edited --stop-after 4" + kArgs).status, 0);  // steps 2, 4
  const fs::path ck = ckpts("edited") / "step_00000004";
  const std::string mfile = "edited/checkpoints/step_00000004/manifest.json: ";
  const std::string manifest = slurp(ck / "manifest.json");
  const std::string state = slurp(ck / "state.h5");
  const auto before = snapshot("edited");
  const auto m0 = nlohmann::json::parse(manifest);
  std::string recipe = m0["recipe"];
  const size_t lr = recipe.find("lr = 0.01\n");
  ASSERT_NE(lr, std::string::npos) << recipe;
  recipe.replace(lr, 10, "lr = 0.02\n");
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>> edits = {
      {[](auto& m) { m["step"] = 5; }, "step 5 disagrees with the directory name step_00000004"},
      {[](auto& m) { m["samples_seen"] = 20; },
       "samples_seen 20 disagrees with step × train.micro_batch × train.grad_accum × parallel.dp = 4 × 4 × 1 × 1 = 16"},
      {[](auto& m) { m["parent"] = std::string(64, 'a'); }, "manifest_sha256 does not match the manifest's fields"},
      {[&](auto& m) { m["recipe"] = recipe; }, "recipe_sha256 " + m0["recipe_sha256"].get<std::string>() + " is not"},
      {[](auto& m) { m["recipe_sha256"] = std::string(64, 'b'); }, "recipe_sha256 " + std::string(64, 'b') + " is not"},
      {[](auto& m) { m["master_seed"] = 78; }, "manifest_sha256 does not match the manifest's fields"},
  };
  const std::string advice = "; refusing to resume from it — move the directory aside to resume from the previous checkpoint\n";
  for (const auto& [edit, says] : edits) {
    SCOPED_TRACE(says);
    auto m = m0;
    edit(m);
    ssiat::testing::write_file(ck / "manifest.json", m.dump(2) + "\n");
    const Cmd r = run("train tiny.toml --run-dir edited --resume" + kArgs);
    expect_one_line(r, {"ssiat: " + mfile + says, advice});
    ssiat::testing::write_file(ck / "manifest.json", manifest);
    EXPECT_EQ(snapshot("edited"), before) << "a refused resume changed the run directory";
  }
  // One byte of a tensor's data flipped in state.h5 (same size): refused naming the tensor.
  const auto loaded = ssiat::read_checkpoint(ck);
  std::string key;
  size_t at = std::string::npos;
  for (const auto& [k, v] : loaded.tensors) {
    if (k.rfind("param/", 0) != 0 || v.size() < 16) continue;
    const std::string needle(reinterpret_cast<const char*>(v.data()), 64);
    at = state.find(needle);
    if (at != std::string::npos && state.find(needle, at + 1) == std::string::npos) {
      key = k;
      break;
    }
  }
  ASSERT_FALSE(key.empty()) << "no tensor's bytes found in state.h5";
  std::string flipped = state;
  flipped[at + 21] = static_cast<char>(flipped[at + 21] ^ 0x10);
  ssiat::testing::write_file(ck / "state.h5", flipped);
  const Cmd r = run("train tiny.toml --run-dir edited --resume" + kArgs);
  expect_one_line(r, {"ssiat: edited/checkpoints/step_00000004/state.h5: tensor " + key + " has SHA-256 ",
                      " but the manifest says " + m0["tensors"][key]["sha256"].get<std::string>(), advice});
  ssiat::testing::write_file(ck / "state.h5", state);
  EXPECT_EQ(snapshot("edited"), before) << "a refused resume changed the run directory";
  // Restored, the checkpoint resumes to the straight run's bits.
  ASSERT_EQ(run("train tiny.toml --run-dir edited --resume" + kArgs).status, 0);
  expect_same_tensors("edited", "straight", 8);
}

TEST_F(Resume, NoCompleteCheckpointRestartsFromStepZeroWithTheRunsSeed) {
  // Recipe seed: the only checkpoint is torn.
  ASSERT_EQ(run("train tiny.toml --run-dir zero --stop-after 1" + kArgs).status, 0);  // step 1 only
  fs::remove(ckpts("zero") / "step_00000001" / "manifest.json");
  Cmd r = run("train tiny.toml --run-dir zero --resume" + kArgs);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("no complete checkpoint, restarting from step 0 with seed 77\n"), std::string::npos) << r.err;
  EXPECT_EQ(history("zero").back()["start_step"], 0);
  expect_same_tensors("zero", "straight", 8);

  // No seed in the recipe: the seed logged by the first segment is reused. The comparison run
  // below passes it as `--set seed=N`; OS draws are below 2^63, so a recipe can always hold one.
  fs::remove_all(dir_ / "os");
  ASSERT_EQ(run("train noseed.toml --run-dir os --stop-after 1" + kArgs).status, 0);
  const uint64_t seed = logged_seed("os");
  ASSERT_LE(seed, static_cast<uint64_t>(INT64_MAX));
  fs::remove_all(ckpts("os"));
  r = run("train noseed.toml --run-dir os --resume" + kArgs);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("checkpoints/latest is missing; no complete checkpoint, restarting from step 0 with seed " +
                       std::to_string(seed) + "\n"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(logged_seed("os"), seed);
  ASSERT_EQ(run("train tiny.toml --run-dir os_fresh" + kArgs + " --set seed=" + std::to_string(seed)).status, 0);
  expect_same_tensors("os", "os_fresh", 8);
}

TEST_F(Resume, NothingToResumeStartsANewRunAndSaysSo) {
  const Cmd r = run("train tiny.toml --run-dir new --resume" + kArgs);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to resume"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("starting a new run"), std::string::npos) << r.err;
  EXPECT_EQ(history("new").size(), 1u);
  expect_same_tensors("new", "straight", 8);
}

}  // namespace
