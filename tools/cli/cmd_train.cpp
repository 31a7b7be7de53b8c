// `ssiat train RECIPE --run-dir DIR [--set section.key=value]... [--stop-after N] [--resume]`
// and `ssiat bench train-step RECIPE [--set ...] --steps N --warmup W` (one JSON line).
// A train run stopped by SIGTERM/SIGINT/SIGUSR1 (core/signals.h) prints one line naming the step
// and checkpoint and exits with 128 + the signal's number (143, 130, 138).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/recipe.h"
#include "core/signals.h"
#include "core/trainer.h"
#include "distributed/comm.h"
#include "tools/cli/commands.h"

namespace ssiat::cli {

namespace {
struct TrainArgs {
  std::string recipe, run_dir;
  std::vector<std::string> sets;
  int64_t stop_after = 0;
  bool resume = false, quiet = false;
};
struct BenchArgs {
  std::string recipe;
  std::vector<std::string> sets;
  int64_t steps = 5, warmup = 1;
};
}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model from a recipe into a run directory");
  cmd->add_option("recipe", args->recipe, "Recipe (TOML)")->required();
  cmd->add_option("--run-dir", args->run_dir, "Run directory (seed log, metrics, checkpoints)")->required();
  cmd->add_option("--set", args->sets, "Override a recipe key: section.key=value (repeatable)");
  cmd->add_option("--stop-after", args->stop_after, "Stop after N steps (the schedule is unchanged)")
      ->check(CLI::Range(int64_t{0}, INT64_MAX));
  cmd->add_flag("--resume", args->resume, "Continue from the run directory's latest checkpoint");
  cmd->add_flag("-q,--quiet", args->quiet, "No progress lines");
  cmd->callback([args] {
    const Recipe recipe = load_recipe(args->recipe, args->sets);
    TrainOptions opt;
    opt.run_dir = args->run_dir;
    opt.stop_after = args->stop_after;
    opt.resume = args->resume;
    opt.progress = !args->quiet;
    const TrainResult r = train(recipe, opt);
    if (distributed::world_rank() != 0) {  // rank 0 reports for the job
      std::fflush(nullptr);
      if (r.interrupted_by_signal) std::exit(128 + r.interrupted_by_signal);
      return;
    }
    if (r.interrupted_by_signal) {
      std::fprintf(stderr, "ssiat: %s received: finished step %lld/%lld, checkpoint %s written; resume with --resume\n",
                   signal_name(r.interrupted_by_signal), static_cast<long long>(r.step),
                   static_cast<long long>(recipe.train.steps), r.checkpoint.filename().c_str());
      std::fflush(nullptr);
      std::exit(128 + r.interrupted_by_signal);
    }
    std::printf("trained %lld/%lld steps, loss %.4f", static_cast<long long>(r.step),
                static_cast<long long>(recipe.train.steps), r.loss);
    if (r.val_loss) std::printf(", val loss %.4f", *r.val_loss);
    std::printf("; run directory %s\n", args->run_dir.c_str());
    if (!r.sample.empty()) std::printf("sample:\n%s\n", r.sample.c_str());
  });
}

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks (print one JSON line)");
  bench->require_subcommand(1);
  CLI::App* cmd = bench->add_subcommand("train-step", "Time training steps on random tokens");
  cmd->add_option("recipe", args->recipe, "Recipe (TOML); model and train sections are used")->required();
  cmd->add_option("--set", args->sets, "Override a recipe key: section.key=value (repeatable)");
  cmd->add_option("--steps", args->steps, "Timed steps")->check(CLI::Range(int64_t{1}, INT64_MAX));
  cmd->add_option("--warmup", args->warmup, "Untimed steps first")->check(CLI::Range(int64_t{0}, INT64_MAX));
  cmd->callback([args] {
    const Recipe recipe = load_recipe(args->recipe, args->sets);
    const BenchResult r = bench_train_step(recipe, args->steps, args->warmup);
    const nlohmann::json j = {{"tokens_per_s", r.tokens_per_s}, {"step_ms", r.step_ms},
                              {"peak_rss_mb", r.peak_rss_mb}, {"params", r.params}, {"threads", r.threads},
                              {"device", r.device}, {"precision", r.precision},
                              {"flops_per_token", r.flops_per_token}, {"mfu", r.mfu}};
    std::printf("%s\n", j.dump().c_str());
  });
}

}  // namespace ssiat::cli
