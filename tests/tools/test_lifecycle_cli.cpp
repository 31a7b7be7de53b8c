// Run lifecycle of `ssiat train` (issue 7, items 4 and 6), end to end on a tiny recipe:
//   - kill -9 at scripted points (mid-step, mid-checkpoint, between publish and the `latest`
//     update, after it), then --resume: the final checkpoint equals an uninterrupted run's, byte
//     for byte (state.h5, every tensor's SHA-256, the manifest chain);
//   - SIGTERM / SIGINT / SIGUSR1: the step finishes, a checkpoint is written, one line, exit
//     128 + signo; resume is byte-identical; a second signal ends the process at once;
//   - one writer per run directory: a second trainer exits at once naming the holder's pid and
//     host; a stale .lock never blocks; a benchmark launched as several ranks (launcher variables) is
//     refused with one line; under a real mpirun the world must match parallel.dp × parallel.tp.
// Faults are placed with the test hook SSIAT_FAULT (core/fault.h), so every test is
// deterministic; every wait is bounded and every child reaped (tests/tools/cli_test_util.h).
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/hash.h"
#include "core/run_lock.h"
#include "tests/common/cli.h"
#include "tests/tools/cli_test_util.h"

namespace fs = std::filesystem;

namespace {

using ssiat::testing::Child;
using ssiat::testing::find_in_path;
using ssiat::testing::ChildExit;
using ssiat::testing::slurp;
using ssiat::testing::spawn_cli;
using ssiat::testing::wait_child;
using Env = std::map<std::string, std::string>;

constexpr std::chrono::seconds kTimeout{180};  // per child; a tiny run takes about a second

// 8 steps, a checkpoint every 3 (steps 3, 6 and 8), no evaluation, no progress lines.
const std::vector<std::string> kTrainArgs = {"train",         "tiny.toml",    "-q",
                                             "--set",         "train.steps=8", "--set",
                                             "train.eval_interval=0", "--set", "checkpoint.interval=3"};
constexpr int kTensorsPerCheckpoint = 3 * (1 + 2 * 9 + 2);  // param, adam_m, adam_v x 21 tensors

std::vector<std::string> train_args(const std::string& run, bool resume = false) {
  std::vector<std::string> a = kTrainArgs;
  a.insert(a.end(), {"--run-dir", run});
  if (resume) a.push_back("--resume");
  return a;
}

std::string host_name() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// The data (prepared once for the suite) and an uninterrupted reference run "ref".
class Lifecycle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("ssiat_lifecycle_" + std::to_string(::getpid()));
    ssiat::testing::write_tiny_inputs(dir_);
    setup_ok_ = ssiat::testing::prepare_tiny_data(dir_) && succeeded(run("ref", train_args("ref")));
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override { ASSERT_TRUE(setup_ok_) << "data prepare or the reference run failed in " << dir_; }

  // Runs the CLI to its end (bounded); the exit is also returned when it was not clean.
  static ChildExit run(const std::string& tag, const std::vector<std::string>& args, const Env& env = {}) {
    Child c = spawn_cli(dir_, args, env, tag);
    return wait_child(c, kTimeout);
  }
  static bool succeeded(const ChildExit& r) { return r.exited && r.code == 0; }
  static std::string err(const std::string& tag) { return slurp(dir_ / (tag + ".err")); }

  static ssiat::LoadedCheckpoint final_checkpoint(const std::string& run) {
    const auto p = ssiat::latest_checkpoint(dir_ / run);
    if (!p) throw std::runtime_error(run + ": no latest checkpoint");
    return ssiat::read_checkpoint(*p);
  }
  static nlohmann::json manifest(const std::string& run) {
    return nlohmann::json::parse(slurp(*ssiat::latest_checkpoint(dir_ / run) / "manifest.json"));
  }
  static std::vector<double> losses(const std::string& run) {
    std::vector<double> v;
    std::istringstream in(slurp(dir_ / run / "metrics.jsonl"));
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) v.push_back(nlohmann::json::parse(line).at("loss").get<double>());
    return v;
  }

  // The final checkpoint of `run` equals the reference's byte for byte: state.h5 (tensors are
  // written without timestamps, so equal tensors give equal files), every tensor's SHA-256, step,
  // data position; with same_chain also the parent digest (same checkpoint steps as "ref").
  // Every step's loss in metrics.jsonl is equal too.
  static void expect_same_as_reference(const std::string& run, bool same_chain) {
    const auto a = final_checkpoint("ref");
    const auto b = final_checkpoint(run);
    EXPECT_EQ(b.meta.step, 8);
    EXPECT_EQ(a.meta.step, b.meta.step);
    EXPECT_EQ(a.meta.samples_seen, b.meta.samples_seen);
    const auto ma = manifest("ref"), mb = manifest(run);
    EXPECT_EQ(ma.at("tensors"), mb.at("tensors")) << "tensor digests differ";
    EXPECT_EQ(ma.at("state_sha256"), mb.at("state_sha256"));
    EXPECT_TRUE(slurp(*ssiat::latest_checkpoint(dir_ / "ref") / "state.h5") ==
                slurp(*ssiat::latest_checkpoint(dir_ / run) / "state.h5"))
        << "state.h5 bytes differ";
    if (same_chain) {
      EXPECT_EQ(a.meta.parent, b.meta.parent) << "checkpoint chains differ";
    }
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    for (const auto& [key, va] : a.tensors) EXPECT_TRUE(va == b.tensors.at(key)) << key << " differs";
    EXPECT_EQ(losses("ref"), losses(run));
  }

  static fs::path dir_;
  static bool setup_ok_;
};
fs::path Lifecycle::dir_;
bool Lifecycle::setup_ok_ = false;

