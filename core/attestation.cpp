// The init-provenance statement, attest and verify (contract in core/attestation.h).
#include "core/attestation.h"

#include <unistd.h>

#include <cmath>
#include <map>
#include <optional>
#include <sstream>

#include "core/chain.h"
#include "core/checkpoint.h"
#include "core/dsse.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/init_leaf.h"
#include "core/keys.h"
#include "core/safetensors.h"
#include "core/merkle.h"
#include "core/init_table.h"
#include "core/trainer.h"
#include "core/recipe.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ssiat {
namespace {

std::vector<json> json_lines(const fs::path& path) {
  std::vector<json> out;
  std::istringstream in(read_whole_file(path));
  std::string line;
  for (int64_t n = 1; std::getline(in, line); n++) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw IntegrityError(path.string() + ":" + std::to_string(n) + ": not a JSON object");
    out.push_back(std::move(j));
  }
  return out;
}

json subject(const std::string& name, const std::string& sha256) {
  return {{"name", name}, {"digest", {{"sha256", sha256}}}};
}

// ‖W_final − W_init‖ per tensor (double sums in index order): each initial tensor regenerated in
// turn and compared with the checkpoint's param/ tensor of the same name.
struct Norms {
  const LoadedCheckpoint* ck;
  std::vector<double> out;
};

void add_norm(void* ctx, size_t, const TensorInit& t, const float* init, int64_t n) {
  auto* c = static_cast<Norms*>(ctx);
  const auto it = c->ck->tensors.find("param/" + t.name);
  if (it == c->ck->tensors.end() || static_cast<int64_t>(it->second.size()) != n)
    throw IntegrityError("checkpoint has no tensor param/" + t.name + " of the model's shape");
  double s = 0;
  for (int64_t i = 0; i < n; i++) {
    const double d = static_cast<double>(it->second[i]) - static_cast<double>(init[i]);
    s += d * d;
  }
  c->out.push_back(std::sqrt(s));
}

}  // namespace

json build_statement(const fs::path& run) {
  const std::string recipe_text = read_whole_file(run / "recipe.toml");
  json run_json = json::parse(read_whole_file(run / "run.json"), nullptr, false);
  if (run_json.is_discarded()) throw IntegrityError((run / "run.json").string() + ": not JSON");
  json seed_block = {{"streams", json::array()}}, init_manifest = json::array(), commitment, tokenizer, data;
  for (auto& rec : json_lines(run / "seeds.jsonl")) {
    const std::string type = rec.value("type", "");
    if (type == "master") seed_block["master"] = rec;
    else if (type == "stream") seed_block["streams"].push_back(rec);
    else if (type == "tensor") init_manifest.push_back(rec);
    else if (type == "init_commitment") commitment = rec;
    else if (type == "tokenizer") tokenizer = rec;
    else if (type == "data") data = rec;
  }
  if (!seed_block.contains("master")) throw IntegrityError((run / "seeds.jsonl").string() + ": no master seed record");
  if (!commitment.is_object() || !commitment.contains("root"))
    throw ConfigError((run / "seeds.jsonl").string() + ": no init commitment (a run from an older build, or not started)");
  const std::string init_root = commitment["root"].get<std::string>();
  json chain = json::array();
  const std::vector<ChainRecord> records = read_chain(run);
  for (const auto& r : records) chain.push_back(r.to_json());
  const std::string final_root = records.empty() ? init_root : records.back().weights_root;

  // Evidence: how far each tensor moved from its regenerated init, at the last checkpoint.
  json evidence = json::array();
  const Recipe recipe = parse_recipe(recipe_text, (run / "recipe.toml").string());
  const uint64_t seed = seed_block["master"].at("seed").get<uint64_t>();
  const std::vector<TensorInit> table = init_table(recipe.model);
  std::vector<double> norms(table.size(), 0.0);
  json counts;  // the last checkpoint's steps_changed (by name), if it recorded them
  if (!records.empty()) {
    const fs::path last = run / "checkpoints" / records.back().checkpoint;
    if (fs::exists(last)) {
      const LoadedCheckpoint ck = read_checkpoint(last);
      Norms c{&ck, {}};
      regenerate_init(recipe.model, seed, add_norm, &c);
      norms = c.out;
      counts = ck.meta.extra.value("steps_changed", json());
    }
  }
  for (size_t i = 0; i < norms.size(); i++) {
    evidence.push_back({{"name", table[i].name}, {"norm_final_minus_init", norms[i]}});
    if (counts.is_object() && counts.contains(table[i].name)) evidence.back()["steps_changed"] = counts[table[i].name];
  }

  json segments = json::array();
  if (fs::exists(run / "history.jsonl"))
    for (auto& h : json_lines(run / "history.jsonl"))
      segments.push_back({{"segment", h.value("segment", 0)}, {"start_step", h.value("start_step", 0)},
                          {"recipe_sha256", h.value("recipe_sha256", "")}, {"build", h.value("build", json::object())}});
  return {{"_type", kStatementType},
          {"subject", {subject("init-root", init_root), subject("final-weights-root", final_root),
                       subject("recipe", sha256_hex(recipe_text)),
                       subject("tokenizer", tokenizer.is_object() ? tokenizer.value("digest", "") : "")}},
          {"predicateType", kPredicateType},
          {"predicate",
           {{"framework", run_json},
            {"segments", segments},
            {"recipe", recipe_text},
            {"seed_block", seed_block},
            {"init_manifest", init_manifest},
            {"init_commitment", commitment},
            {"tokenizer", tokenizer},
            {"data", data},
            {"chain", chain},
            {"evidence", evidence}}}};
}

