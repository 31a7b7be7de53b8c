// The training loop: recipe -> run directory (DESIGN "Flow").
//
// A run directory holds
//   recipe.toml      the effective recipe (file + --set overrides + defaults), canonical TOML
//   run.json         framework version, git commit, compiler, build flags, threads
//   seeds.jsonl      the seed registry's log (core/seed_registry.h): master seed, streams,
//                    every tensor's init spec and initial SHA-256, the init commitment, data
//   metrics.jsonl    one JSON object per step: step, loss, lr, grad_norm, tokens_per_s,
//                    gflops, elapsed_s (+ val_loss on evaluation steps)
//   checkpoints/     core/checkpoint.h; `latest` names the newest complete one
//   sample.txt       the generated sample, if train.sample_tokens > 0
// Determinism (invariant 4): for the same recipe, build and machine class, N steps straight and
// k steps + resume + N-k steps give byte-identical tensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "core/recipe.h"

namespace ssiat {

struct TrainOptions {
  std::filesystem::path run_dir;
  int64_t stop_after = 0;  // stop after this many steps of this invocation (0: run to the end)
  bool resume = false;     // continue from the run directory's latest checkpoint
  bool progress = true;    // print progress lines to stderr
};

struct TrainResult {
  int64_t step = 0;  // updates done in total
  double loss = 0;   // training loss of the last step
  std::optional<double> val_loss;
  std::string sample;
};

TrainResult train(const Recipe& recipe, const TrainOptions& opt);

struct BenchResult {
  double tokens_per_s = 0;
  double step_ms = 0;
  double peak_rss_mb = 0;
  int64_t params = 0;
  int threads = 0;
};

// Times full training steps (forward, backward, clip, AdamW) on random tokens drawn from the
// stream "bench/tokens"; reads no data.
BenchResult bench_train_step(const Recipe& recipe, int64_t steps, int64_t warmup);

}  // namespace ssiat
