// Resource errors and messages of the `ssiat` CLI (issue 7, items 8-9): a recipe whose buffers
// cannot fit is refused before anything is written, naming the bytes and the key; a full disk
// (a small tmpfs) says "no space left on device" with the path and leaves the previous
// checkpoint the latest, verified and resumable; corrupt JSON files are named in one line; every
// failure prints exactly one line on stderr and no raw C++ library text.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/memory_plan.h"
#include "tests/common/cli.h"
#include "tests/tools/cli_test_util.h"

namespace fs = std::filesystem;

namespace {

using ssiat::testing::Cmd;
using ssiat::testing::run_cli;

// Text that only a raw C++ library exception would print.
const char* const kRawTexts[] = {"std::", "[json.exception", "_M_", "basic_string", "vector::", "stoll", "stoi",
                                 "filesystem error", "what()", "terminate called", "bad_alloc"};

// Non-zero exit, exactly one line on stderr holding every needle, no raw library text.
void expect_one_line_failure(const Cmd& r, const std::vector<std::string>& needles) {
  EXPECT_NE(r.status, 0) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not exactly one line: " << r.err;
  EXPECT_EQ(r.err.rfind("ssiat: ", 0), 0u) << r.err;
  for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  for (const char* raw : kRawTexts) EXPECT_EQ(r.err.find(raw), std::string::npos) << "raw text '" << raw << "' in: " << r.err;
}

class MessagesCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ssiat_msg_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ssiat::testing::write_tiny_inputs(dir_, 60, 10);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void prepare() { ASSERT_TRUE(ssiat::testing::prepare_tiny_data(dir_)); }
  fs::path dir_;
};

// 64 x 65536 tokens x a 2e9 vocabulary: 30 PiB of logits. Refused before anything is read or
// written (the data is not even prepared), by `train` and by `bench train-step`.
TEST_F(MessagesCli, RecipeTooLargeForMemoryIsRefusedNamingBytesAndKey) {
  const std::string huge =
      " --set model.vocab_size=2000000000 --set model.max_seq_len=65536 --set train.seq_len=65536 --set train.micro_batch=64";
  const std::vector<std::string> needles = {"tiny.toml: needs ", "PiB",
                                            "(logits: train.micro_batch*train.seq_len*model.vocab_size*4 B = ",
                                            " is available ("};
  expect_one_line_failure(run_cli(dir_, "train tiny.toml --run-dir run" + huge), needles);
  EXPECT_FALSE(fs::exists(dir_ / "run")) << "wrote the run directory";
  expect_one_line_failure(run_cli(dir_, "bench train-step tiny.toml --steps 1" + huge), needles);

  // Sizes that overflow 64-bit integers name the key (and the --set that set it).
  expect_one_line_failure(
      run_cli(dir_, "train tiny.toml --run-dir run --set model.vocab_size=2147483647 --set model.max_seq_len=1048576"
                    " --set train.seq_len=1048576 --set train.micro_batch=1048576"),
      {"--set model.vocab_size=2147483647: model.vocab_size = 2147483647 with train.micro_batch*train.seq_len = "
       "1099511627776 overflows the logits size"});
  expect_one_line_failure(
      run_cli(dir_, "train tiny.toml --run-dir run --set model.d_model=4294967296 --set model.n_head=2 --set model.n_kv_head=2"),
      {"model.d_model = 4294967296", "overflows the parameter size"});
  EXPECT_FALSE(fs::exists(dir_ / "run")) << "wrote the run directory";
}

// The plan honours a real limit too: under `ulimit -v` (RLIMIT_AS, ~3.8 GiB) an 8 GiB logits buffer is
// refused naming the limit, while the tiny recipe still runs.
TEST_F(MessagesCli, AddressSpaceLimitIsNamedAsTheAvailableMemory) {
  if (const auto avail = ssiat::available_memory(); !avail || avail->bytes < (int64_t{5} << 30))
    GTEST_SKIP() << "under 5 GiB available: the limit named would be the machine's, not RLIMIT_AS";
  auto run = [&](const std::string& sets) {
    const std::string cmd = "cd '" + dir_.string() + "' && ulimit -v 4000000 && OMP_NUM_THREADS=2 '" + SSIAT_CLI +
                            "' bench train-step tiny.toml --steps 1 --warmup 0" + sets + " > out.txt 2> err.txt";
    const int rc = std::system(cmd.c_str());
    return Cmd{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ssiat::testing::slurp(dir_ / "out.txt"),
               ssiat::testing::slurp(dir_ / "err.txt")};
  };
  expect_one_line_failure(
      run(" --set model.vocab_size=131072 --set model.max_seq_len=1024 --set train.seq_len=1024 --set train.micro_batch=16"),
      {"(logits: train.micro_batch*train.seq_len*model.vocab_size*4 B = 8.0 GiB)", "is available (RLIMIT_AS)"});
  const Cmd ok = run("");
  EXPECT_EQ(ok.status, 0) << ok.err;
}

// Mounts a tmpfs of `bytes` at `dir` for its lifetime (unmounted in every case).
class Tmpfs {
 public:
  Tmpfs(const fs::path& dir, int64_t bytes) : dir_(dir) {
    fs::create_directories(dir);
    const std::string opts = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0) mounted_ = true;
    else error_ = std::strerror(errno);
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  bool resize(int64_t bytes) {
    const std::string opts = "size=" + std::to_string(bytes);
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, opts.c_str()) == 0;
  }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string error_;
};

