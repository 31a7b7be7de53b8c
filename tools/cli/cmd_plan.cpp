// `ssiat plan RECIPE [--gpus N] [--gpu h100|h200] [--set k=v]... [--json]`: one rank's device
// memory under the launch layout, whether it fits the GPU, and FLOPs per token
// (core/launch_plan.h holds every formula). --gpus defaults to the recipe's dp × tp; --gpu to h100.
// Prints a short table (or, with --json, one JSON object) on stdout.
// Exit status: 0 when the layout fits, 2 when it does not (the plan is still printed, with the
// largest item and the changes that would fit), 1 with one line on stderr for an error (a recipe
// that does not load, an unknown --gpu, a --gpus that parallel.tp does not divide). A launch
// script can therefore run `ssiat plan RECIPE --gpus N --gpu h200 || exit` first.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/launch_plan.h"
#include "core/recipe.h"
#include "tools/cli/commands.h"

namespace ssiat::cli {

namespace {

struct PlanArgs {
  std::string recipe, gpu = "h100";
  std::vector<std::string> sets;
  int64_t gpus = 0;  // 0: the recipe's dp × tp
  bool json = false;
};

constexpr int kDoesNotFit = 2;

double gib(int64_t bytes) { return static_cast<double>(bytes) / static_cast<double>(int64_t{1} << 30); }

// 7504924672 -> "7,504,924,672"
std::string grouped(int64_t v) {
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); i++) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

nlohmann::json memory_json(const RankMemory& m) {
  return {{"weights_f32", m.weights_master}, {"weights_bf16", m.weights_working}, {"gradients", m.gradients},
          {"moments", m.moments},            {"activations", m.activations},      {"logits", m.logits},
          {"scratch", m.scratch},            {"gemm", m.gemm},                    {"total", m.total}};
}

nlohmann::json plan_json(const LaunchPlan& p) {
  nlohmann::json sugg = nlohmann::json::array();
  for (const auto& s : p.suggestions)
    sugg.push_back({{"change", s.change}, {"dp", s.layout.dp}, {"tp", s.layout.tp}, {"zero1", s.layout.zero1},
                    {"recompute", s.layout.recompute}, {"total_bytes", s.total_bytes}});
  return {{"recipe", p.recipe_path},
          {"gpu", p.gpu.key},
          {"gpu_name", p.gpu.name},
          {"capacity_bytes", p.gpu.capacity_bytes},
          {"reserve_fraction", kReserveFraction},
          {"usable_bytes", p.gpu.usable_bytes()},
          {"gpus", p.gpus},
          {"dp", p.layout.dp},
          {"tp", p.layout.tp},
          {"zero1", p.layout.zero1},
          {"recompute", p.layout.recompute},
          {"layout_from_recipe", p.layout_from_recipe},
          {"params", p.params},
          {"params_per_rank", p.params_per_rank},
          {"micro_batch", p.micro_batch},
          {"seq_len", p.seq_len},
          {"seq_capacity", p.seq_capacity},
          {"per_rank", {{"without_recompute", memory_json(p.without_recompute)},
                        {"with_recompute", memory_json(p.with_recompute)}}},
          {"total_bytes", p.as_set().total},
          {"fits", p.fits},
          {"largest", p.largest},
          {"flops_per_token", p.flops_per_token},
          {"mfu_assumed", kPlanMfu},
          {"tokens_per_s_per_gpu", p.tokens_per_s_per_gpu},
          {"suggestions", sugg},
          {"notes", p.notes}};
}

void print_table(const LaunchPlan& p) {
  const LaunchLayout& l = p.layout;
  std::printf("plan: %s on %lld x %s\n", p.recipe_path.c_str(), static_cast<long long>(p.gpus), p.gpu.name.c_str());
  std::printf("layout: dp %lld x tp %lld, zero1 %s, recompute %s%s; micro_batch %lld x seq_len %lld per rank\n",
              static_cast<long long>(l.dp), static_cast<long long>(l.tp), l.zero1 ? "on" : "off",
              l.recompute ? "on" : "off", p.layout_from_recipe ? " (the recipe's)" : "",
              static_cast<long long>(p.micro_batch), static_cast<long long>(p.seq_len));
  if (p.seq_capacity > p.seq_len)
    std::printf("note: activations sized for %lld tokens per sequence (sampling after training)\n",
                static_cast<long long>(p.seq_capacity));
  for (const auto& n : p.notes) std::printf("note: %s\n", n.c_str());
  std::printf("parameters: %s total, %s per rank\n\n", grouped(p.params).c_str(), grouped(p.params_per_rank).c_str());
  const RankMemory &a = p.without_recompute, &b = p.with_recompute;
  const std::string moments = l.zero1 && l.dp > 1 ? "AdamW m, v (f32, zero1: 1/" + std::to_string(l.dp) + ")"
                                                  : std::string("AdamW m, v (f32)");
  const std::string weights = a.weights_working ? "weights (f32 master + bf16 copy)" : "weights (f32)";
  std::printf("%-40s %14s %14s\n", "per rank, GiB", "recompute off", "recompute on");
  auto row = [](const std::string& name, int64_t x, int64_t y) {
    std::printf("  %-38s %14.2f %14.2f\n", name.c_str(), gib(x), gib(y));
  };
  row(weights, a.weights(), b.weights());
  row("gradients (f32)", a.gradients, b.gradients);
  row(moments, a.moments, b.moments);
  row("layer activations (f32)", a.activations, b.activations);
  row("logits (f32)", a.logits, b.logits);
  row("head, backward scratch, RoPE", a.scratch, b.scratch);
  row("GEMM bf16 scratch + cuBLASLt", a.gemm, b.gemm);
  row("total", a.total, b.total);
  const int64_t usable = p.gpu.usable_bytes();
  const std::string usable_name = "usable (capacity less " + std::to_string(static_cast<int>(100 * kReserveFraction)) +
                                  "% reserve)";
  std::printf("  %-38s %14.2f %14.2f\n\n", usable_name.c_str(), gib(usable), gib(usable));
  const RankMemory& m = p.as_set();
  if (p.fits) {
    std::printf("FITS: %.2f GiB of %.2f GiB usable per GPU (%.0f%% headroom), recompute %s\n", gib(m.total),
                gib(usable),
                100.0 * (1.0 - static_cast<double>(m.total) / static_cast<double>(usable)), l.recompute ? "on" : "off");
  } else {
    std::printf("DOES NOT FIT: %.2f GiB per rank, %.2f GiB usable on %s; largest item: %s (%.2f GiB)\n", gib(m.total),
                gib(usable), p.gpu.name.c_str(), p.largest.c_str(), gib(m.bytes_of(p.largest)));
    if (p.suggestions.empty())
      std::printf("no change of parallel.zero1, train.recompute or parallel.tp fits %lld GPUs; lower train.micro_batch "
                  "or use more GPUs\n", static_cast<long long>(p.gpus));
    for (size_t i = 0; i < p.suggestions.size(); i++)
      std::printf("%s %s: %.2f GiB\n", i ? "          " : "fits with:", p.suggestions[i].change.c_str(),
                  gib(p.suggestions[i].total_bytes));
  }
  std::printf("FLOPs per token: %.4g (6 x matmul params + 12 L C T attention, T = %lld)\n", p.flops_per_token,
              static_cast<long long>(p.seq_len));
  std::printf("at %.0f%% MFU (%.1f TFLOP/s dense bf16): %.0f tokens/s per GPU, %.0f on %lld GPUs\n", 100.0 * kPlanMfu,
              p.gpu.peak_bf16_flops / 1e12, p.tokens_per_s_per_gpu,
              p.tokens_per_s_per_gpu * static_cast<double>(p.gpus), static_cast<long long>(p.gpus));
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand("plan", "Per-GPU memory and FLOPs of a recipe under a dp x tp launch");
  cmd->add_option("recipe", args->recipe, "Recipe (TOML)")->required();
  cmd->add_option("--gpus", args->gpus, "GPUs in the launch (default: the recipe's parallel.dp x parallel.tp)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--gpu", args->gpu, "GPU kind: h100 (H100 SXM 80 GB) or h200 (H200 SXM 141 GB)");
  cmd->add_option("--set", args->sets, "Override a recipe key: section.key=value (repeatable)");
  cmd->add_flag("--json", args->json, "One JSON object instead of the table");
  cmd->callback([args] {
    const GpuSpec gpu = gpu_spec(args->gpu);
    const Recipe recipe = load_recipe(args->recipe, args->sets);
    const int64_t gpus = args->gpus > 0 ? args->gpus : recipe.parallel.dp * recipe.parallel.tp;
    const LaunchPlan plan = plan_launch(recipe, gpus, gpu);
    if (args->json)
      std::printf("%s\n", plan_json(plan).dump().c_str());
    else
      print_table(plan);
    std::fflush(stdout);
    if (!plan.fits) std::exit(kDoesNotFit);
  });
}

}  // namespace ssiat::cli
