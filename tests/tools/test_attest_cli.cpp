// `ssiat attest` and `ssiat verify` (core/attestation.h) end to end on a tiny run: a signed
// statement verifies (signature, schema, init regenerated from the seed block alone, chain,
// checkpoints, origin); each kind of tampering makes verify FAIL naming what broke, with exit 1:
// an unsigned edit of the payload or the signature, the wrong key, and — re-signed with the right
// key, so only the content can catch it — another seed, an edited leaf, an edited recipe, a broken
// chain record, a tensor marked as loaded; a checkpoint replaced by another run's; a key file with
// loose permissions and a malformed envelope give one-line errors; replay retrains segments (also
// across a resume) to the recorded roots and catches a checkpoint training did not produce; the
// lineage report tells a fine-tune from an independent run.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/chain.h"
#include "core/checkpoint.h"
#include "core/dsse.h"
#include "core/hash.h"
#include "core/keys.h"
#include "tests/common/cli.h"
#include "tests/tools/cli_test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using ssiat::testing::run_cli;
using ssiat::testing::slurp;
using ssiat::testing::write_file;

class Attest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("ssiat_attest_" + std::to_string(::getpid()));
    ssiat::testing::write_tiny_inputs(dir_, 40, 10);
    const std::string train = "train tiny.toml -q --set train.steps=6 --set schedule.warmup_steps=1 --set checkpoint.interval=3";
    ok_ = ssiat::testing::prepare_tiny_data(dir_) && run_cli(dir_, train + " --run-dir run").status == 0 &&
          run_cli(dir_, train + " --run-dir other --set seed=78").status == 0 &&
          run_cli(dir_, "keygen --out k").status == 0 && run_cli(dir_, "keygen --out k2").status == 0 &&
          run_cli(dir_, "attest run --key k.key --out att.json").status == 0;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override { ASSERT_TRUE(ok_) << "training, keygen or attest failed in " << dir_; }

  // Runs verify; returns its exit status and stdout.
  static std::pair<int, std::string> verify(const std::string& file, const std::string& extra = "") {
    const auto r = run_cli(dir_, "verify " + file + " --pubkey k.pub" + extra);
    return {r.status, r.out};
  }
  // The line of check `name` in verify's output.
  static std::string line_of(const std::string& out, const std::string& name) {
    std::istringstream in(out);
    std::string l;
    while (std::getline(in, l))
      if (l.find("  " + name + " ") != std::string::npos) return l;
    return "";
  }
  // att.json's statement edited by `edit`, re-signed with k.key, written to `file`.
  static void resign(const std::string& file, const std::function<void(json&)>& edit) {
    const ssiat::Envelope env = ssiat::parse_envelope(slurp(dir_ / "att.json"), "att.json");
    json st = json::parse(env.payload);
    edit(st);
    const ssiat::SecretKey sk = ssiat::load_secret_key(dir_ / "k.key");
    write_file(dir_ / file, ssiat::envelope_json(ssiat::sign_envelope(ssiat::kInTotoPayloadType, st.dump(), sk)));
  }
  // Replaces <run>/checkpoints/step_00000006 by a checkpoint of the same state but one weight
  // (model.norm.weight[0] + 0.25), written by the real writer; returns its digest (and roots).
  static std::string rewrite_step6_with_a_changed_weight(const fs::path& run, ssiat::StateRoots* roots) {
    const fs::path ckdir = run / "checkpoints";
    ssiat::LoadedCheckpoint ck = ssiat::read_checkpoint(ckdir / "step_00000006");
    fs::remove_all(ckdir / "step_00000006");
    write_file(ckdir / "latest", "step_00000003\n");
    ck.tensors.at("param/model.norm.weight")[0] += 0.25f;
    std::vector<ssiat::CheckpointTensor> ts;
    for (auto& [key, t] : ck.tensors) ts.push_back({key, ck.shapes.at(key), t.data()});
    return ssiat::write_checkpoint(run, ck.meta, ts, {}, roots);
  }
  static inline fs::path dir_;
  static inline bool ok_ = false;
};

