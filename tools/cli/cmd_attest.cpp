// `ssiat attest RUN_DIR --key PREFIX.key --out FILE` and
// `ssiat verify FILE --pubkey PREFIX.pub [--checkpoint RUN_DIR [--replay K] [--reference MODEL]]
// [--json REPORT]`
// (core/attestation.h), and `ssiat init-root RECIPE [--set ...] [--seed S]`, which regenerates a
// recipe's initial weights one tensor at a time and prints one JSON line: the init root
// (docs/provenance.md), the tensor and parameter counts, seconds and peak RSS. verify prints one line per check (PASS / FAIL / NOT RUN, with what it
// found or what broke), then the result; it exits 1 when any check FAILED. --json writes the same
// report as JSON.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <sys/resource.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include "core/attestation.h"
#include "core/init_table.h"
#include "core/recipe.h"
#include "core/error.h"
#include "core/fs.h"
#include "tools/cli/commands.h"

namespace ssiat::cli {

namespace {
struct AttestArgs {
  std::string run, key, out;
};
struct VerifyArgs {
  std::string envelope, pubkey, checkpoint, json;
  int64_t replay = 0;
  std::string reference;
};
}  // namespace

void add_attest_command(CLI::App& app) {
  auto a = std::make_shared<AttestArgs>();
  CLI::App* cmd = app.add_subcommand("attest", "Sign the init-provenance statement of a run (in-toto, DSSE, Ed25519)");
  cmd->add_option("run_dir", a->run, "Run directory")->required();
  cmd->add_option("--key", a->key, "Secret key (PREFIX.key from ssiat keygen)")->required();
  cmd->add_option("--out", a->out, "Attestation to write (DSSE envelope, JSON)")->required();
  cmd->callback([a] {
    const std::string keyid = attest(a->run, a->key, a->out);
    std::printf("wrote %s: statement of %s signed by key %s\n", a->out.c_str(), a->run.c_str(), keyid.c_str());
  });
}

void add_verify_command(CLI::App& app) {
  auto a = std::make_shared<VerifyArgs>();
  CLI::App* cmd = app.add_subcommand("verify", "Check an attestation: signature, regenerated init, chain, checkpoints, policy");
  cmd->add_option("attestation", a->envelope, "Attestation (from ssiat attest)")->required();
  cmd->add_option("--pubkey", a->pubkey, "Public key (PREFIX.pub)")->required();
  cmd->add_option("--checkpoint", a->checkpoint, "Run directory whose checkpoints to check against the chain");
  cmd->add_option("--replay", a->replay, "Retrain the last K segments of the chain and compare (needs --checkpoint)")
      ->check(CLI::Range(int64_t{0}, INT64_MAX));
  cmd->add_option("--reference", a->reference,
                  "Lineage report against a model (.safetensors or a run directory; needs --checkpoint)");
  cmd->add_option("--json", a->json, "Also write the report as JSON to this file");
  cmd->callback([a] {
    VerifyOptions opt;
    opt.envelope = a->envelope;
    opt.pubkey = a->pubkey;
    if (!a->checkpoint.empty()) opt.checkpoint_run = a->checkpoint;
    opt.checkpoints = verify_checkpoints;
    opt.replay_segments = a->replay;
    opt.replay = replay_segments;
    if (!a->reference.empty()) opt.reference = a->reference;
    opt.lineage = lineage_report;
    const std::vector<Check> checks = verify(opt);
    for (const auto& c : checks)
      std::printf("%-7s  %-11s  %s\n", check_status_name(c.status), c.name.c_str(), c.detail.c_str());
    const bool ok = all_passed(checks);
    std::printf("verify: %s\n", ok ? "PASS" : "FAIL");
    if (!a->json.empty()) write_file_atomic(a->json, report_json(checks).dump(2) + "\n");
    std::fflush(nullptr);
    if (!ok) std::exit(1);
  });
}

void add_init_root_command(CLI::App& app) {
  struct Args {
    std::string recipe;
    std::vector<std::string> sets;
    int64_t seed = -1;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("init-root", "Regenerate a recipe's initial weights and print their init root");
  cmd->add_option("recipe", a->recipe, "Recipe (TOML); its [model] and seed are used")->required();
  cmd->add_option("--set", a->sets, "Override a recipe key: section.key=value (repeatable)");
  cmd->add_option("--seed", a->seed, "Master seed (default: the recipe's)")->check(CLI::Range(int64_t{0}, INT64_MAX));
  cmd->callback([a] {
    const Recipe r = load_recipe(a->recipe, a->sets);
    if (a->seed < 0 && !r.seed) throw ConfigError(a->recipe + ": no seed in the recipe; pass --seed");
    const uint64_t seed = a->seed >= 0 ? static_cast<uint64_t>(a->seed) : *r.seed;
    const auto t0 = std::chrono::steady_clock::now();
    const RegeneratedInit g = regenerate_init(r.model, seed);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t params = 0;
    for (const auto& t : init_table(r.model)) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      params += n;
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const nlohmann::json j = {{"root", g.root}, {"seed", seed}, {"tensors", g.leaves.size()}, {"params", params},
                              {"seconds", seconds}, {"peak_rss_mb", static_cast<double>(ru.ru_maxrss) / 1024.0}};
    std::printf("%s\n", j.dump().c_str());
  });
}

}  // namespace ssiat::cli
