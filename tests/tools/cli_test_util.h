// Shared helpers of the CLI tests in tests/tools/: a tiny Korean corpus, a tiny recipe over it,
// and a child-process runner with bounded waits (for tests that signal or kill the CLI).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/common/cli.h"

namespace ssiat::testing {

// `paragraphs` paragraphs of three sentences each, from six fixed Korean sentences; `salt` varies
// the order (so train and val texts differ).
inline std::string korean_corpus(int paragraphs, int salt) {
  const char* sents[] = {"리브레오피스는 자유 오피스 프로그램입니다.", "문서를 열고 저장하려면 파일 메뉴를 누르십시오.",
                         "표 계산에서 셀을 선택하면 수식을 입력할 수 있습니다.", "글꼴과 단락 서식을 바꿀 수 있습니다.",
                         "도움말 페이지에서 더 많은 정보를 찾으십시오.", "그림을 삽입하고 크기를 조절합니다."};
  std::string s;
  for (int p = 0; p < paragraphs; p++) {
    for (int k = 0; k < 3; k++) s += sents[(p * 5 + k * 7 + salt) % 6], s += " ";
    s += "\n\n";
  }
  return s;
}

// A 2-layer, d_model 32 model on the byte tokenizer; data from `data prepare` into prep/train and
// prep/val; 40 steps, a checkpoint every 3.
inline constexpr const char* kRecipe = R"(seed = 77
[model]
vocab_size = 258
n_layer = 2
d_model = 32
n_head = 4
n_kv_head = 2
d_ff = 64
max_seq_len = 32

[data]
train = "prep/train"
val = "prep/val"

[train]
steps = 40
micro_batch = 4
seq_len = 32
eval_interval = 20
eval_batches = 2
log_interval = 10

[optim]
lr = 0.01
min_lr = 0.001

[schedule]
kind = "cosine"
warmup_steps = 4

[checkpoint]
interval = 3
)";

// A fresh `dir` holding train.txt and val.txt (korean_corpus with salts 0 and 3) and tiny.toml
// (kRecipe): the inputs every CLI suite starts from.
inline void write_tiny_inputs(const std::filesystem::path& dir, int train_paragraphs = 120, int val_paragraphs = 20) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  write_file(dir / "train.txt", korean_corpus(train_paragraphs, 0));
  write_file(dir / "val.txt", korean_corpus(val_paragraphs, 3));
  write_file(dir / "tiny.toml", kRecipe);
}

// `data prepare` of train.txt and val.txt into prep/train and prep/val (kRecipe's data paths);
// true if both succeeded.
inline bool prepare_tiny_data(const std::filesystem::path& dir) {
  return run_cli(dir, "data prepare --input train.txt --out prep/train").status == 0 &&
         run_cli(dir, "data prepare --input val.txt --out prep/val").status == 0;
}

// A fresh `dir` for ko-tiny runs on real Korean text: train.txt and val.txt (tests/data's
// ko_sample.txt and ko_heldout.txt), ko-tiny.toml (recipes/), and our BPE tokenizer of
// ko-tiny's 4,096 pieces learned from train.txt in tok/ (the 86 KB sample reaches 4,096 only when
// pairs seen once may merge: --min-pair-count 1), with the data prepared into prep/train and
// prep/val. Returns "" or what failed. Runs then need --set tokenizer.path=tok
// --set data.train=prep/train --set data.val=prep/val.
inline std::string prepare_ko_tiny_dir(const std::filesystem::path& dir, int tokenizer_seed) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(SSIAT_SOURCE_DIR "/tests/data/ko_sample.txt", dir / "train.txt");
  std::filesystem::copy_file(SSIAT_SOURCE_DIR "/tests/data/ko_heldout.txt", dir / "val.txt");
  std::filesystem::copy_file(SSIAT_SOURCE_DIR "/recipes/ko-tiny.toml", dir / "ko-tiny.toml");
  for (const std::string& args :
       {"tokenizer train --input train.txt --vocab-size 4096 --min-pair-count 1 --out tok -q --seed " +
            std::to_string(tokenizer_seed),
        std::string("data prepare --input train.txt --out prep/train --tokenizer tok"),
        std::string("data prepare --input val.txt --out prep/val --tokenizer tok")}) {
    const Cmd r = run_cli(dir, args);
    if (r.status != 0) return "ssiat " + args + " exited " + std::to_string(r.status) + ":\n" + r.out + r.err;
  }
  return "";
}