TEST_F(Attest, SignedStatementVerifies) {
  const auto [status, out] = verify("att.json", " --checkpoint run --json report.json");
  EXPECT_EQ(status, 0) << out;
  for (const char* c : {"signature", "schema", "init", "chain", "checkpoints", "origin"})
    EXPECT_EQ(line_of(out, c).rfind("PASS", 0), 0u) << out;
  EXPECT_NE(line_of(out, "init").find("regenerated 21 tensors from seed 77"), std::string::npos) << out;
  EXPECT_NE(line_of(out, "chain").find("2 records from the init root to step 6"), std::string::npos) << out;
  EXPECT_EQ(line_of(out, "replay").rfind("NOT RUN", 0), 0u) << out;
  const json report = json::parse(slurp(dir_ / "report.json"));
  EXPECT_EQ(report["result"], "PASS");
  // The statement's subjects and predicate (what a reviewer reads).
  const json st = json::parse(ssiat::parse_envelope(slurp(dir_ / "att.json"), "att.json").payload);
  EXPECT_EQ(st["_type"], "https://in-toto.io/Statement/v1");
  EXPECT_EQ(st["subject"][0]["name"], "init-root");
  EXPECT_EQ(st["predicate"]["recipe"], slurp(dir_ / "run" / "recipe.toml"));
  EXPECT_EQ(st["predicate"]["chain"].size(), 2u);
  // Build facts as this build was configured: the flags CMake passed, and the CUDA build's.
  const json& fw = st["predicate"]["framework"];
  EXPECT_NE(fw.value("build_flags", "").find("-ffp-contract=off"), std::string::npos) << fw.dump();
  const std::string cuda_build = fw.value("cuda_build", "");
  EXPECT_TRUE(cuda_build == "not built" || cuda_build.rfind("nvcc ", 0) == 0) << fw.dump();
  // Evidence: every tensor moved, and was changed by each of the 6 steps (lr > 0 throughout).
  ASSERT_EQ(st["predicate"]["evidence"].size(), 21u);
  for (const auto& e : st["predicate"]["evidence"]) {
    EXPECT_GT(e["norm_final_minus_init"].get<double>(), 0.0) << e.dump();
    EXPECT_EQ(e["steps_changed"], 6) << e.dump();
  }
  EXPECT_NE(line_of(out, "origin").find("(each by at least 6 steps)"), std::string::npos) << out;
  EXPECT_NE(line_of(out, "checkpoints").find("step counts as the evidence says"), std::string::npos) << out;
  // Without --checkpoint that check is NOT RUN, and the result still passes.
  const auto [s2, out2] = verify("att.json");
  EXPECT_EQ(s2, 0);
  EXPECT_EQ(line_of(out2, "checkpoints").rfind("NOT RUN", 0), 0u) << out2;
}

TEST_F(Attest, UnsignedEditsAndWrongKeysFailTheSignature) {
  ssiat::Envelope env = ssiat::parse_envelope(slurp(dir_ / "att.json"), "att.json");
  ssiat::Envelope payload_edit = env, sig_edit = env;
  payload_edit.payload[payload_edit.payload.find("\"seed\":77")] = ' ';
  sig_edit.signatures[0].sig[5] ^= 1;
  write_file(dir_ / "payload.json", ssiat::envelope_json(payload_edit));
  write_file(dir_ / "sig.json", ssiat::envelope_json(sig_edit));
  for (const char* f : {"payload.json", "sig.json"}) {
    const auto [status, out] = verify(f);
    EXPECT_EQ(status, 1) << f;
    EXPECT_NE(line_of(out, "signature").find("FAIL     signature    " + std::string(f) + ": signature does not verify"),
              std::string::npos)
        << out;
    EXPECT_NE(line_of(out, "init").find("NOT RUN"), std::string::npos) << out;
  }
  const auto r = run_cli(dir_, "verify att.json --pubkey k2.pub");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("att.json: no signature by key"), std::string::npos) << r.out;
  write_file(dir_ / "bad.json", "{\"payloadType\": ");
  const auto [sb, ob] = verify("bad.json");
  EXPECT_EQ(sb, 1);
  EXPECT_NE(line_of(ob, "signature").find("bad.json: not JSON at byte"), std::string::npos) << ob;
}