// ---- kill -9 at scripted points, then resume ---------------------------------------------------

struct KillPoint {
  const char* name;
  const char* fault;  // SSIAT_FAULT value
  const char* latest_after;  // what `latest` names after the kill
  const char* left_behind;   // a checkpoint directory the kill leaves, proving where it struck
};
void PrintTo(const KillPoint& k, std::ostream* os) { *os << k.fault; }

class KillAndResume : public Lifecycle, public ::testing::WithParamInterface<KillPoint> {};

TEST_P(KillAndResume, DiesOfSigkillThenResumeIsByteIdentical) {
  const KillPoint& k = GetParam();
  const std::string run = std::string("kill_") + k.name;
  const ChildExit killed = Lifecycle::run(run, train_args(run), {{"SSIAT_FAULT", k.fault}});
  ASSERT_FALSE(killed.timed_out);
  ASSERT_TRUE(killed.signaled) << "exited with " << killed.code << ": " << err(run);
  EXPECT_EQ(killed.signal, SIGKILL);
  EXPECT_EQ(ssiat::latest_checkpoint(dir_ / run)->filename(), k.latest_after);
  EXPECT_TRUE(fs::is_directory(dir_ / run / "checkpoints" / k.left_behind)) << k.left_behind;
  EXPECT_TRUE(fs::exists(dir_ / run / ".lock")) << "the dead holder's lock file stays; it must not block";

  const ChildExit resumed = Lifecycle::run(run + "_resume", train_args(run, true));
  ASSERT_TRUE(resumed.exited && resumed.code == 0) << err(run + "_resume");
  expect_same_as_reference(run, /*same_chain=*/true);
  // No temporary checkpoint directory is left behind.
  for (const auto& e : fs::directory_iterator(dir_ / run / "checkpoints"))
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << e.path();
}

INSTANTIATE_TEST_SUITE_P(
    Points, KillAndResume,
    ::testing::Values(
        // During step 5 (after backward, before the update): checkpoint 3 is the latest.
        KillPoint{"mid_step", "step.after_backward:5", "step_00000003", "step_00000003"},
        // Ten tensors into checkpoint 6: it stays an unpublished temporary; 3 is the latest.
        KillPoint{"mid_checkpoint", "checkpoint.tensor_written:73", "step_00000003", ".tmp-step_00000006"},
        // Checkpoint 6 published, `latest` still names 3.
        KillPoint{"between_publish_and_latest", "checkpoint.published:2", "step_00000003", "step_00000006"},
        // `latest` names checkpoint 6; killed before anything else (pruning, the next step).
        KillPoint{"after_latest", "checkpoint.latest_updated:2", "step_00000006", "step_00000006"}),
    [](const auto& info) { return std::string(info.param.name); });

static_assert(kTensorsPerCheckpoint + 10 == 73, "mid_checkpoint's count is checkpoint 6's 10th tensor");

// ---- stop signals ---------------------------------------------------------------------------------

struct StopCase {
  const char* name;  // SSIAT_FAULT action, and the signal's name without "SIG"
  int status;        // expected exit status: 128 + the signal's number
};
void PrintTo(const StopCase& s, std::ostream* os) { *os << "SIG" << s.name; }

class StopSignal : public Lifecycle, public ::testing::WithParamInterface<StopCase> {};

