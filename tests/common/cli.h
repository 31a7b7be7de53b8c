// Helpers for end-to-end tests of the `ssiat` CLI (SSIAT_CLI is the binary's path).
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace ssiat::testing {

struct Cmd {
  int status = 0;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_file(const std::filesystem::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

// Runs `ssiat ARGS` in dir (args are shell words; redirections allowed) with stdout and stderr
// captured to files in dir.
inline Cmd run_cli(const std::filesystem::path& dir, const std::string& args, int threads = 2) {
  const std::filesystem::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = std::string("cd '") + dir.string() + "' && OMP_NUM_THREADS=" + std::to_string(threads) + " '" + SSIAT_CLI +
                          "' " + args + " > '" + out.string() + "' 2> '" + err.string() + "'";
  Cmd r;
  const int rc = std::system(cmd.c_str());
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace ssiat::testing
