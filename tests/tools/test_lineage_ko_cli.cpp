// Lineage calibration on ko-tiny (issue 10; docs/provenance.md, check "lineage"): the model of
// recipes/ko-tiny.toml, unchanged (8 layers, d_model 256, 8 heads, 4 KV heads, d_ff 704, untied,
// vocab 4096), trained on real Korean text (tests/data/ko_sample.txt, validated on ko_heldout.txt)
// with our own BPE tokenizer learned from the same text. Run A (the recipe's seed) and run B
// (another seed) train 30 steps each at micro_batch 4, seq_len 128; F is a copy of A resumed for
// 10 more steps (a short fine-tune). `ssiat verify --checkpoint RUN --reference A --json` then
// reports, over ko-tiny's 58 weight matrices (8 layers x 7, the embedding and the untied lm_head):
//   F against its parent A:     mean centred correlation > 0.9, and > 0.9 for every matrix (each
//                               above that matrix's control);
//   B against A (independent):  |mean| < 0.1, and |r| < 0.1 for every matrix;
//   each run's control (its last checkpoint against its own regenerated init): present, and
//   strictly between B's |r| and F's r, so neither verdict could come from the control.
// The tokenizer: the 86 KB sample gives 4,096 pieces only when pairs seen once may merge
// (--min-pair-count 1; the default 2 stops at 3,450 pieces), which keeps ko-tiny's vocabulary and
// so its matrix shapes. Only train, data, tokenizer, schedule and checkpoint keys (and B's seed)
// are overridden.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/common/cli.h"
#include "tests/tools/cli_test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using ssiat::testing::run_cli;
using ssiat::testing::slurp;

constexpr int kLayers = 8;                   // recipes/ko-tiny.toml [model] n_layer
constexpr int kMatrices = kLayers * 7 + 2;   // q, k, v, o, gate, up, down per layer; embed; lm_head
constexpr int kTensors = kLayers * 9 + 3;    // + two norms per layer; the final norm
constexpr int kVocab = 4096;                 // recipes/ko-tiny.toml [model] vocab_size

// Overrides of recipes/ko-tiny.toml: our files, a short run, a checkpoint every 10 steps.
constexpr const char* kSets =
    " -q --set tokenizer.path=tok --set data.train=prep/train --set data.val=prep/val"
    " --set train.micro_batch=4 --set train.seq_len=128 --set train.eval_interval=0 --set train.eval_batches=2"
    " --set train.sample_tokens=0 --set schedule.warmup_steps=5 --set checkpoint.interval=10 --set checkpoint.keep=1";

class LineageKo : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("ssiat_lineage_ko_" + std::to_string(::getpid()));
    failure_ = ssiat::testing::prepare_ko_tiny_dir(dir_, 20261123);
    if (!failure_.empty()) return;
    const std::string train = std::string("train ko-tiny.toml") + kSets;
    const std::pair<std::string, std::string> steps[] = {
        {"train A", train + " --run-dir A --set train.steps=30"},
        {"train B", train + " --run-dir B --set train.steps=30 --set seed=7"},
        {"fine-tune F", train + " --run-dir F --set train.steps=40 --resume"},  // F: a copy of A
        {"keygen", "keygen --out k"},
        {"attest F", "attest F --key k.key --out f.json"},
        {"attest B", "attest B --key k.key --out b.json"},
        {"verify F", "verify f.json --pubkey k.pub --checkpoint F --reference A --json f_report.json"},
        {"verify B", "verify b.json --pubkey k.pub --checkpoint B --reference A --json b_report.json"},
    };
    for (const auto& [what, args] : steps) {
      if (what == "fine-tune F") fs::copy(dir_ / "A", dir_ / "F", fs::copy_options::recursive);
      const auto r = run_cli(dir_, args);
      if (r.status != 0) {
        failure_ = what + " (ssiat " + args + ") exited " + std::to_string(r.status) + ":\n" + r.out + r.err;
        return;
      }
      if (what == "verify F") f_out_ = r.out;
      if (what == "verify B") b_out_ = r.out;
    }
    f_ = lineage_of(dir_ / "f_report.json");
    b_ = lineage_of(dir_ / "b_report.json");
    if (f_.is_null() || b_.is_null()) {
      failure_ = "no lineage figures in a report:\n" + f_out_ + b_out_;
      return;
    }
    std::printf("ko-tiny lineage: fine-tune r %.4f (control %.4f), independent r %.4f (control %.4f), %d matrices\n",
                f_.value("mean_r_reference", NAN), f_.value("mean_r_own_init", NAN), b_.value("mean_r_reference", NAN),
                b_.value("mean_r_own_init", NAN), f_.value("matrices", -1));
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override { ASSERT_TRUE(failure_.empty()) << failure_; }

  // The "data" of the lineage check in a verify --json report; null if none.
  static json lineage_of(const fs::path& report) {
    const json j = json::parse(slurp(report), nullptr, false);
    if (j.is_discarded() || !j.contains("checks")) return nullptr;
    for (const auto& c : j["checks"])
      if (c.value("name", "") == "lineage" && c.contains("data") && c["data"].is_object()) return c["data"];
    return nullptr;
  }
  // The weight matrices of a lineage report: the tensors whose control is a number (a norm
  // weight starts at ones, so its correlation with its init is undefined: null).
  static std::vector<json> matrices(const json& data) {
    std::vector<json> m;
    for (const auto& t : data.at("tensors"))
      if (t.at("r_own_init").is_number()) m.push_back(t);
    return m;
  }

  static inline fs::path dir_;
  static inline std::string failure_, f_out_, b_out_;
  static inline json f_, b_;
};

