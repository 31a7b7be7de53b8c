// `ssiat` — one CLI with subcommands. Library code throws typed errors; this is the one place
// that turns them into a one-line message on stderr and a non-zero exit status.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "kernels/check.h"
#include "tools/cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"ssiat (씨앗): train Korean LLMs from random initialisation, and prove it"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ssiat " SSIAT_VERSION " (" SSIAT_GIT_COMMIT ")");
  ssiat::cli::add_tokenizer_command(app);
  ssiat::cli::add_data_command(app);
  ssiat::cli::add_train_command(app);
  ssiat::cli::add_bench_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ssiat::Error& e) {
    std::fprintf(stderr, "ssiat: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssiat: %s\n", e.what());
    return 1;
  }
  return 0;
}
