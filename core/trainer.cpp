// Training loop, evaluation, checkpoint/resume and sampling (contract in core/trainer.h).
#include "core/trainer.h"

#include <omp.h>
#include <sys/resource.h>

#include <array>
#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/buffer.h"
#include "core/chain.h"
#include "core/checkpoint.h"
#include "core/data_parallel.h"
#include "core/data.h"
#include "core/error.h"
#include "core/fault.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/init_leaf.h"
#include "core/memory_plan.h"
#include "core/merkle.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/ranks.h"
#include "core/sharded_state.h"
#include "core/run_lock.h"
#include "core/safetensors.h"
#include "core/seed_registry.h"
#include "kernels/device.h"
#include "kernels/matmul.h"
#include "core/signals.h"
#include "core/tensorboard.h"
#include "tokenizer/bpe.h"
#include "tokenizer/utf8.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ssiat {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string format_duration(double s) {
  const auto t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(t / 3600), static_cast<long long>(t / 60 % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(t / 60), static_cast<long long>(t % 60));
  return buf;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

json build_info() {
  return {{"framework", "ssiat"},
          {"version", SSIAT_VERSION},
          {"git_commit", SSIAT_GIT_COMMIT},
          {"compiler", __VERSION__},
          {"build_flags", SSIAT_BUILD_FLAGS},  // as CMake configured them
          {"cuda_build", SSIAT_CUDA_BUILD},    // nvcc, architectures, NCCL headers
          {"threads", omp_get_max_threads()},
          // The OpenBLAS kernels in use (hardware class: bits depend on it, never on threads).
          {"blas_core", kernels::cpu::blas_core_name()},
          {"cuda", kernels::cuda::compiled() ? kernels::cuda::runtime_versions() : "not built"}};
}

ExecConfig exec_config(const TrainConfig& tc) {
  return ExecConfig{tc.device, 0, tc.effective_precision(), tc.recompute};
}

// Model FLOPs utilisation: achieved FLOP/s over the device's dense bf16 peak (CUDA; 0 when the
// peak is unknown, e.g. on the CPU).
double mfu(const Backend& be, double flops_per_s) {
  if (be.kind() != DeviceKind::kCuda) return 0.0;
  const double peak = kernels::cuda::peak_bf16_tflops(be.device().ordinal) * 1e12;
  return peak > 0 ? flops_per_s / peak : 0.0;
}

// Init commitment (docs/provenance.md): the RFC 6962 Merkle root of the tensors' init-leaf
// hashes in views() order (core/init_leaf.h). It is the parent of the first checkpoint.
// The per-view step counts a checkpoint carries (meta.extra.steps_changed, by tensor name), or
// none for a checkpoint written before they were recorded.
std::optional<std::vector<int64_t>> steps_changed_of(const CheckpointMeta& meta, const std::vector<ParamView>& views) {
  if (!meta.extra.contains("steps_changed")) return std::nullopt;
  const json& j = meta.extra.at("steps_changed");
  std::vector<int64_t> out;
  for (const ParamView& v : views) {
    if (!j.is_object() || !j.contains(v.name) || !j.at(v.name).is_number_integer() || j.at(v.name).get<int64_t>() < 0 ||
        j.at(v.name).get<int64_t>() > meta.step)
      throw IntegrityError("checkpoint of step " + std::to_string(meta.step) + ": steps_changed." + v.name +
                           " is missing or not a count in [0, " + std::to_string(meta.step) + "]");
    out.push_back(j.at(v.name).get<int64_t>());
  }
  return out;
}

std::string init_root(const std::vector<InitHash>& hashes) {
  std::vector<Digest> leaves;
  leaves.reserve(hashes.size());
  for (const auto& h : hashes) leaves.push_back(*digest_from_hex(h.leaf));
  return digest_hex(merkle_root(leaves));
}

// recipe init.from: the model's tensors found in a weight file (same name and logical shape),
// and the file as opened ({"path", "sha256"}: the file's SHA-256, or a checkpoint's manifest
// digest). Each is marked loaded:<digest> in the seed log.
InitOverrides load_init_file(const std::string& from, const Llama<float>& model, json& opened) {
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> found;
  std::string digest;
  if (fs::is_directory(from)) {
    const auto latest = latest_checkpoint(from);
    if (!latest) throw ConfigError("init.from = \"" + from + "\": no checkpoint in that run directory");
    LoadedCheckpoint ck = read_checkpoint(*latest);
    digest = ck.digest;
    for (auto& [key, t] : ck.tensors)
      if (key.rfind("param/", 0) == 0) found[key.substr(6)] = {ck.shapes.at(key), std::move(t)};
  } else {
    digest = sha256_file(from);
    for (auto& [name, t] : read_safetensors(from)) found[name] = {t.shape, std::move(t.data)};
  }
  InitOverrides out;
  for (const auto& v : model.views()) {
    auto it = found.find(v.name);
    if (it != found.end() && it->second.first == v.shape) out[v.name] = {std::move(it->second.second), "loaded:" + digest};
  }
  if (out.empty()) throw ConfigError("init.from = \"" + from + "\": holds no tensor of the model (name and shape)");
  opened = {{"path", from}, {"sha256", digest}, {"tensors", out.size()}, {"use", "init.from"}};
  return out;
}

