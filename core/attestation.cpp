// The init-provenance statement, attest and verify (contract in core/attestation.h).
#include "core/attestation.h"

#include <cmath>
#include <sstream>

#include "core/chain.h"
#include "core/checkpoint.h"
#include "core/dsse.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/init_leaf.h"
#include "core/keys.h"
#include "core/merkle.h"
#include "core/model.h"
#include "core/recipe.h"
#include "core/seed_registry.h"

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

// The initial weights from a recipe and a master seed, on the CPU (one rank).
struct Regenerated {
  std::unique_ptr<Llama<float>> model;
  std::vector<InitHash> hashes;
  std::string root;
};

Regenerated regenerate(const Recipe& r, uint64_t seed) {
  Regenerated g;
  g.model = std::make_unique<Llama<float>>(r.model);
  SeedRegistry reg(seed, SeedSource::kRecipe);
  g.hashes = g.model->init_weights(reg);
  std::vector<Digest> leaves;
  for (const auto& h : g.hashes) leaves.push_back(*digest_from_hex(h.leaf));
  g.root = digest_hex(merkle_root(leaves));
  return g;
}

// ‖W_final − W_init‖ per tensor (double sums in index order), from a checkpoint's param/ tensors.
std::vector<double> change_norms(const Llama<float>& init, const LoadedCheckpoint& ck) {
  std::vector<double> out;
  for (const auto& v : init.views()) {
    const auto it = ck.tensors.find("param/" + v.name);
    if (it == ck.tensors.end() || static_cast<int64_t>(it->second.size()) != v.numel)
      throw IntegrityError("checkpoint has no tensor param/" + v.name + " of the model's shape");
    double s = 0;
    for (int64_t i = 0; i < v.numel; i++) {
      const double d = static_cast<double>(it->second[i]) - static_cast<double>(init.params()[v.offset + i]);
      s += d * d;
    }
    out.push_back(std::sqrt(s));
  }
  return out;
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
  const Regenerated g = regenerate(recipe, seed_block["master"].at("seed").get<uint64_t>());
  std::vector<double> norms(g.model->views().size(), 0.0);
  if (!records.empty()) {
    const fs::path last = run / "checkpoints" / records.back().checkpoint;
    if (fs::exists(last)) norms = change_norms(*g.model, read_checkpoint(last));
  }
  for (size_t i = 0; i < norms.size(); i++)
    evidence.push_back({{"name", g.model->views()[i].name}, {"norm_final_minus_init", norms[i]}});

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

const char* check_status_name(CheckStatus s) {
  switch (s) {
    case CheckStatus::kPass: return "PASS";
    case CheckStatus::kFail: return "FAIL";
    case CheckStatus::kNotRun: return "NOT RUN";
  }
  return "?";
}

bool all_passed(const std::vector<Check>& checks) {
  for (const auto& c : checks)
    if (c.status == CheckStatus::kFail) return false;
  return true;
}

json report_json(const std::vector<Check>& checks) {
  json j = {{"result", all_passed(checks) ? "PASS" : "FAIL"}, {"checks", json::array()}};
  for (const auto& c : checks)
    j["checks"].push_back({{"name", c.name}, {"status", check_status_name(c.status)}, {"detail", c.detail}});
  return j;
}

namespace {
// Checks not run because an earlier one failed say so.
std::vector<Check> explained(std::vector<Check> checks) {
  std::string failed;
  for (auto& c : checks) {
    if (c.status == CheckStatus::kFail && failed.empty()) failed = c.name;
    if (c.status == CheckStatus::kNotRun && c.detail.empty()) c.detail = "not run: the " + failed + " check failed";
  }
  return checks;
}
}  // namespace

std::vector<Check> verify(const VerifyOptions& opt) {
  std::vector<Check> checks = {{"signature"}, {"schema"}, {"init"},   {"chain"},
                               {"checkpoints"}, {"origin"}, {"replay"}, {"lineage"}};
  auto find = [&](const char* name) -> Check& {
    for (auto& c : checks)
      if (c.name == name) return c;
    throw Error(std::string("no check ") + name);
  };
  // Runs `fn` as check `name` (returning its PASS detail); an exception is its FAIL line.
  auto run = [&](const char* name, auto&& fn) {
    Check& c = find(name);
    try {
      c.detail = fn();
      c.status = CheckStatus::kPass;
    } catch (const std::exception& e) {
      c.status = CheckStatus::kFail;
      c.detail = e.what();
    }
    return c.status == CheckStatus::kPass;
  };
  const std::string where = opt.envelope.string();
  json st, pred;
  const bool signed_ok = run("signature", [&] {
    const Envelope env = parse_envelope(read_whole_file(opt.envelope), where);
    const PublicKey pk = load_public_key(opt.pubkey);
    verify_envelope(env, pk, where);
    if (env.payload_type != kInTotoPayloadType)
      throw IntegrityError(where + ": payloadType is \"" + env.payload_type + "\", not \"" + std::string(kInTotoPayloadType) + "\"");
    st = json::parse(env.payload, nullptr, false);  // the payload of the envelope that verified
    return "signed by key " + pk.keyid();
  });
  if (!signed_ok) return explained(checks);
  std::map<std::string, std::string> subjects;
  const bool schema_ok = run("schema", [&] {
    if (!st.is_object()) throw IntegrityError(where + ": payload is not a JSON object");
    if (st.value("_type", "") != kStatementType) throw IntegrityError(where + ": _type is not " + std::string(kStatementType));
    if (st.value("predicateType", "") != kPredicateType)
      throw IntegrityError(where + ": predicateType is not " + std::string(kPredicateType));
    try {
      for (const auto& s : st.at("subject")) subjects[s.at("name").get<std::string>()] = s.at("digest").at("sha256").get<std::string>();
      pred = st.at("predicate");
      for (const char* k : {"recipe", "seed_block", "init_manifest", "chain", "evidence"})
        if (!pred.contains(k)) throw IntegrityError(where + ": predicate has no field '" + k + "'");
      pred.at("recipe").get<std::string>();
      pred.at("seed_block").at("master").at("seed").get<uint64_t>();
    } catch (const json::exception& e) {
      throw IntegrityError(where + ": statement field missing or of the wrong type: " + json_error_message(e));
    }
    for (const char* s : {"init-root", "final-weights-root", "recipe", "tokenizer"})
      if (!subjects.contains(s)) throw IntegrityError(where + ": no subject '" + s + "'");
    if (sha256_hex(pred["recipe"].get<std::string>()) != subjects["recipe"])
      throw IntegrityError(where + ": the recipe subject's digest is not the predicate recipe's");
    return "in-toto Statement v1, " + std::string(kPredicateType);
  });
  if (!schema_ok) return explained(checks);

  std::optional<Regenerated> regen;
  const bool init_ok = run("init", [&] {
    const json& master = pred["seed_block"]["master"];
    if (master.value("kdf", "") != "ssiat/kdf/v1" || master.value("rng", "") != "philox4x32-10")
      throw IntegrityError(where + ": seed block uses KDF/RNG this verifier does not know");
    const Recipe r = parse_recipe(pred["recipe"].get<std::string>(), where + " (predicate recipe)");
    const uint64_t seed = master["seed"].get<uint64_t>();
    regen = regenerate(r, seed);
    const json& manifest = pred["init_manifest"];
    const auto& views = regen->model->views();
    if (manifest.size() != views.size())
      throw IntegrityError(where + ": init manifest lists " + std::to_string(manifest.size()) + " tensors, the recipe's model has " +
                           std::to_string(views.size()));
    for (size_t i = 0; i < views.size(); i++) {
      const json& t = manifest[i];
      if (t.value("name", "") != views[i].name || t.value("shape", json()) != json(views[i].shape))
        throw IntegrityError(where + ": init manifest tensor " + std::to_string(i) + " is " + t.value("name", "?") +
                             ", the recipe's model has " + views[i].name + " " + json(views[i].shape).dump());
      if (t.value("leaf", "") != regen->hashes[i].leaf)
        throw IntegrityError(where + ": tensor " + views[i].name + " regenerated from seed " + std::to_string(seed) +
                             " has leaf " + regen->hashes[i].leaf.substr(0, 16) + "…, the init manifest says " +
                             t.value("leaf", "").substr(0, 16) + "…");
    }
    if (regen->root != subjects["init-root"])
      throw IntegrityError(where + ": regenerated init root " + regen->root + " is not the init-root subject " + subjects["init-root"]);
    return "regenerated " + std::to_string(views.size()) + " tensors from seed " + std::to_string(seed) + ": root " +
           regen->root.substr(0, 16) + "…";
  });

  std::vector<ChainRecord> chain;
  const bool chain_ok = init_ok && run("chain", [&] {
    std::string parent = subjects["init-root"];
    int64_t i = 0;
    for (const auto& j : pred["chain"]) {
      const ChainRecord r = ChainRecord::from_json(j, where + " chain record " + std::to_string(i));
      if (r.parent != parent)
        throw IntegrityError(where + ": chain record " + std::to_string(i) + " (step " + std::to_string(r.step) +
                             ") names parent " + r.parent.substr(0, 16) + "…, not the previous record's " + parent.substr(0, 16) + "…");
      parent = chain_digest(chain_line(r));
      chain.push_back(r);
      i++;
    }
    const std::string final_root = chain.empty() ? subjects["init-root"] : chain.back().weights_root;
    if (final_root != subjects["final-weights-root"])
      throw IntegrityError(where + ": the last chain record's weights root is not the final-weights-root subject");
    return std::to_string(chain.size()) + (chain.size() == 1 ? " record" : " records") + " from the init root" +
           (chain.empty() ? std::string() : " to step " + std::to_string(chain.back().step));
  });

  if (opt.checkpoint_run && chain_ok) {
    run("checkpoints", [&] {
      const fs::path dir = *opt.checkpoint_run / "checkpoints";
      int64_t present = 0;
      for (const auto& r : chain) {
        const fs::path ckdir = dir / r.checkpoint;
        if (!fs::exists(ckdir)) continue;  // pruned: its record still stands in the chain
        const LoadedCheckpoint ck = read_checkpoint(ckdir);
        if (ck.digest != r.manifest_sha256)
          throw IntegrityError(ckdir.string() + ": manifest digest is not chain record step " + std::to_string(r.step) + "'s");
        const StateRoots roots = state_roots_of(ck);
        if (roots.weights != r.weights_root || roots.optimizer != r.optimizer_root)
          throw IntegrityError(ckdir.string() + ": the " + (roots.weights != r.weights_root ? "weights" : "optimizer") +
                               " root of its tensors is not chain record step " + std::to_string(r.step) + "'s");
        present++;
      }
      if (present == 0) throw IntegrityError(dir.string() + ": none of the chain's " + std::to_string(chain.size()) + " checkpoints is there");
      return std::to_string(present) + " of " + std::to_string(chain.size()) + " checkpoints match their records (the rest pruned)";
    });
  } else {
    if (!opt.checkpoint_run) find("checkpoints").detail = "no --checkpoint RUN_DIR given";
  }

  if (init_ok) {
    run("origin", [&] {
      for (const auto& t : pred["init_manifest"]) {
        const std::string origin = t.value("origin", "");
        if (origin != "regenerated")
          throw IntegrityError(where + ": tensor " + t.value("name", "?") + " has origin \"" + origin + "\" (policy: every tensor regenerated)");
        if (!t.value("trainable", false))
          throw IntegrityError(where + ": tensor " + t.value("name", "?") + " is not trainable (policy: every tensor trained)");
      }
      const json& ev = pred["evidence"];
      if (ev.size() != pred["init_manifest"].size()) throw IntegrityError(where + ": evidence does not cover every tensor");
      for (const auto& e : ev)
        if (!(e.value("norm_final_minus_init", 0.0) > 0.0))
          throw IntegrityError(where + ": tensor " + e.value("name", "?") + " never changed from its init (‖W_final − W_init‖ = 0)");
      return std::to_string(ev.size()) + " tensors regenerated, trainable, and changed by training";
    });
  }
  find("replay").detail = "not built yet (issue 10)";
  find("lineage").detail = "not built yet (issue 10)";
  return explained(checks);
}

}  // namespace ssiat