TEST_F(Attest, ResignedTamperingFailsTheCheckThatOwnsIt) {
  struct Case {
    const char* file;
    std::function<void(json&)> edit;
    const char* check;
    const char* says;
  };
  const Case cases[] = {
      {"seed.json", [](json& s) { s["predicate"]["seed_block"]["master"]["seed"] = 78; }, "init",
       "tensor model.embed_tokens.weight regenerated from seed 78 has leaf"},
      {"leaf.json", [](json& s) { s["predicate"]["init_manifest"][3]["leaf"] = std::string(64, 'a'); }, "init",
       "tensor model.layers.0.self_attn.k_proj.weight regenerated from seed 77 has leaf"},
      {"recipe.json",
       [](json& s) {
         std::string r = s["predicate"]["recipe"];
         r.replace(r.find("init_std = 0.02"), 15, "init_std = 0.03");
         s["predicate"]["recipe"] = r;
         s["subject"][2]["digest"]["sha256"] = ssiat::sha256_hex(r);
       },
       "init", "tensor model.embed_tokens.weight regenerated from seed 77 has leaf"},
      {"chain.json", [](json& s) { s["predicate"]["chain"][0]["weights_root"] = std::string(64, 'b'); }, "chain",
       "chain record 1 (step 6) names parent"},
      {"loaded.json", [](json& s) { s["predicate"]["init_manifest"][0]["origin"] = "loaded:0123"; }, "origin",
       "tensor model.embed_tokens.weight has origin \"loaded:0123\""},
  };
  for (const auto& c : cases) {
    resign(c.file, c.edit);
    const auto [status, out] = verify(c.file);
    EXPECT_EQ(status, 1) << c.file << "\n" << out;
    EXPECT_EQ(line_of(out, "signature").rfind("PASS", 0), 0u) << out;
    const std::string l = line_of(out, c.check);
    EXPECT_EQ(l.rfind("FAIL", 0), 0u) << c.file << "\n" << out;
    EXPECT_NE(l.find(c.says), std::string::npos) << c.file << "\n" << out;
  }
}

// The per-tensor step counts, re-signed: one that is not the last checkpoint's fails the
// checkpoints check; a tensor no step changed fails the origin policy.
TEST_F(Attest, StepCountsAreTheCheckpointsAndEveryTensorWasChanged) {
  resign("count.json", [](json& s) { s["predicate"]["evidence"][5]["steps_changed"] = 5; });
  auto [status, out] = verify("count.json", " --checkpoint run");
  EXPECT_EQ(status, 1) << out;
  EXPECT_EQ(line_of(out, "checkpoints").rfind("FAIL", 0), 0u) << out;
  EXPECT_NE(line_of(out, "checkpoints").find("tensor model.layers.0.self_attn.o_proj.weight was changed by 6 steps, "
                                             "the statement's evidence says 5"),
            std::string::npos)
      << out;
  EXPECT_EQ(line_of(out, "origin").rfind("PASS", 0), 0u) << out;
  resign("never.json", [](json& s) { s["predicate"]["evidence"][0]["steps_changed"] = 0; });
  std::tie(status, out) = verify("never.json");
  EXPECT_EQ(status, 1) << out;
  EXPECT_EQ(line_of(out, "origin").rfind("FAIL", 0), 0u) << out;
  EXPECT_NE(line_of(out, "origin").find("tensor model.embed_tokens.weight was changed by no optimizer step"),
            std::string::npos)
      << out;
}