// ---- where a run starts (trainer.h "Resume") ----------------------------------------------

// Where this invocation starts: decided, and every refusal thrown, before anything is written.
struct StartPoint {
  ResumePoint found;               // what find_resume_point saw (resuming a run only)
  std::optional<uint64_t> seed;    // the run's recorded master seed, to be reused
  bool continues_run = false;      // --resume on a directory that holds a run: a later segment
  std::string note;                // one line for stderr, "" when there is nothing to say
  const LoadedCheckpoint* checkpoint() const { return found.checkpoint ? &*found.checkpoint : nullptr; }
};

// A run directory "holds a run" once a segment has written anything of its own into it.
bool holds_run(const fs::path& run) {
  for (const char* f : {"checkpoints", "recipe.toml", "seeds.jsonl", "history.jsonl"})
    if (fs::exists(run / f)) return true;
  return false;
}

std::string mutable_keys_list() {
  std::string s;
  for (const auto k : kResumeMutableKeys) s += (s.empty() ? "" : ", ") + std::string(k);
  return s;
}

// Refuses `recipe` if it differs from `recorded` (canonical TOML from `where`) in a key outside
// kResumeMutableKeys; `seed` is checked against the master seed instead. `recorded` is first read
// as a recipe and written back canonically, so a key an older build did not write yet (e.g.
// train.device) compares as its default; a text that does not load is compared as it is. The
// layout keys (kResumeLayoutKeys) may change when the recorded recipe loads and the global batch
// micro_batch × grad_accum × dp stays the same.
void check_resumed_recipe(const Recipe& recipe, const std::string& recorded, const fs::path& run,
                          const std::string& where) {
  std::vector<std::string_view> ignore(std::begin(kResumeMutableKeys), std::end(kResumeMutableKeys));
  ignore.push_back("seed");
  std::string canonical = recorded;
  std::optional<Recipe> rec;
  try {
    rec = parse_recipe(recorded, where);
    canonical = recipe_to_toml(*rec);
    ignore.insert(ignore.end(), std::begin(kResumeLayoutKeys), std::end(kResumeLayoutKeys));
  } catch (const ConfigError&) {
    // compared as recorded: the first key that differs is named below
  }
  std::optional<RecipeDifference> d;
  try {
    d = first_recipe_difference(recipe_to_toml(recipe), canonical, ignore);
  } catch (const ConfigError& e) {
    throw ConfigError(run.string() + ": --resume: the recipe recorded in " + where + " is unreadable: " + e.what());
  }
  if (d)
    throw ConfigError(run.string() + ": --resume: recipe key " + d->key + " is " + d->ours + " here but " + d->theirs +
                      " in " + where + " (only " + mutable_keys_list() +
                      " may change, and the layout keys parallel.dp, parallel.tp, parallel.zero1, train.grad_accum, "
                      "train.micro_batch while the global batch stays the same)");
  if (!rec) return;
  auto global = [](const Recipe& r) { return r.train.micro_batch * r.train.grad_accum * r.parallel.dp; };
  auto spell = [&](const Recipe& r) {
    return std::to_string(r.train.micro_batch) + " × " + std::to_string(r.train.grad_accum) + " × " +
           std::to_string(r.parallel.dp) + " = " + std::to_string(global(r));
  };
  if (global(recipe) != global(*rec))
    throw ConfigError(run.string() + ": --resume: the global batch train.micro_batch × train.grad_accum × parallel.dp is " +
                      spell(recipe) + " here but " + spell(*rec) + " in " + where +
                      "; on another parallel.dp, set train.grad_accum (or train.micro_batch) so that the product stays the same");
}

// The master seed recorded in <run>/seeds.jsonl (its "master" record), nullopt if the file is
// absent; IoError if it is there but holds no master seed.
std::optional<uint64_t> recorded_seed(const fs::path& run) {
  const fs::path path = run / "seeds.jsonl";
  if (!fs::exists(path)) return std::nullopt;
  std::istringstream in(read_whole_file(path));
  std::string line;
  for (int64_t n = 1; std::getline(in, line); n++) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("type", "") == "master" && j.contains("seed") &&
        j["seed"].is_number_unsigned())
      return j["seed"].get<uint64_t>();
  }
  throw IoError(path.string() + ": no master seed record (a line {\"type\":\"master\",\"seed\":N})");
}

// "; 2 other checkpoints are torn (step_00000007: REASON)" for rejected (torn) directories
// beyond the one `latest` named.
std::string other_rejected(const ResumePoint& rp, bool latest_named_one) {
  const size_t skip = latest_named_one ? 1 : 0;
  if (rp.rejected.size() <= skip) return "";
  const auto& first = rp.rejected[skip];
  const size_t n = rp.rejected.size() - skip;
  return "; " + std::to_string(n) + (n == 1 ? " other checkpoint is" : " other checkpoints are") + " torn (" +
         first.dir.filename().string() + ": " + first.reason + ")";
}

