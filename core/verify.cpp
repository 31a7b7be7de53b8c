// Verification of an init-provenance attestation (contract in core/verify.h).
#include "core/verify.h"

#include <map>

#include "core/dsse.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/init_table.h"
#include "core/keys.h"
#include "core/recipe.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ssiat {

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
  for (const auto& c : checks) {
    json e = {{"name", c.name}, {"status", check_status_name(c.status)}, {"detail", c.detail}};
    if (!c.data.is_null()) e["data"] = c.data;
    j["checks"].push_back(e);
  }
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
    } catch (const CheckNotRun& e) {
      c.status = CheckStatus::kNotRun;
      c.detail = e.what();
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

  std::optional<RegeneratedInit> regen;
  const bool init_ok = run("init", [&] {
    const json& master = pred["seed_block"]["master"];
    if (master.value("kdf", "") != "ssiat/kdf/v1" || master.value("rng", "") != "philox4x32-10")
      throw IntegrityError(where + ": seed block uses KDF/RNG this verifier does not know");
    const Recipe r = parse_recipe(pred["recipe"].get<std::string>(), where + " (predicate recipe)");
    const uint64_t seed = master["seed"].get<uint64_t>();
    regen = regenerate_init(r.model, seed);
    const std::vector<TensorInit> table = init_table(r.model);
    const json& manifest = pred["init_manifest"];
    if (manifest.size() != table.size())
      throw IntegrityError(where + ": init manifest lists " + std::to_string(manifest.size()) + " tensors, the recipe's model has " +
                           std::to_string(table.size()));
    for (size_t i = 0; i < table.size(); i++) {
      const json& t = manifest[i];
      if (t.value("name", "") != table[i].name || t.value("shape", json()) != json(table[i].shape))
        throw IntegrityError(where + ": init manifest tensor " + std::to_string(i) + " is " + t.value("name", "?") +
                             ", the recipe's model has " + table[i].name + " " + json(table[i].shape).dump());
      if (t.value("origin", "").rfind("loaded:", 0) == 0)
        throw IntegrityError(where + ": tensor " + table[i].name + " was loaded from a weight file (origin " +
                             t.value("origin", "").substr(0, 23) + "…), not drawn from seed " + std::to_string(seed));
      if (t.value("leaf", "") != regen->leaves[i])
        throw IntegrityError(where + ": tensor " + table[i].name + " regenerated from seed " + std::to_string(seed) +
                             " has leaf " + regen->leaves[i].substr(0, 16) + "…, the init manifest says " +
                             t.value("leaf", "").substr(0, 16) + "…");
    }
    if (regen->root != subjects["init-root"])
      throw IntegrityError(where + ": regenerated init root " + regen->root + " is not the init-root subject " + subjects["init-root"]);
    return "regenerated " + std::to_string(table.size()) + " tensors from seed " + std::to_string(seed) + ": root " +
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

  if (opt.checkpoint_run && opt.checkpoints && chain_ok) {
    run("checkpoints", [&] { return opt.checkpoints(chain, *opt.checkpoint_run, pred["evidence"]); });
  } else if (!opt.checkpoint_run) {
    find("checkpoints").detail = "no --checkpoint RUN_DIR given";
  } else if (!opt.checkpoints) {
    find("checkpoints").detail = "this build reads no HDF5 checkpoints (use ssiat verify)";
  }

  {  // the policy reads the manifest and the evidence only: it runs whatever the init check found
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
      int64_t fewest = -1;  // the fewest steps that changed a tensor (-1: no counts recorded)
      for (const auto& e : ev) {
        if (!(e.value("norm_final_minus_init", 0.0) > 0.0))
          throw IntegrityError(where + ": tensor " + e.value("name", "?") + " never changed from its init (‖W_final − W_init‖ = 0)");
        if (!e.contains("steps_changed")) continue;
        const int64_t k = e["steps_changed"].is_number_integer() ? e["steps_changed"].get<int64_t>() : -1;
        if (k <= 0)
          throw IntegrityError(where + ": tensor " + e.value("name", "?") + " was changed by " +
                               (k == 0 ? "no optimizer step" : "a malformed steps_changed") + " (policy: every tensor trained)");
        fewest = fewest < 0 ? k : std::min(fewest, k);
      }
      return std::to_string(ev.size()) + " tensors regenerated, trainable, and changed by training" +
             (fewest > 0 ? " (each by at least " + std::to_string(fewest) + " steps)" : std::string());
    });
  }
  if (opt.replay_segments > 0 && opt.replay && opt.checkpoint_run && chain_ok &&
      find("checkpoints").status == CheckStatus::kPass) {
    run("replay", [&] { return opt.replay(chain, *opt.checkpoint_run, opt.replay_segments); });
  } else if (opt.replay_segments <= 0) {
    find("replay").detail = "no --replay K given";
  } else if (!opt.replay) {
    find("replay").detail = "this build has no trainer (use ssiat verify)";
  } else if (!opt.checkpoint_run) {
    find("replay").detail = "--replay needs --checkpoint RUN_DIR";
  }
  if (opt.reference && opt.lineage && opt.checkpoint_run && chain_ok) {
    run("lineage", [&] { return opt.lineage(chain, *opt.checkpoint_run, *opt.reference, find("lineage").data); });
  } else if (!opt.reference) {
    find("lineage").detail = "no --reference given";
  } else if (!opt.lineage) {
    find("lineage").detail = "this build reads no checkpoints (use ssiat verify)";
  } else if (!opt.checkpoint_run) {
    find("lineage").detail = "--reference needs --checkpoint RUN_DIR (the run's weights)";
  }
  return explained(checks);
}

}  // namespace ssiat
