// The training loop: recipe -> run directory (DESIGN "Flow").
//
// A run directory holds
//   recipe.toml      the effective recipe (file + --set overrides + defaults) of the run's
//                    first segment, canonical TOML; a resume never rewrites it
//   run.json         build of the first segment: version, git commit, compiler, flags, threads
//   history.jsonl    one JSON object per segment (an invocation of train()): {"segment": 0, 1,
//                    ..., "start_step", "resumed_from": "step_<N>" | null, "recipe": canonical
//                    TOML, "recipe_sha256", "build": as run.json, "time": UTC ISO-8601, "note"
//                    if the start needed one}; appended atomically (whole file rewritten)
//   seeds.jsonl      the seed registry's log (core/seed_registry.h): master seed, streams,
//                    every tensor's init spec and initial SHA-256, the init commitment, data
//   metrics.jsonl    one JSON object per step: step, loss, lr, grad_norm, tokens_per_s (the
//                    job's), gflops, mfu, comm_bytes (what rank 0 sent other ranks in the step,
//                    distributed/comm.h), optimizer_state_mb (rank 0's moments), peak_rss_mb
//                    (rank 0's), elapsed_s (+ val_loss on evaluation steps)
//   chain.jsonl      one record per checkpoint written (core/chain.h): step, roots over the
//                    logical tensors, segment, recipe and build digests, parent; never pruned
//   checkpoints/     core/checkpoint.h; `latest` names the newest complete one; a torn
//                    checkpoint passed over on resume is kept as rejected-step_<N>[.k]
//   sample.txt       the generated sample, if train.sample_tokens > 0
//   .lock            held by the one live writer (core/run_lock.h): pid and host
// Ranks (issue 9): launched by mpirun/srun, train() runs on parallel.dp × parallel.tp ranks
// (core/ranks.h: they first agree on recipe, build and data digests); data parallelism with
// ZeRO-1 as a switch (core/data_parallel.h: micro-batch a of dp rank r reads global samples
// pos + (a·dp + r)·B), tensor parallelism in the model (core/tensor_parallel.h). Only global
// rank 0 touches the run directory: lock, logs, metrics and checkpoints, which hold logical whole
// tensors (core/sharded_state.h), so any layout resumes any other. An error on one rank ends
// every rank (main(): one line naming the rank, MPI_Abort).
// One writer per run directory: a directory another process holds is refused.
// SIGTERM/SIGINT/SIGUSR1 (on any rank) end the run after the current step with a checkpoint
// (TrainResult::interrupted_by_signal; core/signals.h).
// Determinism (invariant 4): for the same recipe, build and machine class, N steps straight and
// k steps + resume + N-k steps give byte-identical tensors.
//
// Resume (--resume), decided before anything is written; every refusal is one ConfigError line:
//   - The checkpoint: the one `latest` names if it verifies (core/checkpoint.h "Reading"). What
//     happens otherwise depends on the failure's class:
//       torn (what a crash leaves: `latest` missing, malformed or dangling; manifest.json or
//         state.h5 missing, not JSON, not v2, not HDF5, truncated): the newest step_<N> that
//         verifies is used, with one line on stderr saying why and which; the torn directories
//         are set aside as rejected-step_<N> and `latest` repointed (find_resume_point,
//         set_aside_rejected), only once every check below has passed;
//       read error (ReadError: the OS failed a read, e.g. EIO): the run stops with that line
//         (file and byte offset), non-zero exit, nothing renamed, `latest` unchanged;
//       integrity failure (IntegrityError: an edited manifest field, named where it can be --
//         step, samples_seen, recipe_sha256 -- else manifest_sha256; a tensor whose SHA-256 is
//         not the manifest's, named): refused the same way, never skipped, with advice to move
//         the directory aside to resume from the previous checkpoint.
//   - Strict recipe: the effective recipe is compared key by key with the one the checkpoint
//     records; any difference outside kResumeMutableKeys (core/recipe.h: train.steps,
//     train.log_interval, train.eval_interval, train.eval_batches, train.sample_tokens,
//     train.sample_prompt, checkpoint.interval, checkpoint.keep, train.recompute, data.val) is
//     refused naming the first differing key, both values and the checkpoint; the layout keys
//     (kResumeLayoutKeys: parallel.dp, parallel.tp, parallel.zero1, train.grad_accum,
//     train.micro_batch) may change while the global batch micro_batch × grad_accum × dp stays. `seed`, if given, must equal the
//     checkpoint's master seed. The checkpoint must hold exactly the model's tensors (shapes
//     included) and samples_seen = step × micro_batch × grad_accum × dp.
//   - No complete checkpoint (none, or all torn): the run restarts from step 0 with its
//     recorded seed (seeds.jsonl; the recipe's if none was logged), after the same recipe check
//     against recipe.toml, and says so on stderr; the result is a fresh run's, bit for bit.
//   - A directory with no run in it (no checkpoints/, recipe.toml, seeds.jsonl or
//     history.jsonl; e.g. a first job of a requeued script): a new run starts, with a note on
//     stderr, so `--resume` may always be passed.
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
  // A stop signal (core/signals.h) ended this invocation early: its number (e.g. SIGTERM); the
  // step it finished is `step` and the checkpoint written for it is `checkpoint`.
  int interrupted_by_signal = 0;
  std::filesystem::path checkpoint;  // the last checkpoint this invocation wrote (empty: none)
};

TrainResult train(const Recipe& recipe, const TrainOptions& opt);

struct BenchResult {
  double tokens_per_s = 0;
  double step_ms = 0;
  double peak_rss_mb = 0;
  int64_t params = 0;
  int threads = 0;
  std::string device;           // Backend::describe()
  std::string precision;        // "f32" | "bf16"
  double flops_per_token = 0;   // Llama::flops_per_token(seq_len)
  double mfu = 0;               // CUDA: model FLOP/s over the dense bf16 peak; 0 on the CPU
};

// Times full training steps (forward, backward, clip, AdamW) on random tokens drawn from the
// stream "bench/tokens"; reads no data.
BenchResult bench_train_step(const Recipe& recipe, int64_t steps, int64_t warmup);

}  // namespace ssiat