std::string attest(const fs::path& run, const fs::path& key, const fs::path& out) {
  const SecretKey sk = load_secret_key(key);  // refuses loose permissions before any work
  const std::string payload = build_statement(run).dump();
  const Envelope env = sign_envelope(kInTotoPayloadType, payload, sk);
  write_file_atomic(out, envelope_json(env) + "\n");
  return sk.public_key().keyid();
}

std::string verify_checkpoints(const std::vector<ChainRecord>& chain, const fs::path& run, const json& evidence) {
  const fs::path dir = run / "checkpoints";
  int64_t present = 0;
  std::string counted;
  for (size_t i = 0; i < chain.size(); i++) {
    const ChainRecord& r = chain[i];
    const fs::path ckdir = dir / r.checkpoint;
    if (!fs::exists(ckdir)) continue;  // pruned: its record still stands in the chain
    const LoadedCheckpoint ck = read_checkpoint(ckdir);
    // The last checkpoint's step counts are the statement's (its manifest, whose digest the
    // record holds, carries them).
    if (i + 1 == chain.size() && ck.meta.extra.contains("steps_changed")) {
      const json& counts = ck.meta.extra["steps_changed"];
      for (const auto& e : evidence)
        if (!e.contains("steps_changed") || !counts.contains(e.value("name", "")) ||
            counts[e.value("name", "")] != e["steps_changed"])
          throw IntegrityError(ckdir.string() + ": tensor " + e.value("name", "?") + " was changed by " +
                               (counts.contains(e.value("name", "")) ? counts[e.value("name", "")].dump() : "?") +
                               " steps, the statement's evidence says " + e.value("steps_changed", json()).dump());
      counted = "; step counts as the evidence says";
    }
    if (ck.digest != r.manifest_sha256)
      throw IntegrityError(ckdir.string() + ": manifest digest is not chain record step " + std::to_string(r.step) + "'s");
    const StateRoots roots = state_roots_of(ck);
    if (roots.weights != r.weights_root || roots.optimizer != r.optimizer_root)
      throw IntegrityError(ckdir.string() + ": the " + (roots.weights != r.weights_root ? "weights" : "optimizer") +
                           " root of its tensors is not chain record step " + std::to_string(r.step) + "'s");
    present++;
  }
  if (present == 0) throw IntegrityError(dir.string() + ": none of the chain's " + std::to_string(chain.size()) + " checkpoints is there");
  return std::to_string(present) + " of " + std::to_string(chain.size()) + " checkpoints match their records (the rest pruned)" + counted;
}