TEST_F(Attest, ACheckpointThatIsNotTheChainsFails) {
  fs::copy(dir_ / "run", dir_ / "swapped", fs::copy_options::recursive);
  fs::remove_all(dir_ / "swapped" / "checkpoints" / "step_00000006");
  fs::copy(dir_ / "other" / "checkpoints" / "step_00000006", dir_ / "swapped" / "checkpoints" / "step_00000006",
           fs::copy_options::recursive);
  const auto [status, out] = verify("att.json", " --checkpoint swapped");
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(line_of(out, "checkpoints").find("step_00000006: manifest digest is not chain record step 6's"),
            std::string::npos)
      << out;
}

// ssiat-verify, the small build (no BLAS, MPI, HDF5; no -march), reaches the same verdicts.
TEST_F(Attest, SmallVerifierAgreesAndNeedsNoHeavyLibraries) {
  auto small = [](const std::string& file) {
    const std::string cmd = "cd '" + dir_.string() + "' && '" SSIAT_VERIFY_BIN "' " + file + " --pubkey k.pub > small.out 2>&1";
    const int rc = std::system(cmd.c_str());
    return std::make_pair(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(dir_ / "small.out"));
  };
  const auto [ok_status, ok_out] = small("att.json");
  EXPECT_EQ(ok_status, 0) << ok_out;
  EXPECT_NE(line_of(ok_out, "init").find("PASS     init         regenerated 21 tensors from seed 77"), std::string::npos)
      << ok_out;
  resign("seed78.json", [](json& s) { s["predicate"]["seed_block"]["master"]["seed"] = 78; });
  const auto [bad_status, bad_out] = small("seed78.json");
  EXPECT_EQ(bad_status, 1) << bad_out;
  EXPECT_EQ(line_of(bad_out, "init").rfind("FAIL", 0), 0u) << bad_out;
  // What it links and how it was compiled.
  ASSERT_EQ(std::system(("ldd '" SSIAT_VERIFY_BIN "' > '" + (dir_ / "ldd.txt").string() + "'").c_str()), 0);
  const std::string ldd = slurp(dir_ / "ldd.txt");
  for (const char* lib : {"openblas", "libblas", "libmpi", "hdf5", "cuda"}) EXPECT_EQ(ldd.find(lib), std::string::npos) << lib;
  const std::string cc = slurp(SSIAT_BINARY_DIR "/compile_commands.json");
  size_t at = 0, verify_units = 0;
  while ((at = cc.find("ssiat-verify.dir", at)) != std::string::npos) {
    const size_t end = cc.find('}', at);
    EXPECT_EQ(cc.substr(at, end - at).find("-march"), std::string::npos);
    verify_units++;
    at = end;
  }
  EXPECT_GE(verify_units, 10u);
}