// How a child ended (or that it did not within the deadline).
struct ChildExit {
  bool timed_out = false;  // still running at the deadline: it was killed (SIGKILL to its group)
  bool exited = false;
  int code = -1;           // exit status if exited
  bool signaled = false;
  int signal = 0;          // terminating signal if signaled
  bool stopped = false;    // stopped (only reported by wait_child(..., until_stopped = true))
};

// The path of executable `exe` in a directory of PATH, "" if none holds it.
inline std::string find_in_path(const std::string& exe) {
  const char* path = std::getenv("PATH");
  std::istringstream in(path ? path : "");
  std::string d;
  while (std::getline(in, d, ':'))
    if (!d.empty() && ::access((std::filesystem::path(d) / exe).c_str(), X_OK) == 0)
      return (std::filesystem::path(d) / exe).string();
  return "";
}

// A child process running `SSIAT_CLI args...` in its own process group, stdout/stderr to files.
// If a test ends (an ASSERT returns) before wait_child reaped it, the destructor kills its group
// and reaps it, so no child outlives its test (a stopped one included).
struct Child {
  pid_t pid = -1;
  bool reaped = false;
  std::filesystem::path out, err;

  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&& o) noexcept : pid(o.pid), reaped(o.reaped), out(std::move(o.out)), err(std::move(o.err)) { o.pid = -1; }
  ~Child() {
    if (pid > 0 && !reaped) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
  }
};

// Starts `ssiat args...` in dir with OMP_NUM_THREADS=threads and `env` added to (or replacing in)
// this process's environment; `exe` replaces the ssiat binary as argv[0] when given (then args
// follow it, e.g. mpirun ... ssiat ...). Output goes to dir/<tag>.out and dir/<tag>.err.
inline Child spawn_cli(const std::filesystem::path& dir, const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env = {}, const std::string& tag = "child",
                       int threads = 2, const std::string& exe = SSIAT_CLI) {
  std::map<std::string, std::string> vars;
  for (char** e = ::environ; *e; e++) {
    const std::string kv = *e;
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  vars.erase("SSIAT_FAULT");  // the fault-injection test hook (core/fault.h) only where a test sets it
  vars["OMP_NUM_THREADS"] = std::to_string(threads);
  for (const auto& [k, v] : env) vars[k] = v;
  std::vector<std::string> env_strs, argv_strs{exe};
  for (const auto& [k, v] : vars) env_strs.push_back(k + "=" + v);
  argv_strs.insert(argv_strs.end(), args.begin(), args.end());
  std::vector<char*> envp, argv;
  for (auto& s : env_strs) envp.push_back(s.data());
  for (auto& s : argv_strs) argv.push_back(s.data());
  envp.push_back(nullptr);
  argv.push_back(nullptr);
  Child c;
  c.out = dir / (tag + ".out");
  c.err = dir / (tag + ".err");
  const std::string out = c.out.string(), err = c.err.string(), cwd = dir.string();
  c.pid = ::fork();
  if (c.pid == 0) {  // child: only async-signal-safe calls until exec
    ::setpgid(0, 0);
    // Default dispositions and no blocked signals, whatever this test process inherited (a
    // shell starts background jobs with SIGINT ignored).
    for (int s : {SIGINT, SIGTERM, SIGUSR1, SIGQUIT}) ::signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int fo = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int fe = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fo < 0 || fe < 0 || ::chdir(cwd.c_str()) != 0 || ::dup2(fo, 1) < 0 || ::dup2(fe, 2) < 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return c;
}

// Waits for the child to end (or, with until_stopped, to stop) for at most `timeout`; on timeout
// kills its whole process group and reaps it, so no child outlives a test.
inline ChildExit wait_child(Child& c, std::chrono::milliseconds timeout, bool until_stopped = false) {
  const pid_t pid = c.pid;
  ChildExit r;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int st = 0;
    const pid_t got = ::waitpid(pid, &st, WNOHANG | (until_stopped ? WUNTRACED : 0));
    if (got == pid) {
      if (WIFEXITED(st)) r.exited = true, r.code = WEXITSTATUS(st);
      if (WIFSIGNALED(st)) r.signaled = true, r.signal = WTERMSIG(st);
      if (WIFSTOPPED(st)) r.stopped = true, r.signal = WSTOPSIG(st);
      c.reaped = !r.stopped;
      return r;
    }
    if (got < 0 && errno != EINTR) {  // not our child (already reaped)
      c.reaped = true;
      return r;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      c.reaped = true;
      r.timed_out = true;
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace ssiat::testing