std::string replay_segments(const std::vector<ChainRecord>& chain, const fs::path& run, int64_t segments) {
  std::map<int64_t, std::string> recipes;  // segment -> its effective recipe (history.jsonl)
  for (auto& h : json_lines(run / "history.jsonl")) recipes[h.value("segment", int64_t{-1})] = h.value("recipe", "");
  int64_t replayed = 0, multi_rank = 0;
  std::string last;
  for (size_t i = chain.size(); i-- > 1 && replayed < segments;) {
    const ChainRecord& a = chain[i - 1];
    const ChainRecord& b = chain[i];
    const fs::path from = run / "checkpoints" / a.checkpoint;
    if (!fs::exists(from)) continue;
    const auto it = recipes.find(b.segment);
    if (it == recipes.end() || it->second.empty())
      throw IntegrityError((run / "history.jsonl").string() + ": no recipe for segment " + std::to_string(b.segment));
    const Recipe r = parse_recipe(it->second, (run / "history.jsonl").string() + " segment " + std::to_string(b.segment));
    if (r.parallel.dp * r.parallel.tp != 1) {
      multi_rank++;
      continue;
    }
    // A run directory holding the run's logs and checkpoint A alone, resumed to step B.
    const fs::path tmp = fs::temp_directory_path() / ("ssiat_replay_" + std::to_string(::getpid()) + "_" + std::to_string(b.step));
    fs::remove_all(tmp);
    fs::create_directories(tmp / "checkpoints");
    for (const char* f : {"recipe.toml", "run.json", "history.jsonl", "seeds.jsonl", "chain.jsonl"})
      if (fs::exists(run / f)) fs::copy_file(run / f, tmp / f);
    fs::copy(from, tmp / "checkpoints" / a.checkpoint, fs::copy_options::recursive);
    write_file_atomic(tmp / "checkpoints" / "latest", a.checkpoint + "\n");
    TrainOptions o;
    o.run_dir = tmp;
    o.resume = true;
    o.stop_after = b.step - a.step;
    o.progress = false;
    try {
      train(r, o);
      const std::vector<ChainRecord> redone = read_chain(tmp);
      if (redone.empty() || redone.back().step != b.step)
        throw IntegrityError(run.string() + ": the replay from " + a.checkpoint + " wrote no checkpoint at step " + std::to_string(b.step));
      if (redone.back().weights_root != b.weights_root || redone.back().optimizer_root != b.optimizer_root)
        throw IntegrityError(run.string() + ": replaying " + a.checkpoint + " -> step " + std::to_string(b.step) + " gives " +
                             (redone.back().weights_root != b.weights_root ? "weights" : "optimizer") + " root " +
                             (redone.back().weights_root != b.weights_root ? redone.back().weights_root : redone.back().optimizer_root).substr(0, 16) +
                             "…, the chain records " +
                             (redone.back().weights_root != b.weights_root ? b.weights_root : b.optimizer_root).substr(0, 16) + "…");
      // The steps that changed each tensor, where the recorded checkpoint is still there.
      const fs::path recorded = run / "checkpoints" / b.checkpoint;
      if (fs::exists(recorded)) {
        auto counts_of = [](const fs::path& ckdir) { return read_manifest(ckdir).meta.extra.value("steps_changed", json()); };
        const json mine = counts_of(tmp / "checkpoints" / b.checkpoint), theirs = counts_of(recorded);
        if (mine != theirs)
          throw IntegrityError(run.string() + ": replaying " + a.checkpoint + " -> step " + std::to_string(b.step) +
                               " counts the steps that changed each tensor as " + mine.dump().substr(0, 80) +
                               ", the checkpoint records " + theirs.dump().substr(0, 80));
      }
    } catch (...) {
      std::error_code ec;
      fs::remove_all(tmp, ec);
      throw;
    }
    std::error_code ec;
    fs::remove_all(tmp, ec);
    replayed++;
    if (last.empty()) last = "step " + std::to_string(a.step) + " -> " + std::to_string(b.step);
  }
  if (replayed == 0)
    throw CheckNotRun(multi_rank ? "the segments to replay ran on several ranks (replay them under the same layout)"
                                 : "no checkpoint of the chain to replay from is in " + (run / "checkpoints").string());
  return "replayed " + std::to_string(replayed) + " segment" + (replayed == 1 ? "" : "s") + " (latest " + last +
         ") to the recorded weights and optimizer roots, bit for bit";
}