// The signal arrives during step 4 (sent by the process itself at the fault point, so the step is
// known): step 4 finishes, checkpoint 4 is written, one line, exit 128 + signo; resume to step 8
// equals the uninterrupted run.
TEST_P(StopSignal, FinishesTheStepCheckpointsExitsWithStatusThenResumesByteIdentical) {
  const StopCase& s = GetParam();
  const std::string run = std::string("stop_") + s.name;
  const ChildExit r =
      Lifecycle::run(run, train_args(run), {{"SSIAT_FAULT", std::string("step.after_backward:4:") + s.name}});
  ASSERT_TRUE(r.exited) << "signaled " << r.signal << ", timed out " << r.timed_out;
  EXPECT_EQ(r.code, s.status) << err(run);
  const std::string e = err(run);
  EXPECT_EQ(e, std::string("ssiat: SIG") + s.name +
                   " received: finished step 4/8, checkpoint step_00000004 written; resume with --resume\n");
  EXPECT_EQ(ssiat::latest_checkpoint(dir_ / run)->filename(), "step_00000004");
  EXPECT_EQ(final_checkpoint(run).meta.step, 4);
  EXPECT_EQ(losses(run).size(), 4u);

  const ChildExit resumed = Lifecycle::run(run + "_resume", train_args(run, true));
  ASSERT_TRUE(resumed.exited && resumed.code == 0) << err(run + "_resume");
  expect_same_as_reference(run, /*same_chain=*/false);  // one checkpoint more (step 4) in the chain
}

INSTANTIATE_TEST_SUITE_P(Signals, StopSignal,
                         ::testing::Values(StopCase{"TERM", 143}, StopCase{"INT", 130}, StopCase{"USR1", 138}),
                         [](const auto& info) { return std::string(info.param.name); });

// A real SIGTERM from outside, delivered to whichever thread the kernel picks: the run is held
// (SIGSTOP) during step 2, gets SIGTERM, is continued; it stops at a step boundary >= 2 with a
// checkpoint of that step, exit 143, and resumes byte-identical.
TEST_F(Lifecycle, ExternalSigtermStopsAtAStepBoundaryAndResumesByteIdentical) {
  const std::string run = "external_term";
  Child c = spawn_cli(dir_, train_args(run), {{"SSIAT_FAULT", "step.after_backward:2:STOP"}}, run);
  const ChildExit held = wait_child(c, kTimeout, /*until_stopped=*/true);
  ASSERT_TRUE(held.stopped) << "did not stop at the fault point: " << err(run);
  ASSERT_EQ(::kill(c.pid, SIGTERM), 0);
  ASSERT_EQ(::kill(c.pid, SIGCONT), 0);
  const ChildExit r = wait_child(c, kTimeout);
  ASSERT_TRUE(r.exited) << "signaled " << r.signal << ", timed out " << r.timed_out;
  EXPECT_EQ(r.code, 143) << err(run);
  const auto ck = final_checkpoint(run);
  EXPECT_GE(ck.meta.step, 2);
  EXPECT_LT(ck.meta.step, 8);
  char line[160];
  std::snprintf(line, sizeof line, "ssiat: SIGTERM received: finished step %lld/8, checkpoint step_%08lld written",
                static_cast<long long>(ck.meta.step), static_cast<long long>(ck.meta.step));
  EXPECT_EQ(err(run).rfind(line, 0), 0u) << err(run);

  const ChildExit resumed = Lifecycle::run(run + "_resume", train_args(run, true));
  ASSERT_TRUE(resumed.exited && resumed.code == 0) << err(run + "_resume");
  expect_same_as_reference(run, /*same_chain=*/false);
}

// A second signal while the first is being honoured ends the process at once, by that signal: here
// it comes while the stop checkpoint (step 4) is being written, which is therefore never
// published; checkpoint 3 stays the latest and the resume is byte-identical.
TEST_F(Lifecycle, SecondSignalEndsTheProcessAtOnce) {
  const std::string run = "second_signal";
  const std::string fault = "step.after_backward:4:TERM,checkpoint.tensor_written:" +
                            std::to_string(kTensorsPerCheckpoint + 5) + ":TERM";
  const ChildExit r = Lifecycle::run(run, train_args(run), {{"SSIAT_FAULT", fault}});
  ASSERT_TRUE(r.signaled) << "exited with " << r.code << ": " << err(run);
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_EQ(err(run).find("received"), std::string::npos) << err(run);
  EXPECT_EQ(ssiat::latest_checkpoint(dir_ / run)->filename(), "step_00000003");
  EXPECT_FALSE(fs::exists(dir_ / run / "checkpoints" / "step_00000004"));

  const ChildExit resumed = Lifecycle::run(run + "_resume", train_args(run, true));
  ASSERT_TRUE(resumed.exited && resumed.code == 0) << err(run + "_resume");
  expect_same_as_reference(run, /*same_chain=*/true);
}

