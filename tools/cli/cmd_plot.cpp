// `ssiat plot RUN_DIR [--out FILE.png]`: the run's training curves (loss with validation loss,
// learning rate, grad norm, tokens/s; core/plot.h) from RUN_DIR/metrics.jsonl, written as a PNG
// to RUN_DIR/plot.png unless --out names another file. Works on a live run (the trainer's
// partial last line is skipped). Prints "wrote FILE (N steps)". Errors are one line and leave no
// PNG behind.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/plot.h"
#include "tools/cli/commands.h"

namespace ssiat::cli {

void add_plot_command(CLI::App& app) {
  auto run = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("plot", "Plot a run's metrics.jsonl (loss, validation loss, lr, grad norm, tokens/s) as a PNG");
  cmd->add_option("run_dir", *run, "Run directory (holds metrics.jsonl)")->required();
  cmd->add_option("--out", *out, "PNG file to write (default RUN_DIR/plot.png)");
  cmd->callback([run, out] {
    const std::filesystem::path target = out->empty() ? std::filesystem::path(*run) / "plot.png" : std::filesystem::path(*out);
    if (target.filename().empty()) throw ConfigError("--out: must name a file, got '" + *out + "'");
    const RunMetrics m = read_run_metrics(*run);
    write_plot_png(m, target);
    std::printf("wrote %s (%zu steps)\n", target.string().c_str(), m[Series::kLoss].x.size());
  });
}

}  // namespace ssiat::cli