// Replay retrains segments and must land on the recorded roots; weights that the declared training
// did not produce — here a checkpoint re-written with one weight changed, its chain record and the
// attestation re-made to match, so every other check passes — fail it.
TEST_F(Attest, ReplayReproducesSegmentsAndCatchesWeightsTrainingDidNotProduce) {
  const auto [status, out] = verify("att.json", " --checkpoint run --replay 1");
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(line_of(out, "replay").find("PASS     replay       replayed 1 segment (latest step 3 -> 6)"), std::string::npos)
      << out;
  // Across a resume boundary: the segment from step 3 to 6 was the run's second invocation.
  const std::string train = "train tiny.toml -q --run-dir resumed --set train.steps=6 --set schedule.warmup_steps=1 "
                            "--set checkpoint.interval=3";
  ASSERT_EQ(run_cli(dir_, train + " --stop-after 3").status, 0);
  ASSERT_EQ(run_cli(dir_, train + " --resume").status, 0);
  ASSERT_EQ(run_cli(dir_, "attest resumed --key k.key --out resumed.json").status, 0);
  const auto [rs, ro] = verify("resumed.json", " --checkpoint resumed --replay 1");
  EXPECT_EQ(rs, 0) << ro;
  EXPECT_EQ(line_of(ro, "replay").rfind("PASS", 0), 0u) << ro;

  // The forgery.
  fs::copy(dir_ / "run", dir_ / "forged", fs::copy_options::recursive);
  ssiat::StateRoots roots;
  const std::string digest = rewrite_step6_with_a_changed_weight(dir_ / "forged", &roots);
  auto chain = ssiat::read_chain(dir_ / "forged");
  ASSERT_EQ(chain.size(), 2u);
  chain[1].manifest_sha256 = digest;
  chain[1].weights_root = roots.weights;
  ssiat::write_chain(dir_ / "forged", chain);
  ASSERT_EQ(run_cli(dir_, "attest forged --key k.key --out forged.json").status, 0);
  const auto [fs_, fo] = verify("forged.json", " --checkpoint forged --replay 1");
  EXPECT_EQ(fs_, 1) << fo;
  for (const char* c : {"signature", "init", "chain", "checkpoints", "origin"})
    EXPECT_EQ(line_of(fo, c).rfind("PASS", 0), 0u) << c << "\n" << fo;
  EXPECT_NE(line_of(fo, "replay").find("replaying step_00000003 -> step 6 gives weights root"), std::string::npos) << fo;
}

// Lineage calibration (tiny runs standing in for ko-tiny): a short fine-tune of `run` correlates
// near 1 with it, an independent run (another seed) near 0, against the control of each run
// against its own init; a safetensors copy of the reference gives the same figures as its run
// directory.
TEST_F(Attest, LineageTellsAFineTuneFromAnIndependentRun) {
  fs::copy(dir_ / "run", dir_ / "finetune", fs::copy_options::recursive);
  ASSERT_EQ(run_cli(dir_, "train tiny.toml -q --run-dir finetune --set train.steps=9 --set schedule.warmup_steps=1 "
                          "--set checkpoint.interval=3 --resume")
                .status,
            0);
  ASSERT_EQ(run_cli(dir_, "attest finetune --key k.key --out ft.json").status, 0);
  ASSERT_EQ(run_cli(dir_, "attest other --key k.key --out other.json").status, 0);
  auto lineage = [](const std::string& att, const std::string& run, const std::string& ref) {
    const auto r = run_cli(dir_, "verify " + att + " --pubkey k.pub --checkpoint " + run + " --reference " + ref +
                                     " --json lineage.json");
    EXPECT_EQ(r.status, 0) << r.out;
    const json report = json::parse(slurp(dir_ / "lineage.json"));
    for (const auto& c : report["checks"])
      if (c["name"] == "lineage" && c.contains("data")) return c["data"];
    ADD_FAILURE() << "no lineage figures in the report of " << att << ":\n" << r.out;
    return json::object();
  };
  const json ft = lineage("ft.json", "finetune", "run");
  const json ind = lineage("other.json", "other", "run");
  EXPECT_GT(ft["mean_r_reference"].get<double>(), 0.9) << ft.dump();
  EXPECT_LT(std::abs(ind["mean_r_reference"].get<double>()), 0.1) << ind.dump();
  EXPECT_EQ(ft["matrices"], 16);
  // The same reference as a safetensors file (F32, written here from the run's last checkpoint).
  const auto ck = ssiat::read_checkpoint(*ssiat::latest_checkpoint(dir_ / "run"));
  json header = json::object();
  std::string body;
  for (const auto& [key, t] : ck.tensors) {
    if (key.rfind("param/", 0) != 0) continue;
    const size_t begin = body.size();
    body.append(reinterpret_cast<const char*>(t.data()), t.size() * sizeof(float));
    header[key.substr(6)] = {{"dtype", "F32"}, {"shape", ck.shapes.at(key)}, {"data_offsets", {begin, body.size()}}};
  }
  const std::string h = header.dump();
  std::string file(8, '\0');
  for (int i = 0; i < 8; i++) file[i] = static_cast<char>((static_cast<uint64_t>(h.size()) >> (8 * i)) & 0xff);
  write_file(dir_ / "run.safetensors", file + h + body);
  const json viafile = lineage("ft.json", "finetune", "run.safetensors");
  EXPECT_DOUBLE_EQ(viafile["mean_r_reference"].get<double>(), ft["mean_r_reference"].get<double>());
}

