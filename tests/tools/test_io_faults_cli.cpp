// I/O faults and non-regular inputs through the `ssiat` CLI. An LD_PRELOAD shim (tests/fault/ioshim.c,
// SSIAT_IOSHIM) fails reads or writes of one file after N bytes: every failing read (corpus in data prepare
// and tokenizer train, recipe, tokenizer files, shard, checkpoint on resume) must end the command with one
// line naming the file (and the byte offset where the code reads sequentially), never a shorter input (a
// checkpoint that cannot be read on resume stops the resume: not taken for a torn one); every
// failing write (data prepare, tokenizer train, checkpoint) must leave no half-written output and keep the
// previous good one. Also: stdin, a directory and a FIFO nobody writes to as inputs (streamed, or refused
// at once, never a hang), and hidden temporaries of a killed run removed by the next run. Every child is
// bounded by a timeout.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/common/cli.h"
#include "tests/tools/cli_test_util.h"

namespace fs = std::filesystem;
using ssiat::testing::run_cli;
using ssiat::testing::slurp;
using ssiat::testing::write_file;

namespace {

using Env = std::map<std::string, std::string>;

// The shim failing reads of paths containing `pattern` from byte `after` on.
Env failing_read(const std::string& pattern, long after) {
  return {{"LD_PRELOAD", SSIAT_IOSHIM}, {"SSIAT_IOSHIM_PATH", pattern}, {"SSIAT_IOSHIM_READ_AFTER", std::to_string(after)}};
}
// The shim failing writes of paths containing `pattern` from byte `after` on with `err` (EIO or ENOSPC).
Env failing_write(const std::string& pattern, long after, const std::string& err = "EIO") {
  return {{"LD_PRELOAD", SSIAT_IOSHIM},
          {"SSIAT_IOSHIM_PATH", pattern},
          {"SSIAT_IOSHIM_WRITE_AFTER", std::to_string(after)},
          {"SSIAT_IOSHIM_WRITE_ERRNO", err}};
}

struct Result {
  ssiat::testing::ChildExit exit;
  std::string out, err;
  bool failed_cleanly() const { return !exit.timed_out && exit.exited && exit.code != 0; }
  bool one_line() const { return std::count(err.begin(), err.end(), '\n') == 1; }
};

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> w;
  size_t p = 0;
  while (p < s.size()) {
    const size_t q = std::min(s.find(' ', p), s.size());
    if (q > p) w.push_back(s.substr(p, q - p));
    p = q + 1;
  }
  return w;
}

class IoFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ssiat_iof_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ssiat::testing::write_tiny_inputs(dir_);  // train.txt ~25 KB
    write_file(dir_ / "lines.txt", slurp(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt"));  // ~87 KB
  }
  void TearDown() override { fs::remove_all(dir_); }

  // `ssiat ARGS` (space-separated words) with `env`, bounded by a 60 s timeout.
  Result run(const std::string& args, const Env& env = {}) {
    auto child = ssiat::testing::spawn_cli(dir_, words(args), env, "io");
    Result r;
    r.exit = ssiat::testing::wait_child(child, std::chrono::seconds(60));
    r.out = slurp(child.out);
    r.err = slurp(child.err);
    return r;
  }
  void prepare() { ASSERT_TRUE(ssiat::testing::prepare_tiny_data(dir_)); }
  // Entries of `parent` whose name starts with "." (temporaries).
  std::vector<std::string> hidden(const fs::path& parent) {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(parent))
      if (e.path().filename().string().starts_with(".")) v.push_back(e.path().filename().string());
    return v;
  }
  fs::path dir_;
};

TEST_F(IoFaults, CorpusReadErrorInDataPrepareNamesFileAndOffsetAndWritesNothing) {
  const Result r = run("data prepare --input lines.txt --out prep", failing_read("lines.txt", 40000));
  EXPECT_TRUE(r.failed_cleanly()) << r.err;
  EXPECT_EQ(r.err, "ssiat: lines.txt: read error at byte 40000: Input/output error\n");
  EXPECT_FALSE(fs::exists(dir_ / "prep"));
  EXPECT_TRUE(hidden(dir_).empty());
}

TEST_F(IoFaults, CorpusReadErrorInTokenizerTrainNamesFileAndOffset) {
  const Result r =
      run("tokenizer train --input lines.txt --vocab-size 1500 --out tok -q --seed 1", failing_read("lines.txt", 65536));
  EXPECT_TRUE(r.failed_cleanly()) << r.err;
  EXPECT_EQ(r.err, "ssiat: lines.txt: read error at byte 65536: Input/output error\n");
  EXPECT_FALSE(fs::exists(dir_ / "tok"));
  EXPECT_TRUE(hidden(dir_).empty());
}

TEST_F(IoFaults, RecipeReadErrorNamesFileAndOffset) {
  prepare();
  const Result r = run("train tiny.toml --run-dir run -q", failing_read("tiny.toml", 10));
  EXPECT_TRUE(r.failed_cleanly()) << r.err;
  EXPECT_EQ(r.err, "ssiat: tiny.toml: read error at byte 10: Input/output error\n");
}