// What a directory tree costs on tmpfs: each file rounded up to whole pages.
int64_t tmpfs_bytes(const fs::path& dir) {
  const int64_t page = ::sysconf(_SC_PAGESIZE);
  int64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += (static_cast<int64_t>(e.file_size()) + page - 1) / page * page;
  return total;
}

// A run directory on a tmpfs that holds one checkpoint but not two: the second checkpoint fails
// with one line naming its path and "no space left on device"; `latest` still names the first,
// which verifies; after the disk grows, --resume continues from it to the end.
TEST_F(MessagesCli, FullDiskNamesThePathAndKeepsThePreviousCheckpointLatest) {
  prepare();
  const std::string set =
      " -q --set train.steps=3 --set schedule.warmup_steps=1 --set checkpoint.interval=1 --set train.eval_interval=0";
  // What one step and one checkpoint take, measured on the ordinary disk.
  const Cmd ref = run_cli(dir_, "train tiny.toml --run-dir ref --stop-after 1" + set);
  ASSERT_EQ(ref.status, 0) << ref.err;
  const int64_t one = tmpfs_bytes(dir_ / "ref");
  const int64_t ckpt = tmpfs_bytes(dir_ / "ref" / "checkpoints" / "step_00000001");
  ASSERT_GT(ckpt, 100000);

  Tmpfs disk(dir_ / "disk", one + ckpt / 2);
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (" << disk.error() << "; needs CAP_SYS_ADMIN)";
  const Cmd r = run_cli(dir_, "train tiny.toml --run-dir disk/run" + set);
  expect_one_line_failure(r, {"no space left on device", "disk/run/checkpoints/.tmp-step_00000002"});

  const auto latest = ssiat::latest_checkpoint(dir_ / "disk" / "run");
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->filename(), "step_00000001");
  const auto ck = ssiat::read_checkpoint(*latest);  // verifies every tensor's SHA-256
  EXPECT_EQ(ck.meta.step, 1);
  EXPECT_FALSE(fs::exists(dir_ / "disk" / "run" / "checkpoints" / "step_00000002"));

  ASSERT_TRUE(disk.resize(int64_t{64} << 20)) << std::strerror(errno);
  const Cmd resumed = run_cli(dir_, "train tiny.toml --run-dir disk/run --resume" + set);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  const auto end = ssiat::latest_checkpoint(dir_ / "disk" / "run");
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(ssiat::read_checkpoint(*end).meta.step, 3);
}

// Corrupt JSON a user can hand the CLI: the tokenizer file and a data manifest. One line naming
// the file (and the byte for a syntax error); nothing written.
TEST_F(MessagesCli, CorruptJsonFilesAreNamedInOneLine) {
  fs::create_directories(dir_ / "tok");
  ssiat::testing::write_file(dir_ / "tok" / "tokenizer.ssiat.json", "{\"format\": ");
  expect_one_line_failure(run_cli(dir_, "data prepare --input train.txt --out p1 --tokenizer tok"),
                          {"tok/tokenizer.ssiat.json", "not valid JSON at byte"});
  ssiat::testing::write_file(dir_ / "tok" / "tokenizer.ssiat.json", "{\"format\": 5}");
  expect_one_line_failure(run_cli(dir_, "tokenizer encode --tokenizer tok < train.txt"), {"tok/tokenizer.ssiat.json"});
  EXPECT_FALSE(fs::exists(dir_ / "p1"));

  prepare();
  ssiat::testing::write_file(dir_ / "prep" / "train" / "manifest.json", "{\"format\": \"ssiat-tokens/v1\", nope}");
  expect_one_line_failure(run_cli(dir_, "train tiny.toml --run-dir run"), {"prep/train/manifest.json", "invalid JSON at byte"});
  ssiat::testing::write_file(dir_ / "prep" / "train" / "manifest.json", "{\"format\": 5}");
  expect_one_line_failure(run_cli(dir_, "train tiny.toml --run-dir run"), {"prep/train/manifest.json"});
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

// A table of failing invocations: each exits non-zero with exactly one line on stderr.
TEST_F(MessagesCli, EveryFailureIsOneLineWithoutRawLibraryText) {
  prepare();
  ssiat::testing::write_file(dir_ / "afile", "x");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "subcommand"},
      {"train", "recipe"},
      {"train tiny.toml --run-dir r --bogus", "--bogus"},
      {"train tiny.toml --run-dir r --stop-after -2", "--stop-after"},
      {"train tiny.toml --run-dir r --stop-after abc", "--stop-after"},
      {"bench train-step tiny.toml --steps 0", "--steps"},
      {"train missing.toml --run-dir r", "missing.toml"},
      {"train tiny.toml --run-dir afile/run", "afile/run"},
      {"train tiny.toml --run-dir r --set train.steps=99999999999999999999", "train.steps"},
      {"train tiny.toml --run-dir r --set model.n_layer=9223372036854775807", "model.n_layer"},
      {"train tiny.toml --run-dir r --set train.steps=9223372036854775807", "train.steps"},
      {"data prepare --input nothere.txt --out p", "nothere.txt"},
      {"data prepare --input train.txt --out p --threads 99999999999", "--threads"},
      {"tokenizer decode --tokenizer nowhere", "nowhere"},
  };
  for (const auto& [args, needle] : cases) {
    SCOPED_TRACE(args);
    expect_one_line_failure(run_cli(dir_, args), {needle});
  }
}

}  // namespace