// ---- one writer per run directory ---------------------------------------------------------------

// A trainer held (SIGSTOP) in step 2 owns the directory: a second one, with or without --resume,
// exits at once with one line naming the holder's pid and host; the first then finishes
// undisturbed, equal to the reference.
TEST_F(Lifecycle, SecondTrainerOnTheSameDirectoryExitsNamingTheHolder) {
  const std::string run = "busy";
  Child first = spawn_cli(dir_, train_args(run), {{"SSIAT_FAULT", "step.after_backward:2:STOP"}}, run);
  const ChildExit held = wait_child(first, kTimeout, /*until_stopped=*/true);
  ASSERT_TRUE(held.stopped) << "did not stop at the fault point: " << err(run);

  const auto holder = ssiat::read_lock_holder(dir_ / run / ".lock");
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->pid, first.pid);
  EXPECT_EQ(holder->host, host_name());

  const std::string expected = "ssiat: " + run + ": run directory is in use by pid " + std::to_string(first.pid) +
                               " on host " + host_name() + " (lock " + run + "/.lock)\n";
  for (const bool resume : {false, true}) {
    const std::string tag = resume ? "second_resume" : "second";
    const ChildExit second = Lifecycle::run(tag, train_args(run, resume));
    EXPECT_TRUE(second.exited && second.code != 0) << "code " << second.code << " signal " << second.signal;
    EXPECT_EQ(err(tag), expected);
  }
  EXPECT_FALSE(fs::exists(dir_ / run / "checkpoints" / "latest")) << "a checkpoint was written meanwhile";

  ASSERT_EQ(::kill(first.pid, SIGCONT), 0);
  const ChildExit done = wait_child(first, kTimeout);
  ASSERT_TRUE(done.exited && done.code == 0) << err(run);
  expect_same_as_reference(run, /*same_chain=*/true);
}

// A run directory whose lock file names a dead process (or holds garbage) is not blocked.
TEST_F(Lifecycle, StaleLockFileNeverBlocks) {
  const std::string run = "stale";
  fs::create_directories(dir_ / run);
  ssiat::testing::write_file(dir_ / run / ".lock", "{\"pid\":999999,\"host\":\"gone\"}\n");
  ASSERT_TRUE(succeeded(Lifecycle::run(run, train_args(run)))) << err(run);
  expect_same_as_reference(run, /*same_chain=*/true);
}

// ---- multi-rank launches ------------------------------------------------------------------------

struct RankEnv {
  const char* name;
  Env env;
  const char* says;
  const char* rank;  // how the line names the rank (from the launcher's rank variable, if any)
};
void PrintTo(const RankEnv& r, std::ostream* os) { *os << r.name; }

class MultiRank : public Lifecycle, public ::testing::WithParamInterface<RankEnv> {};

// The step benchmark runs one process: a launch as several ranks is recognised from the
// launcher's variables alone (before MPI) and refused with one line.
TEST_P(MultiRank, BenchIsRefusedWithOneLine) {
  const RankEnv& p = GetParam();
  const std::string run = std::string("ranks_") + p.name;
  const ChildExit r = Lifecycle::run(run, {"bench", "train-step", "tiny.toml", "--steps", "1"}, p.env);
  ASSERT_TRUE(r.exited);
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(err(run), std::string("ssiat: ") + p.rank + "bench train-step: launched as " + p.says +
                          ", but it runs as one process; launch it without mpirun/srun\n");
}