// init.from: a run whose tensors come from another run's weights is marked loaded:<digest> in its
// seed log and history, and verify rejects it (init: loaded, not drawn; origin: policy).
TEST_F(Attest, InitFromAWeightFileIsMarkedLoadedAndRejected) {
  ASSERT_EQ(run_cli(dir_, "train tiny.toml -q --run-dir loaded --set train.steps=3 --set schedule.warmup_steps=1 "
                          "--set init.from=other")
                .status,
            0);
  const std::string seeds = slurp(dir_ / "loaded" / "seeds.jsonl");
  size_t loaded = 0;
  for (size_t at = 0; (at = seeds.find("\"origin\":\"loaded:", at)) != std::string::npos; at++) loaded++;
  EXPECT_EQ(loaded, 21u);
  const json hist = json::parse(slurp(dir_ / "loaded" / "history.jsonl"));
  EXPECT_EQ(hist["tensor_files"][0]["path"], "other");
  EXPECT_EQ(hist["tensor_files"][0]["use"], "init.from");
  ASSERT_EQ(run_cli(dir_, "attest loaded --key k.key --out loaded.json").status, 0);
  const auto [status, out] = verify("loaded.json");
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(line_of(out, "init").find("tensor model.embed_tokens.weight was loaded from a weight file"), std::string::npos) << out;
  EXPECT_NE(line_of(out, "origin").find("has origin \"loaded:"), std::string::npos) << out;
}

// Sovereign mode: no weight file outside the run's own chain — init.from is refused, and so is
// resuming from a checkpoint the chain does not record (one planted with a weight changed).
TEST_F(Attest, SovereignModeRefusesForeignWeights) {
  const auto refused = run_cli(dir_, "train tiny.toml -q --run-dir sov0 --set train.steps=3 --set schedule.warmup_steps=1 "
                                     "--set init.from=other --set provenance.sovereign=true");
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("provenance.sovereign = true refuses init.from = \"other\""), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir_ / "sov0"));
  const std::string train = "train tiny.toml -q --set schedule.warmup_steps=1 --set checkpoint.interval=3 "
                            "--set provenance.sovereign=true --run-dir ";
  ASSERT_EQ(run_cli(dir_, train + "sov --set train.steps=6").status, 0);
  fs::copy(dir_ / "sov", dir_ / "sov_planted", fs::copy_options::recursive);
  ASSERT_EQ(run_cli(dir_, train + "sov --set train.steps=9 --resume").status, 0);  // its own checkpoint: fine
  rewrite_step6_with_a_changed_weight(dir_ / "sov_planted", nullptr);
  const auto planted = run_cli(dir_, train + "sov_planted --set train.steps=9 --resume");
  EXPECT_NE(planted.status, 0);
  EXPECT_NE(planted.err.find("step_00000006: provenance.sovereign = true: this checkpoint"), std::string::npos) << planted.err;
  EXPECT_NE(planted.err.find("is not a record of the run's chain.jsonl"), std::string::npos) << planted.err;
}

TEST_F(Attest, LooseKeyPermissionsAreRefusedInOneLine) {
  fs::copy_file(dir_ / "k.key", dir_ / "loose.key");
  ::chmod((dir_ / "loose.key").c_str(), 0644);
  const auto r = run_cli(dir_, "attest run --key loose.key --out never.json");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("loose.key: key file permissions 0644 are too open"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_FALSE(fs::exists(dir_ / "never.json"));
}

}  // namespace