StartPoint find_start(const Recipe& recipe, const TrainOptions& opt) {
  const fs::path& run = opt.run_dir;
  StartPoint sp;
  if (!opt.resume) {
    if (fs::exists(run / "checkpoints"))
      throw ConfigError(run.string() + ": already holds a run; pass --resume or choose another --run-dir");
    return sp;
  }
  if (!holds_run(run)) {
    sp.note = run.string() + ": nothing to resume (no checkpoints, recipe.toml or seed log); starting a new run";
    return sp;
  }
  sp.continues_run = true;
  sp.found = find_resume_point(run);
  const bool latest_named_bad = sp.found.latest_rejected;
  const std::string set_aside = sp.found.rejected.empty() ? "" : " (set aside as checkpoints/rejected-step_*)";
  if (const LoadedCheckpoint* ck = sp.checkpoint()) {
    const std::string name = sp.found.dir.filename().string();
    if (ck->meta.recipe.empty())
      throw ConfigError(sp.found.dir.string() + ": checkpoint records no recipe, so --resume cannot check this one");
    check_resumed_recipe(recipe, ck->meta.recipe, run, "checkpoint " + name);
    const int64_t per_step = recipe.train.micro_batch * recipe.train.grad_accum * recipe.parallel.dp;
    if (ck->meta.samples_seen != ck->meta.step * per_step)
      throw ConfigError(sp.found.dir.string() + ": samples_seen = " + std::to_string(ck->meta.samples_seen) +
                        " is not step × micro_batch × grad_accum × dp = " + std::to_string(ck->meta.step * per_step));
    sp.seed = ck->meta.master_seed;
    if (!sp.found.latest_ok)
      sp.note = run.string() + ": checkpoints/latest " + sp.found.latest_problem +
                other_rejected(sp.found, latest_named_bad) + set_aside + "; resuming from " + name;
  } else {
    // No complete checkpoint: the run restarts from step 0 with its recorded recipe and seed.
    if (fs::exists(run / "recipe.toml"))
      check_resumed_recipe(recipe, read_whole_file(run / "recipe.toml"), run, (run / "recipe.toml").string());
    sp.seed = recorded_seed(run);
    if (!sp.seed && recipe.seed) sp.seed = recipe.seed;
    sp.note = run.string() + ": checkpoints/latest " + sp.found.latest_problem +
              other_rejected(sp.found, latest_named_bad) + set_aside + "; no complete checkpoint, restarting from step 0 " +
              (sp.seed ? "with seed " + std::to_string(*sp.seed) : std::string("with a new seed from the OS"));
  }
  if (sp.seed && recipe.seed && *recipe.seed != *sp.seed)
    throw ConfigError(run.string() + ": --resume: seed = " + std::to_string(*recipe.seed) +
                      " differs from the run's master seed " + std::to_string(*sp.seed) +
                      (sp.checkpoint() ? " in checkpoint " + sp.found.dir.filename().string() : " in seeds.jsonl"));
  return sp;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// recipe.toml and run.json describe the run's first segment and are written once; every
// segment (the first included) appends one line to history.jsonl.
// Returns the segment's number. `opened`: the weight files this segment opened ({"path",
// "sha256", "use"}: the checkpoint it resumed from, an init.from file).
int64_t record_segment(const fs::path& run, const Recipe& recipe, const StartPoint& sp, int64_t start_step,
                       const json& opened) {
  const std::string toml = recipe_to_toml(recipe);
  const fs::path history = run / "history.jsonl";
  std::string previous;
  int64_t segment = 0;
  if (sp.continues_run && fs::exists(history)) {
    previous = read_whole_file(history);
    if (!previous.empty() && previous.back() != '\n') previous += "\n";
    segment = std::count(previous.begin(), previous.end(), '\n');
  } else if (sp.continues_run) {
    segment = 1;  // a run from before history.jsonl: its first segment is recipe.toml + run.json
  }
  if (!sp.continues_run || !fs::exists(run / "recipe.toml")) write_file_atomic(run / "recipe.toml", toml);
  if (!sp.continues_run || !fs::exists(run / "run.json")) write_file_atomic(run / "run.json", build_info().dump(2) + "\n");
  json line = {{"segment", segment},
               {"start_step", start_step},
               {"resumed_from", sp.checkpoint() ? json(sp.found.dir.filename().string()) : json(nullptr)},
               {"recipe", toml},
               {"recipe_sha256", sha256_hex(toml)},
               {"build", build_info()},
               {"time", utc_now()}};
  if (!sp.note.empty()) line["note"] = sp.note;
  line["tensor_files"] = opened;
  write_file_atomic(history, previous + line.dump() + "\n");
  return segment;
}

// Mean loss over eval_batches micro-batches of the validation set (always the same windows);
// with dp ranks, rank r evaluates batches r, r + dp, ... and the f64 sums are added in rank order.
double evaluate(Llama<float>& model, const DataLoader& val, const TrainConfig& tc, distributed::Communicator& dp) {
  const int64_t B = tc.micro_batch, T = tc.seq_len;
  std::vector<int32_t> x(B * T), y(B * T);
  const int64_t batches = std::min(tc.eval_batches, std::max<int64_t>(1, val.num_windows() / B));
  double sum = 0;
  for (int64_t i = dp.rank(); i < batches; i += dp.size()) {
    val.fill(x.data(), y.data(), i * B, B);
    sum += model.forward(x.data(), y.data(), B, T, Pass::kEval);
  }
  dp.allreduce_sum(&sum, 1, distributed::DType::kF64);
  return sum / static_cast<double>(batches);
}

// Temperature-0.8 sampling of n_tokens after the prompt; the draws come from the registry's
// stream "sample" (counter = token index).
// Under tensor parallelism every rank of the tp group runs it (the forward is collective): each
// holds a vocabulary slice of the last row's logits, all-gathered over `tp` (host buffers) into
// the whole row, so every rank draws the same tokens.
std::string generate(Llama<float>& model, const tokenizer::Tokenizer& tok, const std::string& prompt,
                     int64_t n_tokens, PhiloxKey key, distributed::Communicator& tp) {
  std::vector<int32_t> ids = tok.encode(prompt);
  if (ids.empty()) ids.push_back(tok.eos_id());
  const int64_t maxT = model.config().max_seq_len, V = model.config().vocab_size, Vl = model.local_vocab();
  std::vector<double> p(V);
  std::vector<float> logits(V);
  for (int64_t i = 0; i < n_tokens; i++) {
    const int64_t start = std::max<int64_t>(0, static_cast<int64_t>(ids.size()) - maxT);
    const int64_t T = static_cast<int64_t>(ids.size()) - start;
    model.forward(ids.data() + start, nullptr, 1, T, Pass::kLogits);
    model.copy_logits_to_host(logits.data() + model.vocab_start(), T - 1, 1);
    if (Vl != V)
      tp.all_gather(logits.data() + model.vocab_start(), logits.data(), static_cast<size_t>(V), distributed::DType::kF32);
    double mx = -1e300, sum = 0;
    for (int64_t v = 0; v < V; v++) mx = std::max(mx, static_cast<double>(logits[v]));
    for (int64_t v = 0; v < V; v++) sum += (p[v] = std::exp((logits[v] - mx) / 0.8));
    const PhiloxCounter r = philox4x32_10({static_cast<uint32_t>(i), 0, 0, 0}, key);
    double u = uniform01_from_bits(r[0], r[1]) * sum, acc = 0;
    int32_t next = static_cast<int32_t>(V - 1);
    for (int64_t v = 0; v < V; v++) {
      acc += p[v];
      if (u < acc) {
        next = static_cast<int32_t>(v);
        break;
      }
    }
    ids.push_back(next);
  }
  // Documents end with <eos>: print each as its own line.
  std::string text;
  size_t begin = 0;
  for (size_t i = 0; i <= ids.size(); i++) {
    if (i == ids.size() || ids[i] == tok.eos_id()) {
      if (i > begin) text += tok.decode(std::span<const int32_t>(ids.data() + begin, i - begin));
      if (i < ids.size()) text += "\n";
      begin = i + 1;
    }
  }
  // The last character may be cut off mid-sequence by the token budget: drop its bytes.
  if (auto bad = tokenizer::find_invalid_utf8(text); bad && *bad + 4 > text.size()) text.resize(*bad);
  return text;
}

// Keeps the lines of metrics.jsonl whose step is <= last_step (after a resume).
void truncate_metrics(const fs::path& path, int64_t last_step) {
  if (!fs::exists(path)) return;
  std::istringstream in(read_whole_file(path));  // checked reads: a read error is not an early EOF
  std::ostringstream kept;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t{0}) <= last_step) kept << line << "\n";
  }
  write_file_atomic(path, kept.str());
}

}  // namespace