INSTANTIATE_TEST_SUITE_P(
    Launchers, MultiRank,
    ::testing::Values(RankEnv{"openmpi", {{"OMPI_COMM_WORLD_SIZE", "2"}}, "2 ranks (OMPI_COMM_WORLD_SIZE=2)", ""},
                      RankEnv{"mpich", {{"PMI_SIZE", "4"}, {"PMI_RANK", "0"}}, "4 ranks (PMI_SIZE=4)", "rank 0: "},
                      RankEnv{"srun",
                              {{"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "0"}},
                              "8 ranks (SLURM_STEP_NUM_TASKS=8)", "rank 0: "},
                      RankEnv{"pmix", {{"PMIX_RANK", "1"}}, "rank 1 of several (PMIX_RANK=1)", "rank 1: "}),
    [](const auto& info) { return std::string(info.param.name); });

// One process of a larger allocation (an sbatch script with --ntasks=4 runs once, with
// SLURM_NTASKS=4 and SLURM_PROCID=0) and a one-rank mpirun are single-rank launches.
TEST(MultiRankLaunch, SingleProcessAllocationsAreNotRefused) {
  auto lookup = [](Env env) {
    return [env = std::move(env)](const char* k) -> const char* {
      const auto it = env.find(k);
      return it == env.end() ? nullptr : it->second.c_str();
    };
  };
  EXPECT_EQ(ssiat::multi_rank_launch(lookup({})), "");
  EXPECT_EQ(ssiat::multi_rank_launch(lookup({{"SLURM_NTASKS", "4"}, {"SLURM_PROCID", "0"}})), "");
  EXPECT_EQ(ssiat::multi_rank_launch(lookup({{"OMPI_COMM_WORLD_SIZE", "1"}, {"OMPI_COMM_WORLD_RANK", "0"}})), "");
  EXPECT_EQ(ssiat::multi_rank_launch(lookup({{"PMI_SIZE", "banana"}})), "");
  EXPECT_EQ(ssiat::multi_rank_launch(lookup({{"OMPI_COMM_WORLD_RANK", "3"}})),
            "rank 3 of several (OMPI_COMM_WORLD_RANK=3)");
  EXPECT_THROW(ssiat::refuse_multi_rank_launch("train", lookup({{"MV2_COMM_WORLD_SIZE", "2"}})), ssiat::ConfigError);
}

// `mpirun -np 2 ssiat train` of a one-rank recipe: the world does not match parallel.dp ×
// parallel.tp; each rank says so in one line naming itself, the job ends, nothing is written.
TEST_F(Lifecycle, WorldSizeMustMatchTheLayoutUnderMpirun) {
  const std::string mpirun = find_in_path("mpirun");
  if (mpirun.empty()) GTEST_SKIP() << "mpirun not found in PATH";
  const std::string run = "mpirun2";
  std::vector<std::string> args = {"--oversubscribe", "--allow-run-as-root", "-np", "2", SSIAT_CLI};
  const auto t = train_args(run);
  args.insert(args.end(), t.begin(), t.end());
  Child c = spawn_cli(dir_, args, {{"OMPI_MCA_btl", "self,vader"}}, run, 1, mpirun);
  const ChildExit r = wait_child(c, kTimeout);
  ASSERT_FALSE(r.timed_out);
  ASSERT_TRUE(r.exited);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(err(run).find("ssiat: rank "), std::string::npos) << err(run);
  EXPECT_NE(err(run).find(": tiny.toml: world size 2 != parallel.dp * parallel.tp = 1 * 1 = 1 (launch parallel.dp × "
                          "parallel.tp ranks, e.g. mpirun -np 1)"),
            std::string::npos)
      << err(run);
  EXPECT_FALSE(fs::exists(dir_ / run));
}

// ---- the lock as a library ------------------------------------------------------------------------

TEST(RunLock, ExclusiveWhileHeldReleasedOnDestructionRecordsPidAndHost) {
  const fs::path dir = fs::temp_directory_path() / ("ssiat_runlock_" + std::to_string(::getpid())) / "run";
  fs::remove_all(dir.parent_path());
  {
    ssiat::RunLock lock(dir);  // creates the directory
    EXPECT_EQ(lock.path(), dir / ".lock");
    const auto h = ssiat::read_lock_holder(dir / ".lock");
    ASSERT_TRUE(h.has_value());
    EXPECT_EQ(h->pid, ::getpid());
    EXPECT_EQ(h->host, host_name());
    // flock is per open file description: a second lock in this same process conflicts too.
    try {
      ssiat::RunLock again(dir);
      ADD_FAILURE() << "second lock taken";
    } catch (const ssiat::RunDirInUse& e) {
      EXPECT_EQ(std::string(e.what()), dir.string() + ": run directory is in use by pid " + std::to_string(::getpid()) +
                                           " on host " + host_name() + " (lock " + (dir / ".lock").string() + ")");
    }
    ssiat::RunLock moved = std::move(lock);
    EXPECT_THROW(ssiat::RunLock{dir}, ssiat::RunDirInUse);
  }
  EXPECT_NO_THROW(ssiat::RunLock{dir});
  EXPECT_TRUE(fs::exists(dir / ".lock"));
  // A path that cannot be a directory is an IoError naming it.
  ssiat::testing::write_file(dir.parent_path() / "file", "x");
  try {
    ssiat::RunLock bad(dir.parent_path() / "file");
    ADD_FAILURE() << "locked a file";
  } catch (const ssiat::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("file"), std::string::npos) << e.what();
  }
  fs::remove_all(dir.parent_path());
}

}  // namespace