namespace {

// Pearson correlation of x and y (n values), in double, two passes; nullopt without variance.
std::optional<double> pearson(const float* x, const float* y, int64_t n) {
  if (n < 2) return std::nullopt;
  double mx = 0, my = 0;
  for (int64_t i = 0; i < n; i++) mx += x[i], my += y[i];
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (int64_t i = 0; i < n; i++) {
    const double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy, sxx += dx * dx, syy += dy * dy;
  }
  if (!(sxx > 0) || !(syy > 0)) return std::nullopt;
  return sxy / std::sqrt(sxx * syy);
}

struct Lineage {
  const LoadedCheckpoint* ours;
  std::map<std::string, std::pair<std::vector<int64_t>, const std::vector<float>*>> ref;
  json tensors = json::array();
  double sum_ref = 0, sum_own = 0;
  int64_t matrices = 0;
};

void lineage_tensor(void* ctx, size_t, const TensorInit& t, const float* init, int64_t n) {
  auto* c = static_cast<Lineage*>(ctx);
  const auto mine = c->ours->tensors.find("param/" + t.name);
  if (mine == c->ours->tensors.end()) throw IntegrityError("the run's checkpoint has no tensor param/" + t.name);
  const float* w = mine->second.data();
  const auto own = pearson(w, init, n);
  std::optional<double> vs;
  const auto r = c->ref.find(t.name);
  if (r != c->ref.end() && r->second.first == t.shape) vs = pearson(w, r->second.second->data(), n);
  c->tensors.push_back({{"name", t.name}, {"r_reference", vs ? json(*vs) : json(nullptr)}, {"r_own_init", own ? json(*own) : json(nullptr)}});
  if (t.shape.size() == 2 && vs && own) c->sum_ref += *vs, c->sum_own += *own, c->matrices++;
}

}  // namespace

std::string lineage_report(const std::vector<ChainRecord>& chain, const fs::path& run, const fs::path& reference,
                           json& data) {
  if (chain.empty()) throw CheckNotRun("the chain has no checkpoint to compare");
  const fs::path last = run / "checkpoints" / chain.back().checkpoint;
  if (!fs::exists(last)) throw CheckNotRun(last.string() + " (the last checkpoint) is not there");
  const LoadedCheckpoint ours = read_checkpoint(last);
  // The reference: a safetensors file, or a run directory's latest checkpoint.
  std::map<std::string, SafetensorsTensor> st;
  std::optional<LoadedCheckpoint> ref_ck;
  Lineage c{&ours, {}};
  if (fs::is_directory(reference)) {
    const auto latest = latest_checkpoint(reference);
    if (!latest) throw IoError(reference.string() + ": no checkpoint to compare with (no checkpoints/latest)");
    ref_ck = read_checkpoint(*latest);
    for (const auto& [key, t] : ref_ck->tensors)
      if (key.rfind("param/", 0) == 0) c.ref[key.substr(6)] = {ref_ck->shapes.at(key), &t};
  } else {
    st = read_safetensors(reference);
    for (const auto& [name, t] : st) c.ref[name] = {t.shape, &t.data};
  }
  // Our init, regenerated from the run's recipe and seed (its own files, as the checkpoints are).
  const Recipe recipe = parse_recipe(read_whole_file(run / "recipe.toml"), (run / "recipe.toml").string());
  uint64_t seed = 0;
  for (auto& rec : json_lines(run / "seeds.jsonl"))
    if (rec.value("type", "") == "master") seed = rec.at("seed").get<uint64_t>();
  regenerate_init(recipe.model, seed, lineage_tensor, &c);
  if (c.matrices == 0) throw IntegrityError(reference.string() + ": no weight matrix of the run has a tensor of the same name and shape there");
  const double mr = c.sum_ref / static_cast<double>(c.matrices), mo = c.sum_own / static_cast<double>(c.matrices);
  data = {{"reference", reference.string()}, {"tensors", c.tensors}, {"mean_r_reference", mr}, {"mean_r_own_init", mo},
          {"matrices", c.matrices}};
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "mean centred correlation with %s: %.3f over %lld matrices (control, this run against its own init: %.3f)",
                reference.filename().c_str(), mr, static_cast<long long>(c.matrices), mo);
  return buf;
}

}  // namespace ssiat