// `ssiat bench train-step` times one process.
void refuse_parallel_layout(const Recipe& recipe) {
  if (recipe.parallel.dp * recipe.parallel.tp != 1)
    throw ConfigError(recipe.path + ": parallel.dp * parallel.tp = " + std::to_string(recipe.parallel.dp) + " * " +
                      std::to_string(recipe.parallel.tp) +
                      ": the step benchmark runs one process; use parallel.dp = parallel.tp = 1");
}

TrainResult train(const Recipe& recipe, const TrainOptions& opt) {
  recipe.validate();
  if (recipe.provenance.sovereign && !recipe.init.from.empty())
    throw ConfigError(recipe.path + ": provenance.sovereign = true refuses init.from = \"" + recipe.init.from +
                      "\": a sovereign run opens no weight file outside its own checkpoint chain");
  if (!recipe.init.from.empty() && recipe.parallel.tp != 1)
    throw ConfigError(recipe.path + ": init.from with parallel.tp = " + std::to_string(recipe.parallel.tp) +
                      " is not supported; initialise on one tp rank");
  // Launched by mpirun/srun or with dp × tp > 1: joins MPI and checks that every rank runs the
  // same recipe and build (core/ranks.h). Collective calls below are made by every rank in the
  // same order; only global rank 0 touches the run directory.
  Ranks ranks = join_ranks(recipe, std::string(opt.resume ? "--resume " : "") + "--stop-after " +
                                       std::to_string(opt.stop_after));
  const bool root = ranks.root();
  distributed::Communicator& world = *ranks.world;
  // Before any allocation: this rank's plan, and its node's other ranks'.
  require_memory(recipe, opt.resume ? PlanFor::kResume : PlanFor::kTrain, RankPlace{root, ranks.ranks_on_node});
  const TrainConfig& tc = recipe.train;
  const fs::path run = opt.run_dir;
  SSIAT_CHECK(!run.empty()) << "--run-dir is required";
  // One writer per run directory: an existing one is locked before anything in it is read; a
  // new one is created and locked just before the first write, so bad inputs still write nothing.
  std::optional<RunLock> lock;
  StartPoint start;
  if (root) {
    if (fs::exists(run)) lock.emplace(run);
    start = find_start(recipe, opt);  // refuses a changed recipe; writes nothing
  }
  const LoadedCheckpoint* ck = start.checkpoint();  // rank 0 only

  // Inputs are opened before anything is written, so a bad path writes nothing.
  auto tok = open_tokenizer(recipe.tokenizer.kind, recipe.tokenizer.path);
  if (tok->vocab_size() > recipe.model.vocab_size)
    throw ConfigError(recipe.path + ": model.vocab_size = " + std::to_string(recipe.model.vocab_size) + " is smaller than the " +
                      tok->name() + " tokenizer's " + std::to_string(tok->vocab_size()) + " pieces");
  // The master seed is rank 0's (recorded, the recipe's, or drawn from the OS), sent to all.
  SeedRegistry reg = start.seed ? SeedRegistry(*start.seed, recipe.seed ? SeedSource::kRecipe : SeedSource::kOs)
                                : (root ? SeedRegistry::from_optional(recipe.seed) : SeedRegistry(0, SeedSource::kRecipe));
  {
    uint64_t seed = reg.master_seed();
    world.broadcast(&seed, 1, distributed::DType::kI64, 0);
    if (!root) reg = SeedRegistry(seed, recipe.seed ? SeedSource::kRecipe : SeedSource::kOs);
  }
  const PhiloxKey order_key = reg.stream_key("data/order");
  const PhiloxKey val_key = reg.stream_key("data/val_order");
  const PhiloxKey sample_key = reg.stream_key("sample");
  // Rank 0 hashes the shards against their manifest (once per job, not per rank); every rank
  // maps them, compares manifest digests with rank 0's below, and range-checks what it reads.
  DataLoader train_data(recipe.data.train, tc.seq_len, order_key, {.verify = root});
  std::optional<DataLoader> val_data;
  if (!recipe.data.val.empty()) val_data.emplace(recipe.data.val, tc.seq_len, val_key, LoadOptions{.verify = root});
  for (const auto* d : {&train_data, val_data ? &*val_data : nullptr})
    if (d && d->tokenizer_digest() != tok->digest())
      throw ConfigError(recipe.path + ": data was prepared with tokenizer " + d->tokenizer_digest().substr(0, 12) +
                        "…, but the recipe's tokenizer (" + tok->name() + ") is " + tok->digest().substr(0, 12) +
                        "…; prepare the data with the same tokenizer");
  NamedDigests data_digests = {{"data manifest of " + recipe.data.train, train_data.manifest_sha256()}};
  if (val_data) data_digests.push_back({"data manifest of " + recipe.data.val, val_data->manifest_sha256()});
  data_digests.push_back({"tokenizer", tok->digest()});
  check_same_data(ranks, data_digests);

  ExecConfig exec = exec_config(tc);
  if (exec.device == DeviceKind::kCuda) {
    // One rank per GPU: the node-local rank's device, or the only one a rank sees (a scheduler
    // that binds one GPU per task).
    const int visible = kernels::cuda::device_count();
    exec.ordinal = visible == 1 ? 0 : ranks.local_rank;
    if (visible > 1 && ranks.local_rank >= visible)
      throw ConfigError("rank " + std::to_string(ranks.rank) + ": node-local rank " + std::to_string(ranks.local_rank) +
                        " but only " + std::to_string(visible) + " CUDA devices are visible; launch one rank per GPU");
  }
  Llama<float> model(recipe.model, exec, TensorParallel{ranks.tp.get(), ranks.tp->size(), ranks.tp->rank()});
  make_device_comms(ranks, model.backend());
  if (ranks.tp_device) model.bind_tp_comm(ranks.tp_device.get());
  DataParallel dpar(ranks.dp_grads(), *ranks.dp, model.num_params(), model.views(), recipe.parallel.zero1);
  dpar.set_tensor_parallel(*ranks.tp, model.views());
  AdamW<float> adamw(recipe.optim, dpar.state_size(), model.backend());
  HostState state(model, adamw, ranks.dp->rank() == 0, recipe.parallel.zero1 || ranks.dp->rank() == 0);
  // Every activation buffer now, at its largest (sampling included): none is allocated later.
  model.ensure_capacity(tc.micro_batch, sequence_capacity(recipe, PlanFor::kTrain));
  // Always: the seed log records the init even on resume.
  json opened = json::array();  // weight files this segment opens (history.jsonl)
  InitOverrides loaded;
  if (!recipe.init.from.empty()) {
    json f;
    loaded = load_init_file(recipe.init.from, model, f);
    opened.push_back(f);
  }
  const std::vector<InitHash> init_hashes = model.init_weights(reg, loaded.empty() ? nullptr : &loaded);
  const std::string init_digest = init_root(init_hashes);
  reg.record({{"type", "init_commitment"},
              {"root", init_digest},
              {"scheme", std::string(kInitRootScheme)},
              {"leaves", init_hashes.size()}});
  nlohmann::json tok_rec = {{"type", "tokenizer"}, {"name", tok->name()}, {"digest", tok->digest()}, {"vocab_size", tok->vocab_size()}};
  if (const auto* bpe = dynamic_cast<const tokenizer::BpeTokenizer*>(tok.get())) {
    tok_rec["path"] = recipe.tokenizer.path;
    // The corpus the vocabulary was learned from, and how it was sampled.
    for (const char* k : {"sources", "sample", "trainer"})
      if (bpe->provenance().contains(k)) tok_rec[k] = bpe->provenance().at(k);
  }
  reg.record(tok_rec);
  reg.record({{"type", "data"},
              {"train_manifest_sha256", train_data.manifest_sha256()},
              {"val_manifest_sha256", val_data ? val_data->manifest_sha256() : ""}});

  // Where training continues: rank 0's checkpoint, its tensors broadcast to every rank.
  int64_t resume_at[3] = {ck ? 1 : 0, ck ? ck->meta.step : 0, ck ? ck->meta.samples_seen : 0};
  world.broadcast(resume_at, 3, distributed::DType::kI64, 0);
  int64_t step = resume_at[1], samples = resume_at[2];
  std::string parent = ck ? ck->digest : init_digest;
  if (resume_at[0]) restore_tensors(ck, model, state, dpar, world, start.found.dir);

  std::ofstream metrics;
  std::optional<EventWriter> events;  // rank 0: <run>/tb/, the metrics as TensorBoard scalars
  const fs::path metrics_path = run / "metrics.jsonl";
  int64_t segment = 0;
  std::vector<ChainRecord> chain;  // rank 0: chain.jsonl's records
  std::string chain_parent;
  if (root && start.continues_run) chain = read_chain(run);  // before anything is written: a bad file refuses
  if (root && ck) {
    opened.push_back({{"path", start.found.dir.string()}, {"sha256", ck->digest}, {"use", "resume"}});
    if (recipe.provenance.sovereign &&
        std::none_of(chain.begin(), chain.end(), [&](const ChainRecord& r) { return r.manifest_sha256 == ck->digest; }))
      throw ConfigError(start.found.dir.string() + ": provenance.sovereign = true: this checkpoint (manifest " +
                        ck->digest.substr(0, 16) + "…) is not a record of the run's chain.jsonl; a sovereign run resumes only from its own checkpoints");
  }
  if (root) {
    if (!lock) {
      lock.emplace(run);
      if (fs::exists(run / "checkpoints"))  // another trainer created it since we looked
        throw ConfigError(run.string() + ": already holds a run; pass --resume or choose another --run-dir");
    }
    if (!start.note.empty()) std::fprintf(stderr, "ssiat: %s\n", start.note.c_str());
    if (start.continues_run) set_aside_rejected(run, start.found);
    fs::create_directories(run);
    segment = record_segment(run, recipe, start, step, opened);
    reg.write(run / "seeds.jsonl");
    // The chain (core/chain.h): kept up to the resumed checkpoint; a fresh run starts it empty.
    if (ck) {
      std::erase_if(chain, [&](const ChainRecord& r) { return r.step > step; });
      if (chain.empty() || chain.back().step != step)  // a run from before chain.jsonl: from here on
        chain.clear(), chain_parent = ck->digest;
      else
        chain_parent = chain_tip(chain, init_digest);
    } else {
      chain.clear();
      chain_parent = init_digest;
    }
    write_chain(run, chain);
    if (start.continues_run) truncate_metrics(metrics_path, step);
    else write_file_atomic(metrics_path, "");
    metrics.open(metrics_path, std::ios::app);
    events.emplace(run / "tb", step + 1);  // a new file; START at step+1 drops stale steps in the viewer
  }

  const int64_t B = tc.micro_batch, T = tc.seq_len, accum = tc.grad_accum;
  const int64_t dp = ranks.dp->size(), dp_rank = ranks.dp->rank();
  const int64_t tokens_per_step = B * T * accum * dp;
  const double flops_per_step = model.flops_per_token(T) * static_cast<double>(tokens_per_step);
  const int64_t end = opt.stop_after > 0 ? std::min(tc.steps, step + opt.stop_after) : tc.steps;
  const float loss_scale = 1.0f / static_cast<float>(accum * dp);
  std::vector<int32_t> x(B * T), y(B * T);
  TrainResult result;
  result.step = step;
  if (ck) result.loss = ck->meta.extra.value("loss", 0.0);
  // Per view, the number of optimizer steps that changed its values (docs/provenance.md
  // "Evidence"), kept by rank 0 and carried by each checkpoint; a checkpoint written before this
  // was recorded leaves it untracked (the evidence then has no step counts).
  const std::vector<ParamView>& views = model.views();
  std::vector<int32_t> changed(views.size());
  std::optional<std::vector<int64_t>> steps_changed;
  if (root) steps_changed = ck ? steps_changed_of(ck->meta, views) : std::optional(std::vector<int64_t>(views.size(), 0));
  const auto t_start = Clock::now();
  double step_time_avg = 0;

  Assembler assembler(state, dpar, ranks);
  auto save = [&](int64_t at) {
    if (!root) {
      serve_checkpoint_gathers(model, state, assembler);
      return;
    }
    CheckpointMeta meta;
    meta.step = at;
    meta.samples_seen = samples;
    meta.master_seed = reg.master_seed();
    meta.parent = parent;
    meta.recipe = recipe_to_toml(recipe);
    meta.extra = {{"loss", result.loss}};  // the manifest records recipe_sha256 itself
    if (steps_changed) {
      json counts = json::object();
      for (size_t v = 0; v < views.size(); v++) counts[views[v].name] = (*steps_changed)[v];
      meta.extra["steps_changed"] = counts;
    }
    StateRoots roots;
    parent = write_checkpoint(run, meta, checkpoint_tensors(model, state, assembler), {}, &roots);
    result.checkpoint = latest_checkpoint(run).value_or(fs::path());
    ChainRecord rec;
    rec.step = at;
    rec.samples_seen = samples;
    rec.checkpoint = result.checkpoint.filename().string();
    rec.manifest_sha256 = parent;
    rec.weights_root = roots.weights;
    rec.optimizer_root = roots.optimizer;
    rec.recipe_sha256 = sha256_hex(meta.recipe);
    rec.git_commit = SSIAT_GIT_COMMIT;
    rec.executable_sha256 = executable_sha256();
    rec.segment = segment;
    rec.parent = chain_parent;
    chain.push_back(rec);
    write_chain(run, chain);
    chain_parent = chain_tip(chain, init_digest);
    if (recipe.checkpoint.keep > 0) prune_checkpoints(run, recipe.checkpoint.keep);
  };
  // A stop signal on any rank stops every rank after the same step (the largest number wins).
  // The same all-reduce ORs the ranks' change flags (each rank updated only its shards).
  auto stop_signal = [&](const StopSignals& s, std::vector<int32_t>& flags) {
    int32_t sig = s.received();
    if (world.size() == 1) return static_cast<int>(sig);
    std::vector<int32_t> all(64 + flags.size(), 0);
    if (sig > 0 && sig < 64) all[sig] = 1;
    std::copy(flags.begin(), flags.end(), all.begin() + 64);
    world.allreduce_sum(all.data(), all.size(), distributed::DType::kI32);
    for (size_t v = 0; v < flags.size(); v++) flags[v] = all[64 + v] > 0;
    for (int k = 63; k > 0; k--)
      if (all[k]) return k;
    return 0;
  };

  // Bytes this rank handed its communicators for other ranks during a step (distributed/comm.h
  // counts them; the benchmark compares them with the analytic minimum).
  std::vector<distributed::Communicator*> comms;
  for (auto* c : {ranks.world.get(), ranks.dp.get(), ranks.tp.get(), ranks.dp_device.get(), ranks.tp_device.get()})
    if (c) comms.push_back(c);
  auto step_comm_bytes = [&] {
    uint64_t b = 0;
    for (const auto* c : comms) b += c->stats().total_bytes();
    return b;
  };

  // SIGTERM/SIGINT/SIGUSR1 from here on: finish the step, checkpoint, return (core/signals.h).
  std::optional<StopSignals> stop;
  stop.emplace();
  while (step < end) {
    const auto t0 = Clock::now();
    for (auto* c : comms) c->reset_stats();
    model.zero_grads();
    double loss = 0;
    // Micro-batch a of dp rank r reads global samples samples + (a·dp + r)·B (core/data.h).
    for (int64_t a = 0; a < accum; a++) {
      train_data.fill(x.data(), y.data(), samples + (a * dp + dp_rank) * B, B);
      loss += model.forward(x.data(), y.data(), B, T, Pass::kTrain, loss_scale);
      model.backward();
    }
    samples += B * accum * dp;
    fault_point("step.after_backward");
    ranks.dp->allreduce_sum(&loss, 1, distributed::DType::kF64);
    loss /= static_cast<double>(accum * dp);
    SSIAT_CHECK(std::isfinite(loss)) << "loss is " << loss << " at step " << step + 1;
    dpar.reduce_grads(model.grads());
    const double gnorm = dpar.grad_norm(model.backend(), model.grads());
    dpar.clip(model.backend(), model.grads(), gnorm, recipe.optim.grad_clip);
    const double lr = lr_at(recipe.optim, recipe.schedule, tc.steps, step);
    adamw.update(model.params(), model.grads(), dpar.segments(), lr, step + 1, model.params_lp(), &changed);
    dpar.gather_params(model.params());
    if (dpar.zero1() && dp > 1) model.refresh_working_copy();
    step++;
    const int sig = stop_signal(*stop, changed);
    if (steps_changed)
      for (size_t v = 0; v < views.size(); v++) (*steps_changed)[v] += changed[v] != 0;
    result.step = step;
    result.loss = loss;

    const double dt = seconds_since(t0);
    step_time_avg = step_time_avg == 0 ? dt : 0.9 * step_time_avg + 0.1 * dt;
    json m = {{"step", step},
              {"loss", loss},
              {"lr", lr},
              {"grad_norm", gnorm},
              {"tokens_per_s", static_cast<double>(tokens_per_step) / dt},
              {"comm_bytes", step_comm_bytes()},
              {"optimizer_state_mb", static_cast<double>(2 * adamw.state_size() * sizeof(float)) / 1e6},
              {"peak_rss_mb", peak_rss_mb()},
              {"gflops", flops_per_step / dt / 1e9},
              {"mfu", mfu(model.backend(), flops_per_step / dt / static_cast<double>(world.size()))},
              {"elapsed_s", seconds_since(t_start)}};
    const bool last = step == tc.steps;
    if (val_data && ((tc.eval_interval > 0 && step % tc.eval_interval == 0) || last)) {
      result.val_loss = evaluate(model, *val_data, tc, *ranks.dp);
      m["val_loss"] = *result.val_loss;
    }
    if (root) {
      errno = 0;
      metrics << m.dump() << "\n" << std::flush;
      if (!metrics)  // e.g. a full disk: never drop metrics silently
        throw IoError(metrics_path.string() + ": write failed at step " + std::to_string(step) +
                      (errno ? ": " + errno_message(errno) : std::string()));
      write_metrics_events(*events, m, unix_wall_time());
    }
    if (root && opt.progress && (step % tc.log_interval == 0 || step == end)) {
      const double util = m["mfu"].get<double>();
      char rate[64];
      if (util > 0) std::snprintf(rate, sizeof rate, "MFU %.1f%%", 100.0 * util);
      else std::snprintf(rate, sizeof rate, "%.1f GFLOP/s", flops_per_step / dt / 1e9);
      std::fprintf(stderr, "step %lld/%lld | loss %.4f | lr %.2e | gnorm %.3f | %.0f tok/s | %s | ETA %s%s\n",
                   static_cast<long long>(step), static_cast<long long>(tc.steps), loss, lr, gnorm,
                   static_cast<double>(tokens_per_step) / dt, rate,
                   format_duration(step_time_avg * static_cast<double>(end - step)).c_str(),
                   m.contains("val_loss") ? (" | val " + std::to_string(m["val_loss"].get<double>())).c_str() : "");
    }
    const bool saved = (recipe.checkpoint.interval > 0 && step % recipe.checkpoint.interval == 0) || step == end;
    if (saved) save(step);
    if (sig) {
      if (!saved) save(step);
      result.interrupted_by_signal = sig;
      world.barrier();  // rank 0's checkpoint is complete before any rank returns
      return result;  // no sample: the run stops here and resumes later
    }
  }
  stop.reset();  // a signal from here on ends the process at once (every checkpoint is written)

  if (ranks.dp->rank() == 0 && step == tc.steps && tc.sample_tokens > 0) {  // the tp group of rank 0
    result.sample = generate(model, *tok, tc.sample_prompt, tc.sample_tokens, sample_key, *ranks.tp);
    if (root) write_file_atomic(run / "sample.txt", result.sample + "\n");
  }
  world.barrier();
  return result;
}