TEST_F(IoFaults, TokenizerFileReadErrorNamesFileAndOffset) {
  ASSERT_EQ(run_cli(dir_, "tokenizer train --input lines.txt --vocab-size 1500 --out tok -q --seed 1").status, 0);
  Result r = run("tokenizer encode --tokenizer tok --input val.txt", failing_read("tokenizer.model", 1000));
  EXPECT_TRUE(r.failed_cleanly()) << r.err;
  EXPECT_EQ(r.err, "ssiat: tok/tokenizer.model: read error at byte 1000: Input/output error\n");
  EXPECT_EQ(r.out, "");  // no ids from a tokenizer that could not be read whole
  r = run("data prepare --input train.txt --out prep --tokenizer tok", failing_read("tokenizer.ssiat.json", 4096));
  EXPECT_TRUE(r.failed_cleanly()) << r.err;
  EXPECT_EQ(r.err, "ssiat: tok/tokenizer.ssiat.json: read error at byte 4096: Input/output error\n");
  EXPECT_FALSE(fs::exists(dir_ / "prep"));
}

TEST_F(IoFaults, ShardReadErrorNamesShardAndOffset) {
  prepare();
  const Result r = run("train tiny.toml --run-dir run -q", failing_read("prep/train/shard_00000.h5", 100));
  EXPECT_TRUE(r.failed_cleanly()) << r.err;
  EXPECT_TRUE(r.one_line()) << r.err;
  EXPECT_NE(r.err.find("prep/train/shard_00000.h5: read error at byte 100: Input/output error"), std::string::npos) << r.err;
}

TEST_F(IoFaults, CheckpointReadErrorOnResumeNamesFile) {
  prepare();
  const auto t = run_cli(dir_, "train tiny.toml --run-dir run -q --set train.steps=4");
  ASSERT_EQ(t.status, 0) << t.err;
  std::string latest = slurp(dir_ / "run/checkpoints/latest");
  latest.erase(latest.find_last_not_of("\n") + 1);
  const std::string state = latest + "/state.h5";
  ASSERT_TRUE(fs::exists(dir_ / "run/checkpoints" / state)) << state;
  const std::string latest_before = slurp(dir_ / "run/checkpoints/latest");
  const Result r = run("train tiny.toml --run-dir run -q --resume --set train.steps=8", failing_read(state, 100));
  // A read error is not a torn checkpoint: the resume stops with one line naming the file and the
  // byte offset, and leaves the checkpoint where it was (not set aside) and `latest` unchanged.
  EXPECT_TRUE(r.failed_cleanly()) << r.err;
  EXPECT_EQ(r.err, "ssiat: run/checkpoints/" + state + ": read error at byte 100: Input/output error\n");
  EXPECT_TRUE(fs::exists(dir_ / "run/checkpoints" / state));
  EXPECT_EQ(slurp(dir_ / "run/checkpoints/latest"), latest_before);
  for (const auto& e : fs::directory_iterator(dir_ / "run/checkpoints"))
    EXPECT_FALSE(e.path().filename().string().starts_with("rejected-")) << e.path();
  // Without the fault the same resume succeeds.
  const Result ok = run("train tiny.toml --run-dir run -q --resume --set train.steps=8");
  EXPECT_EQ(ok.exit.code, 0) << ok.err;
}