// One test, so that ctest (one process per test) trains the three runs once.
TEST_F(LineageKo, TellsAFineTuneFromAnIndependentRun) {
  // The fine-tune against its parent: near 1, for the mean and every matrix, and above its own
  // control matrix by matrix (the fine-tune moved less than A's training did).
  EXPECT_NE(f_out_.find("PASS     lineage      mean centred correlation with A: "), std::string::npos) << f_out_;
  EXPECT_GT(f_.at("mean_r_reference").get<double>(), 0.9) << f_.dump();
  for (const auto& t : matrices(f_)) {
    ASSERT_TRUE(t.at("r_reference").is_number()) << t.dump();
    EXPECT_GT(t.at("r_reference").get<double>(), 0.9) << t.dump();
    EXPECT_GT(t.at("r_reference").get<double>(), t.at("r_own_init").get<double>()) << t.dump();
  }
  // The independent run against A: near 0, for the mean and every matrix.
  EXPECT_NE(b_out_.find("PASS     lineage      mean centred correlation with A: "), std::string::npos) << b_out_;
  EXPECT_LT(std::abs(b_.at("mean_r_reference").get<double>()), 0.1) << b_.dump();
  for (const auto& t : matrices(b_)) {
    ASSERT_TRUE(t.at("r_reference").is_number()) << t.dump();
    EXPECT_LT(std::abs(t.at("r_reference").get<double>()), 0.1) << t.dump();
  }
  // Each run's control (its last checkpoint against its own regenerated init) is a figure of its
  // own, strictly between: training moved the weights but did not erase the init.
  const double hi = f_.at("mean_r_reference").get<double>(), lo = std::abs(b_.at("mean_r_reference").get<double>());
  for (const json* d : {&f_, &b_}) {
    ASSERT_TRUE(d->contains("mean_r_own_init")) << d->dump();
    const double control = d->at("mean_r_own_init").get<double>();
    EXPECT_GT(control, lo) << d->dump();
    EXPECT_LT(control, hi) << d->dump();
  }
  EXPECT_NE(f_out_.find("(control, this run against its own init: "), std::string::npos) << f_out_;
  // Every weight matrix of ko-tiny is matched, in both runs, and the data came through a
  // tokenizer of ko-tiny's vocabulary size.
  for (const json* d : {&f_, &b_}) {
    EXPECT_EQ(d->at("matrices").get<int>(), kMatrices) << d->dump();
    EXPECT_EQ(d->at("tensors").size(), static_cast<size_t>(kTensors));
    EXPECT_EQ(matrices(*d).size(), static_cast<size_t>(kMatrices));
    EXPECT_EQ(d->at("reference"), "A");
  }
  EXPECT_NE(f_out_.find("over " + std::to_string(kMatrices) + " matrices"), std::string::npos) << f_out_;
  EXPECT_NE(f_out_.find("regenerated " + std::to_string(kTensors) + " tensors from seed 20261123"), std::string::npos) << f_out_;
  EXPECT_NE(b_out_.find("regenerated " + std::to_string(kTensors) + " tensors from seed 7"), std::string::npos) << b_out_;
  const json tok = json::parse(slurp(dir_ / "tok" / "tokenizer.ssiat.json"));
  EXPECT_EQ(tok.at("pieces").size(), static_cast<size_t>(kVocab));
}

}  // namespace