BenchResult bench_train_step(const Recipe& recipe, int64_t steps, int64_t warmup) {
  refuse_multi_rank_launch("bench train-step");
  recipe.model.validate();
  recipe.train.validate();
  refuse_parallel_layout(recipe);
  require_memory(recipe, PlanFor::kBench);
  const TrainConfig& tc = recipe.train;
  SeedRegistry reg = SeedRegistry::from_optional(recipe.seed.value_or(0));
  Llama<float> model(recipe.model, exec_config(tc));
  AdamW<float> adamw(recipe.optim, model.num_params(), model.backend());
  model.init_weights(reg);
  const int64_t B = tc.micro_batch, T = tc.seq_len, V = recipe.model.vocab_size;
  std::vector<int32_t> x(B * T), y(B * T);
  const PhiloxKey key = reg.stream_key("bench/tokens");
  for (int64_t i = 0; i < B * T; i++) {
    const PhiloxCounter r = philox4x32_10({static_cast<uint32_t>(i), 0, 0, 0}, key);
    x[i] = static_cast<int32_t>(r[0] % static_cast<uint32_t>(V));
    y[i] = static_cast<int32_t>(r[1] % static_cast<uint32_t>(V));
  }
  auto one_step = [&](int64_t s) {
    model.zero_grads();
    model.forward(x.data(), y.data(), B, T, Pass::kTrain);
    model.backward();
    adamw.clip(model.grads(), model.num_params());
    adamw.update(model.params(), model.grads(), model.views(), recipe.optim.lr, s + 1, model.params_lp());
  };
  for (int64_t s = 0; s < warmup; s++) one_step(s);
  model.backend().synchronize();
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < steps; s++) one_step(warmup + s);
  model.backend().synchronize();
  const double dt = seconds_since(t0);
  BenchResult r;
  r.step_ms = dt / static_cast<double>(std::max<int64_t>(1, steps)) * 1e3;
  r.tokens_per_s = static_cast<double>(B * T * steps) / dt;
  r.peak_rss_mb = peak_rss_mb();
  r.params = model.num_params();
  r.threads = omp_get_max_threads();
  r.device = model.backend().describe();
  r.precision = std::string(precision_name(tc.effective_precision()));
  r.flops_per_token = model.flops_per_token(T);
  r.mfu = mfu(model.backend(), r.tokens_per_s * r.flops_per_token);
  return r;
}

}  // namespace ssiat