TEST_F(IoFaults, WriteErrorInDataPrepareLeavesNoOutputAndSaysNoSpace) {
  const Result r = run("data prepare --input train.txt --out prep --shard-tokens 4000", failing_write("shard_00002", 1000, "ENOSPC"));
  EXPECT_TRUE(r.failed_cleanly()) << r.err;
  EXPECT_TRUE(r.one_line()) << r.err;
  EXPECT_NE(r.err.find("shard_00002.h5"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("o space left on device"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "prep"));
  EXPECT_TRUE(hidden(dir_).empty());
  // The same command without the fault succeeds.
  ASSERT_EQ(run("data prepare --input train.txt --out prep --shard-tokens 4000").exit.code, 0);
  EXPECT_TRUE(fs::exists(dir_ / "prep/shard_00002.h5"));
}

TEST_F(IoFaults, WriteErrorInTokenizerTrainKeepsThePreviousSetWhole) {
  ASSERT_EQ(run_cli(dir_, "tokenizer train --input lines.txt --vocab-size 1500 --out tok -q --seed 1").status, 0);
  std::map<std::string, std::string> before;
  for (const auto& e : fs::directory_iterator(dir_ / "tok")) before[e.path().filename().string()] = slurp(e.path());
  ASSERT_EQ(before.size(), 4u);
  for (const char* file : {"tokenizer.ssiat.json", "tokenizer.model", "tokenizer.json"}) {
    const Result r = run("tokenizer train --input lines.txt --vocab-size 1400 --out tok -q --seed 2 --force", failing_write(file, 1000));
    EXPECT_TRUE(r.failed_cleanly()) << r.err;
    EXPECT_TRUE(r.one_line()) << r.err;
    EXPECT_NE(r.err.find(std::string(file) + ": write failed at byte 1000: Input/output error"), std::string::npos) << r.err;
    std::map<std::string, std::string> after;
    for (const auto& e : fs::directory_iterator(dir_ / "tok")) after[e.path().filename().string()] = slurp(e.path());
    EXPECT_TRUE(after == before) << "the old set changed after a failed write of " << file;
    EXPECT_TRUE(hidden(dir_).empty());
  }
  ASSERT_EQ(run_cli(dir_, "tokenizer encode --tokenizer tok --input val.txt").status, 0);
}

TEST_F(IoFaults, WriteErrorInCheckpointKeepsThePreviousCheckpointLatest) {
  prepare();
  // Checkpoints at steps 3 and 6; the second one's state file hits a full disk.
  const Result r = run("train tiny.toml --run-dir run -q --set train.steps=6", failing_write("6/state.h5", 4096, "ENOSPC"));
  EXPECT_TRUE(r.failed_cleanly()) << r.err;
  EXPECT_TRUE(r.one_line()) << r.err;
  EXPECT_NE(r.err.find("o space left on device"), std::string::npos) << r.err;
  const std::string latest = slurp(dir_ / "run/checkpoints/latest");
  EXPECT_EQ(latest.substr(latest.size() - 2), "3\n") << latest;
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(dir_ / "run/checkpoints"))
    if (e.is_directory()) dirs.push_back(e.path().filename().string());
  EXPECT_EQ(dirs.size(), 1u) << "a half-written checkpoint was left beside the good one";
  // The previous checkpoint is whole: a resume from it reaches step 6.
  const auto ok = run_cli(dir_, "train tiny.toml --run-dir run -q --resume --set train.steps=6");
  EXPECT_EQ(ok.status, 0) << ok.err;
  const std::string now = slurp(dir_ / "run/checkpoints/latest");
  EXPECT_EQ(now.substr(now.size() - 2), "6\n") << now;
}

TEST_F(IoFaults, StdinDirectoryAndWriterlessFifoAsInputs) {
  // stdin ("-") streams: the same shards as from the file.
  auto r = run_cli(dir_, "data prepare --input - --out from_stdin < train.txt");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(run_cli(dir_, "data prepare --input train.txt --out from_file").status, 0);
  EXPECT_EQ(slurp(dir_ / "from_stdin/shard_00000.h5"), slurp(dir_ / "from_file/shard_00000.h5"));
  // A directory is refused at once.
  r = run_cli(dir_, "data prepare --input prep_nowhere/.. --out p2");
  EXPECT_NE(r.status, 0);
  fs::create_directories(dir_ / "adir");
  for (const char* cmd : {"data prepare --input adir --out p2", "tokenizer train --input adir --vocab-size 300 --out t2 -q"}) {
    r = run_cli(dir_, cmd);
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.err, "ssiat: adir: is a directory, expected a file\n") << cmd;
  }
  // A FIFO that nobody writes to: refused within seconds, not a hang and not "empty".
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0644), 0);
  for (const char* cmd : {"data prepare --input fifo --out p3", "tokenizer train --input fifo --vocab-size 300 --out t3 -q"}) {
    const Result f = run(cmd);
    EXPECT_TRUE(f.failed_cleanly()) << cmd << ": " << f.err;
    EXPECT_EQ(f.err, "ssiat: fifo: FIFO with no writer: nothing was written to it within 2 s\n") << cmd;
  }
  EXPECT_FALSE(fs::exists(dir_ / "p2"));
  EXPECT_FALSE(fs::exists(dir_ / "p3"));
  EXPECT_FALSE(fs::exists(dir_ / "t3"));
}

TEST_F(IoFaults, StaleTemporariesOfAKilledRunAreRemovedByTheNextRun) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  const std::string dead = std::to_string(child);
  // What a `data prepare --out prep` and a `tokenizer train --out tok` killed mid-write leave.
  for (const std::string& d : {".prep.tmp-" + dead, ".tok.tmp-" + dead, ".tok.old-" + dead}) {
    fs::create_directories(dir_ / d);
    write_file(dir_ / d / "half.bin", "partial");
  }
  ASSERT_EQ(run_cli(dir_, "data prepare --input train.txt --out prep").status, 0);
  EXPECT_FALSE(fs::exists(dir_ / (".prep.tmp-" + dead)));
  EXPECT_TRUE(fs::exists(dir_ / (".tok.tmp-" + dead)));  // another target's: not this run's to remove
  ASSERT_EQ(run_cli(dir_, "tokenizer train --input lines.txt --vocab-size 1500 --out tok -q --seed 1").status, 0);
  EXPECT_TRUE(hidden(dir_).empty());
}

}  // namespace
