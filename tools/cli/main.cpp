// `ssiat` — one CLI with subcommands. Library code throws typed errors; this is the one place
// that turns them into a one-line message on stderr and a non-zero exit status.
//
// Every failure prints exactly one line, "ssiat: <message>": ssiat::Error's text (which names
// the file, key, line, byte offset or rank); std::filesystem errors as "PATH: <operation>:
// <reason>"; an allocation failure as "out of memory"; anything else as "internal error: <what>"
// (a bug: library code should have thrown a typed error with context). No raw C++
// library text reaches the user: newlines are flattened and nlohmann's "[json.exception.*]"
// tags are dropped. Command-line parse errors print one line too (help and --version are not
// failures and keep CLI11's output). Under mpirun/srun: "ssiat: rank R: <message>", then
// MPI_Abort ends the whole job (exit status non-zero on every launcher).
#include <cstdio>
#include <exception>
#include <filesystem>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include <CLI/CLI.hpp>
#include <hdf5.h>

#include "core/error.h"
#include "core/run_lock.h"
#include "distributed/comm.h"
#include "tools/cli/commands.h"

namespace {

// One line: control characters become spaces (runs collapsed), "[json.exception.x.N] " tags
// are removed, trailing spaces trimmed.
std::string one_line(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '[' && s.substr(i, 16) == "[json.exception.") {
      const size_t close = s.find(']', i);
      if (close != std::string_view::npos) {
        i = close;
        if (i + 1 < s.size() && s[i + 1] == ' ') i++;
        continue;
      }
    }
    if (c < 0x20 || c == 0x7f) {
      if (!out.empty() && out.back() != ' ') out += ' ';
      continue;
    }
    out += static_cast<char>(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out.empty() ? "unknown error" : out;
}

// In a job of several ranks (mpirun, srun) the line names the rank, and MPI_Abort then ends
// every rank at once, so none waits forever in a collective for this one.
int fail(const std::string& msg) {
  if (ssiat::distributed::in_multi_rank_world()) {
    std::fprintf(stderr, "ssiat: rank %d: %s\n", ssiat::distributed::world_rank(), one_line(msg).c_str());
    std::fflush(stderr);
    ssiat::distributed::abort_world_if_multi_rank(1);
  }
  // Launched as several ranks but failed before joining MPI (e.g. a bad recipe): no rank waits
  // on this one yet; the line still names the rank, from the launcher's variables.
  if (const int64_t rank = ssiat::launcher_rank(); rank >= 0) {
    std::fprintf(stderr, "ssiat: rank %lld: %s\n", static_cast<long long>(rank), one_line(msg).c_str());
    return 1;
  }
  std::fprintf(stderr, "ssiat: %s\n", one_line(msg).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // HDF5 1.10 installs an atexit teardown that crashes (SIGSEGV) on a file whose close failed,
  // e.g. a checkpoint that hit a full disk: the error line is printed, then the exit status is
  // lost. The OS reclaims everything at exit, so the teardown is skipped. Must precede any
  // other HDF5 call.
  H5dont_atexit();
  CLI::App app{"ssiat (씨앗): train Korean LLMs from random initialisation, and prove it"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ssiat " SSIAT_VERSION " (" SSIAT_GIT_COMMIT ")");
  // Parse errors: one line naming the option, and where to look (CLI11's default adds a line).
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return one_line(std::string("ssiat: ") + e.what() + " (see --help)") + "\n";
  });
  ssiat::cli::add_tokenizer_command(app);
  ssiat::cli::add_data_command(app);
  ssiat::cli::add_train_command(app);
  ssiat::cli::add_bench_command(app);
  ssiat::cli::add_keygen_command(app);
  ssiat::cli::add_attest_command(app);
  ssiat::cli::add_verify_command(app);
  ssiat::cli::add_init_root_command(app);
  ssiat::cli::add_model_commands(app);
  ssiat::cli::add_plan_command(app);
  ssiat::cli::add_plot_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ssiat::Error& e) {
    return fail(e.what());
  } catch (const std::filesystem::filesystem_error& e) {
    return fail(ssiat::describe_fs_error(e));
  } catch (const std::bad_alloc&) {
    return fail("out of memory (an allocation failed; use a smaller recipe or free memory)");
  } catch (const std::length_error&) {
    return fail("out of memory (a requested size exceeds what can be allocated)");
  } catch (const std::system_error& e) {
    return fail("system error: " + ssiat::errno_message(e.code().value()));
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  } catch (...) {
    return fail("internal error: unknown exception");
  }
  return 0;
}
