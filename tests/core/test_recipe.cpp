// Tests for core/recipe.h: values and defaults, one-line errors naming file, key and line for
// each error class, --set overrides, the recipe_to_toml round trip, and that loading writes
// nothing. Every recipe is a temporary file written by the test itself. Expected messages and
// defaults come from the header and the task's spec (docs/recipes.md), not from running the code.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/recipe.h"

namespace fs = std::filesystem;

namespace ssiat {
namespace {

// A minimal valid recipe; the line numbers below are used by the error tests.
const std::vector<std::string> kBase = {
    "seed = 7",                 // 1
    "[model]",                  // 2
    "vocab_size = 300",         // 3
    "n_layer = 2",              // 4
    "d_model = 64",             // 5
    "n_head = 4",               // 6
    "n_kv_head = 2",            // 7
    "d_ff = 128",               // 8
    "max_seq_len = 64",         // 9
    "[data]",                   // 10
    "train = \"data/tiny\"",    // 11
    "[train]",                  // 12
    "steps = 10",               // 13
    "micro_batch = 2",          // 14
    "seq_len = 32",             // 15
    "[optim]",                  // 16
    "lr = 0.001",               // 17
};

class RecipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("ssiat_recipe_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& text, const std::string& name = "r.toml") {
    std::string p = (dir_ / name).string();
    std::ofstream f(p, std::ios::binary);
    f << text;
    return p;
  }
  static std::string join(const std::vector<std::string>& lines) {
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
  }
  // kBase with line `n` (1-based) replaced by `text` (which may hold several lines).
  static std::vector<std::string> with_line(int n, const std::string& text) {
    auto lines = kBase;
    lines[n - 1] = text;
    return lines;
  }
  // The ConfigError message of loading `lines`; fails the test if it loads or throws another type.
  std::string error_of(const std::vector<std::string>& lines, const std::vector<std::string>& overrides = {}) {
    std::string p = write(join(lines));
    try {
      load_recipe(p, overrides);
    } catch (const ConfigError& e) {
      std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
      return m;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a ConfigError: " << e.what();
      return "";
    }
    ADD_FAILURE() << "loaded without error";
    return "";
  }
  std::string path() const { return (dir_ / "r.toml").string(); }

  fs::path dir_;
};

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

TEST_F(RecipeTest, ValidRecipeHasValuesAndDefaults) {
  std::string text = join(kBase);
  std::string p = write(text);
  Recipe r = load_recipe(p);
  EXPECT_EQ(r.path, p);
  EXPECT_EQ(r.text, text);
  EXPECT_TRUE(r.overrides.empty());
  ASSERT_TRUE(r.seed.has_value());
  EXPECT_EQ(*r.seed, 7u);
  EXPECT_EQ(r.model.vocab_size, 300);
  EXPECT_EQ(r.model.n_layer, 2);
  EXPECT_EQ(r.model.d_model, 64);
  EXPECT_EQ(r.model.n_head, 4);
  EXPECT_EQ(r.model.n_kv_head, 2);
  EXPECT_EQ(r.model.d_ff, 128);
  EXPECT_EQ(r.model.max_seq_len, 64);
  EXPECT_EQ(r.data.train, "data/tiny");
  EXPECT_EQ(r.train.steps, 10);
  EXPECT_EQ(r.train.micro_batch, 2);
  EXPECT_EQ(r.train.seq_len, 32);
  EXPECT_DOUBLE_EQ(r.optim.lr, 0.001);
  // Defaults (core/recipe.h).
  EXPECT_FALSE(r.model.tied_embeddings);
  EXPECT_EQ(r.model.rope_theta, 10000.0);
  EXPECT_EQ(r.model.norm_eps, 1e-5);
  EXPECT_EQ(r.model.init_std, 0.02);
  EXPECT_EQ(r.tokenizer.kind, TokenizerKind::kByte);
  EXPECT_EQ(r.tokenizer.path, "");
  EXPECT_EQ(r.data.val, "");
  EXPECT_EQ(r.train.grad_accum, 1);
  EXPECT_EQ(r.train.eval_interval, 0);
  EXPECT_EQ(r.train.eval_batches, 8);
  EXPECT_EQ(r.train.log_interval, 1);
  EXPECT_EQ(r.train.sample_tokens, 0);
  EXPECT_EQ(r.train.sample_prompt, "");
  EXPECT_EQ(r.optim.min_lr, 0.0);
  EXPECT_EQ(r.optim.beta1, 0.9);
  EXPECT_EQ(r.optim.beta2, 0.95);
  EXPECT_EQ(r.optim.eps, 1e-8);
  EXPECT_EQ(r.optim.weight_decay, 0.1);
  EXPECT_EQ(r.optim.grad_clip, 1.0);
  EXPECT_EQ(r.schedule.kind, ScheduleKind::kCosine);
  EXPECT_EQ(r.schedule.warmup_steps, 0);
  EXPECT_EQ(r.schedule.decay_fraction, 0.2);
  EXPECT_EQ(r.checkpoint.interval, 0);
  EXPECT_EQ(r.checkpoint.keep, 0);
  EXPECT_EQ(r.parallel.dp, 1);
  EXPECT_EQ(r.parallel.tp, 1);
  EXPECT_FALSE(r.parallel.zero1);
}

TEST_F(RecipeTest, OptionalKeysAndSpecialCases) {
  auto lines = kBase;
  lines[0] = "# no seed here";
  lines[6] = "# n_kv_head absent: = n_head";
  lines[16] = "lr = 1";  // an integer where a float is expected
  for (const char* l : {"min_lr = 0", "beta1 = 0.8", "grad_clip = 0", "[schedule]", "kind = \"wsd\"",
                        "warmup_steps = 10", "decay_fraction = 0.5", "[tokenizer]", "kind = \"byte\"",
                        "[checkpoint]", "interval = 5", "keep = 2"})
    lines.push_back(l);
  lines.insert(lines.begin() + 8, "tied_embeddings = true");
  Recipe r = load_recipe(write(join(lines)));
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_EQ(r.model.n_kv_head, 4);
  EXPECT_TRUE(r.model.tied_embeddings);
  EXPECT_EQ(r.optim.lr, 1.0);
  EXPECT_EQ(r.optim.beta1, 0.8);
  EXPECT_EQ(r.optim.grad_clip, 0.0);
  EXPECT_EQ(r.schedule.kind, ScheduleKind::kWsd);
  EXPECT_EQ(r.schedule.warmup_steps, 10);  // == steps is allowed
  EXPECT_EQ(r.schedule.decay_fraction, 0.5);
  EXPECT_EQ(r.checkpoint.interval, 5);
  EXPECT_EQ(r.checkpoint.keep, 2);

  // n_kv_head = 0 also means n_head; the largest seed TOML can hold is accepted.
  Recipe r2 = load_recipe(write(join(with_line(7, "n_kv_head = 0"))));
  EXPECT_EQ(r2.model.n_kv_head, 4);
  Recipe r3 = load_recipe(write(join(with_line(1, "seed = 9223372036854775807"))));
  EXPECT_EQ(*r3.seed, 9223372036854775807ull);
  Recipe r4 = load_recipe(write(join(with_line(1, "seed = 0"))));
  EXPECT_EQ(*r4.seed, 0u);
}

TEST_F(RecipeTest, TextIsVerbatimAndLinesCountWithCrlf) {
  std::string text;
  for (const auto& l : kBase) text += l + "   # comment é\r\n";
  std::string p = write(text);
  Recipe r = load_recipe(p);
  EXPECT_EQ(r.text, text);
  auto lines = kBase;
  lines[12] = "steps = \"x\"";
  std::string bad;
  for (const auto& l : lines) bad += l + "\r\n";
  write(bad);
  try {
    load_recipe(p);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_TRUE(starts_with(e.what(), p + ":13: ")) << e.what();
  }
}

TEST_F(RecipeTest, UnknownKeyNamesFileLineKeyAndSuggestion) {
  std::string m = error_of(with_line(7, "n_kv_heads = 2"));
  EXPECT_EQ(m, path() + ":7: unknown key 'model.n_kv_heads' (did you mean 'model.n_kv_head'?)");
  m = error_of(with_line(7, "completely_unrelated = 2"));
  EXPECT_EQ(m, path() + ":7: unknown key 'model.completely_unrelated'");
  // A key of another section is suggested by its name.
  m = error_of(with_line(1, "lr = 0.1"));
  EXPECT_EQ(m, path() + ":1: unknown key 'lr' (did you mean 'optim.lr'?)");
  m = error_of(with_line(1, "sed = 3"));
  EXPECT_EQ(m, path() + ":1: unknown key 'sed' (did you mean 'seed'?)");
  // A sub-table of a known section is an unknown key.
  auto lines = kBase;
  lines.push_back("[model.extra]");
  lines.push_back("x = 1");
  m = error_of(lines);
  EXPECT_TRUE(starts_with(m, path() + ":18: unknown key 'model.extra'")) << m;
}

TEST_F(RecipeTest, UnknownSectionIsAnError) {
  auto lines = kBase;
  lines.push_back("[optimizer]");
  lines.push_back("lr = 1");
  std::string m = error_of(lines);
  EXPECT_TRUE(starts_with(m, path() + ":18: unknown section 'optimizer'")) << m;
  lines = kBase;
  lines.push_back("[chekpoint]");
  m = error_of(lines);
  EXPECT_EQ(m, path() + ":18: unknown section 'chekpoint' (did you mean 'checkpoint'?)");
  // A known section that is not a table.
  m = error_of(with_line(1, "checkpoint = 3"));
  EXPECT_EQ(m, path() + ":1: 'checkpoint' must be a table, got integer");
}

TEST_F(RecipeTest, WrongTypeNamesKeyAndTypes) {
  EXPECT_EQ(error_of(with_line(13, "steps = \"ten\"")), path() + ":13: 'train.steps' must be an integer, got string");
  EXPECT_EQ(error_of(with_line(13, "steps = 10.0")), path() + ":13: 'train.steps' must be an integer, got float");
  EXPECT_EQ(error_of(with_line(17, "lr = \"fast\"")), path() + ":17: 'optim.lr' must be a number, got string");
  EXPECT_EQ(error_of(with_line(11, "train = 5")), path() + ":11: 'data.train' must be a string, got integer");
  EXPECT_EQ(error_of(with_line(11, "train = [\"a\"]")), path() + ":11: 'data.train' must be a string, got array");
  EXPECT_EQ(error_of(with_line(7, "n_kv_head = true")), path() + ":7: 'model.n_kv_head' must be an integer, got boolean");
  EXPECT_EQ(error_of(with_line(1, "seed = \"42\"")), path() + ":1: 'seed' must be an integer, got string");
  EXPECT_EQ(error_of(with_line(1, "seed = 1.5")), path() + ":1: 'seed' must be an integer, got float");
  auto lines = with_line(9, "max_seq_len = 64\ntied_embeddings = 1");
  EXPECT_EQ(error_of(lines), path() + ":10: 'model.tied_embeddings' must be a boolean, got integer");
}

TEST_F(RecipeTest, OutOfRangeNamesKeyValueAndLine) {
  EXPECT_EQ(error_of(with_line(6, "n_head = 0")), path() + ":6: 'model.n_head' = 0 is out of range (must be >= 1)");
  EXPECT_EQ(error_of(with_line(13, "steps = -5")), path() + ":13: 'train.steps' = -5 is out of range (must be >= 1)");
  EXPECT_EQ(error_of(with_line(1, "seed = -1")), path() + ":1: 'seed' = -1 is out of range (must be >= 0 and < 2^63)");
  std::string m = error_of(with_line(17, "lr = 0"));
  EXPECT_TRUE(starts_with(m, path() + ":17: 'optim.lr' = 0") && m.find("out of range") != std::string::npos) << m;
  m = error_of(with_line(17, "lr = nan"));
  EXPECT_TRUE(starts_with(m, path() + ":17: 'optim.lr' = nan is out of range")) << m;
  m = error_of(with_line(17, "lr = inf"));
  EXPECT_TRUE(starts_with(m, path() + ":17: 'optim.lr' = inf is out of range")) << m;
  m = error_of(with_line(17, "lr = 0.001\nbeta2 = 1.0"));
  EXPECT_TRUE(starts_with(m, path() + ":18: 'optim.beta2' = 1")) << m;
  m = error_of(with_line(3, "vocab_size = 3000000000"));
  EXPECT_TRUE(starts_with(m, path() + ":3: 'model.vocab_size' = 3000000000 is out of range")) << m;
  m = error_of(with_line(11, "train = \"\""));
  EXPECT_TRUE(starts_with(m, path() + ":11: 'data.train'")) << m;
  m = error_of(with_line(7, "n_kv_head = -2"));
  EXPECT_TRUE(starts_with(m, path() + ":7: 'model.n_kv_head' = -2 is out of range")) << m;
  auto lines = kBase;
  lines.push_back("[schedule]");
  lines.push_back("decay_fraction = 1.5");
  m = error_of(lines);
  EXPECT_TRUE(starts_with(m, path() + ":19: 'schedule.decay_fraction' = 1.5 is out of range")) << m;
}

TEST_F(RecipeTest, CrossChecksBlameOneKeyAndItsLine) {
  std::string m = error_of(with_line(6, "n_head = 3"));  // 64 % 3 != 0
  EXPECT_TRUE(starts_with(m, path() + ":6: 'model.n_head' = 3")) << m;
  m = error_of(with_line(7, "n_kv_head = 3"));  // 4 % 3 != 0
  EXPECT_TRUE(starts_with(m, path() + ":7: 'model.n_kv_head' = 3")) << m;
  m = error_of(with_line(5, "d_model = 20"));  // head_dim 5 is odd
  EXPECT_TRUE(starts_with(m, path() + ":5: 'model.d_model' = 20")) << m;
  EXPECT_NE(m.find("RoPE"), std::string::npos) << m;
  m = error_of(with_line(15, "seq_len = 65"));  // > max_seq_len 64
  EXPECT_TRUE(starts_with(m, path() + ":15: 'train.seq_len' = 65")) << m;
  EXPECT_NE(m.find("max_seq_len"), std::string::npos) << m;
  m = error_of(with_line(17, "lr = 0.001\nmin_lr = 0.01"));
  EXPECT_TRUE(starts_with(m, path() + ":18: 'optim.min_lr' = 0.01")) << m;
  auto lines = kBase;
  lines.push_back("[schedule]");
  lines.push_back("warmup_steps = 11");
  m = error_of(lines);
  EXPECT_TRUE(starts_with(m, path() + ":19: 'schedule.warmup_steps' = 11")) << m;
  m = error_of(with_line(3, "vocab_size = 257"));  // byte tokenizer needs 258
  EXPECT_TRUE(starts_with(m, path() + ":3: 'model.vocab_size' = 257")) << m;
  EXPECT_NE(m.find("258"), std::string::npos) << m;
  EXPECT_NO_THROW(load_recipe(write(join(with_line(3, "vocab_size = 258")))));
}

TEST_F(RecipeTest, UnknownEnumValues) {
  auto lines = kBase;
  lines.push_back("[schedule]");
  lines.push_back("kind = \"linear\"");
  std::string m = error_of(lines);
  EXPECT_TRUE(starts_with(m, path() + ":19: 'schedule.kind' = \"linear\"")) << m;
  lines = kBase;
  lines.push_back("[tokenizer]");
  lines.push_back("kind = \"wordpiece\"");
  m = error_of(lines);
  EXPECT_TRUE(starts_with(m, path() + ":19: 'tokenizer.kind' = \"wordpiece\"")) << m;
  // "bpe" needs the directory its files are in.
  lines.back() = "kind = \"bpe\"";
  m = error_of(lines);
  EXPECT_NE(m.find("'tokenizer.path' is required"), std::string::npos) << m;
}

TEST_F(RecipeTest, ParseErrorHasLineAndColumn) {
  std::string m = error_of(with_line(13, "steps = = 3"));
  EXPECT_TRUE(starts_with(m, path() + ":13:")) << m;
  // FILE:LINE:COL: description, the column a positive number.
  std::string rest = m.substr((path() + ":13:").size());
  ASSERT_FALSE(rest.empty());
  EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(rest[0]))) << m;
  EXPECT_NE(rest.find(": "), std::string::npos) << m;
  // A duplicate key is a TOML error too.
  m = error_of(with_line(14, "steps = 11"));
  EXPECT_TRUE(starts_with(m, path() + ":14:")) << m;
}

TEST_F(RecipeTest, MissingRequiredKeysAreNamed) {
  auto lines = with_line(8, "# no d_ff");
  std::string m = error_of(lines);
  EXPECT_TRUE(starts_with(m, path() + ":")) << m;
  EXPECT_NE(m.find("missing required key"), std::string::npos) << m;
  EXPECT_NE(m.find("'model.d_ff'"), std::string::npos) << m;
  EXPECT_NE(m.find("line 2"), std::string::npos) << m;  // where [model] is
  // Without the [optim] section: optim.lr missing, both named when d_ff is also gone.
  lines.resize(15);
  m = error_of(lines);
  EXPECT_NE(m.find("'model.d_ff'"), std::string::npos) << m;
  EXPECT_NE(m.find("'optim.lr'"), std::string::npos) << m;
  EXPECT_NE(m.find("[optim]"), std::string::npos) << m;
}

TEST_F(RecipeTest, MissingFileCannotBeRead) {
  std::string p = (dir_ / "absent.toml").string();
  try {
    load_recipe(p);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), p + ": cannot read recipe");
  }
  try {
    load_recipe(dir_.string());  // a directory is not a recipe
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), dir_.string() + ": cannot read recipe");
  }
}

TEST_F(RecipeTest, OverridesApplyWithTomlValues) {
  auto lines = with_line(13, "# steps given by --set");
  std::string p = write(join(lines));
  std::vector<std::string> ov = {"train.steps=20",
                                 "seed=5",
                                 "optim.lr=3e-4",
                                 "optim.beta1 = 0.5",
                                 "model.tied_embeddings=true",
                                 "train.sample_prompt=안녕 하세요",
                                 "data.val=\"val # dir\"",
                                 "data.train=2024",
                                 "schedule.kind=wsd",
                                 "checkpoint.keep=1",
                                 "checkpoint.keep=3"};
  Recipe r = load_recipe(p, ov);
  EXPECT_EQ(r.overrides, ov);
  EXPECT_EQ(r.train.steps, 20);
  EXPECT_EQ(*r.seed, 5u);
  EXPECT_EQ(r.optim.lr, 3e-4);
  EXPECT_EQ(r.optim.beta1, 0.5);
  EXPECT_TRUE(r.model.tied_embeddings);
  EXPECT_EQ(r.train.sample_prompt, "안녕 하세요");
  EXPECT_EQ(r.data.val, "val # dir");
  EXPECT_EQ(r.data.train, "2024");  // a string key takes the raw text of a non-string value
  EXPECT_EQ(r.schedule.kind, ScheduleKind::kWsd);
  EXPECT_EQ(r.checkpoint.keep, 3);  // the last one wins
  EXPECT_EQ(r.text, join(lines));   // the file text is untouched by overrides
}

TEST_F(RecipeTest, OverrideErrorsNameTheOverride) {
  EXPECT_EQ(error_of(kBase, {"train.steps=abc"}), "--set train.steps=abc: 'train.steps' must be an integer, got string");
  EXPECT_EQ(error_of(kBase, {"model.n_head=0"}),
            "--set model.n_head=0: 'model.n_head' = 0 is out of range (must be >= 1)");
  EXPECT_EQ(error_of(kBase, {"train.stepz=5"}), "--set train.stepz=5: unknown key 'train.stepz' (did you mean 'train.steps'?)");
  EXPECT_EQ(error_of(kBase, {"nothing.here=5"}), "--set nothing.here=5: unknown key 'nothing.here'");
  EXPECT_EQ(error_of(kBase, {"stepz=5"}), "--set stepz=5: unknown key 'stepz' (did you mean 'train.steps'?)");
  EXPECT_TRUE(starts_with(error_of(kBase, {"model=5"}), "--set model=5: unknown key 'model'"));
  EXPECT_TRUE(starts_with(error_of(kBase, {"train.steps"}), "--set train.steps: "));
  EXPECT_EQ(error_of(kBase, {"seed=-3"}), "--set seed=-3: 'seed' = -3 is out of range (must be >= 0 and < 2^63)");
  // Cross-checks blame the override that set the blamed key.
  std::string m = error_of(kBase, {"train.seq_len=128"});
  EXPECT_TRUE(starts_with(m, "--set train.seq_len=128: 'train.seq_len' = 128")) << m;
  // An override that fixes a bad file value makes the recipe valid.
  EXPECT_NO_THROW(load_recipe(write(join(with_line(6, "n_head = 0"))), {"model.n_head=4"}));
  // The raw text fallback must be valid UTF-8.
  m = error_of(kBase, {"train.sample_prompt=\xff\xfe"});
  EXPECT_NE(m.find("UTF-8"), std::string::npos) << m;
}

TEST_F(RecipeTest, OverrideWithNewlineIsNotSmuggledIn) {
  // "5\nseed = 3" is more than one TOML value: it is taken as a string, not as two keys.
  std::string p = write(join(kBase));
  try {
    load_recipe(p, {"train.steps=5\nseed = 3"});
    FAIL();
  } catch (const ConfigError& e) {
    // The message stays one line: the newline of the override is shown escaped.
    EXPECT_EQ(std::string(e.what()), "--set train.steps=5\\nseed = 3: 'train.steps' must be an integer, got string");
  }
}

// Every key of docs/recipes.md, in canonical order.
const std::vector<std::pair<std::string, std::vector<std::string>>> kAllKeys = {
    {"model",
     {"vocab_size", "n_layer", "d_model", "n_head", "n_kv_head", "d_ff", "max_seq_len", "tied_embeddings",
      "rope_theta", "norm_eps", "init_std"}},
    {"tokenizer", {"kind", "path"}},
    {"data", {"train", "val"}},
    {"train",
     {"steps", "micro_batch", "seq_len", "grad_accum", "eval_interval", "eval_batches", "log_interval",
      "sample_tokens", "sample_prompt"}},
    {"optim", {"lr", "min_lr", "beta1", "beta2", "eps", "weight_decay", "grad_clip"}},
    {"schedule", {"kind", "warmup_steps", "decay_fraction"}},
    {"checkpoint", {"interval", "keep"}},
    {"parallel", {"dp", "tp", "zero1"}},
};

void expect_same_config(const Recipe& a, const Recipe& b) {
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_TRUE(a.model == b.model);
  EXPECT_TRUE(a.tokenizer == b.tokenizer);
  EXPECT_TRUE(a.data == b.data);
  EXPECT_TRUE(a.train == b.train);
  EXPECT_TRUE(a.optim == b.optim);
  EXPECT_TRUE(a.schedule == b.schedule);
  EXPECT_TRUE(a.checkpoint == b.checkpoint);
  EXPECT_TRUE(a.parallel == b.parallel);
}

TEST_F(RecipeTest, RoundTripThroughCanonicalToml) {
  std::string p = write(join(kBase));
  Recipe a = load_recipe(p, {"seed=9223372036854775807", "optim.lr=0.1", "optim.min_lr=0.030000000000000002",
                             "optim.eps=1e-300", "model.norm_eps=1.0000000000000002e-06",
                             "model.rope_theta=500000", "schedule.decay_fraction=0.3333333333333333",
                             "train.sample_prompt=\"tab\\there \\\"q\\\" back\\\\slash nl\\n bell\\u0007 del\\u007F 한국어\"",
                             "data.val=data/val", "tokenizer.path=tok dir", "schedule.kind=wsd",
                             "model.tied_embeddings=true", "train.eval_interval=3", "parallel.dp=3",
                             "parallel.tp=2", "parallel.zero1=true"});
  EXPECT_EQ(a.parallel, (ParallelConfig{3, 2, true}));
  EXPECT_EQ(a.train.sample_prompt, "tab\there \"q\" back\\slash nl\n bell\x07 del\x7f 한국어");
  std::string canon = recipe_to_toml(a);
  std::string p2 = write(canon, "canon.toml");
  Recipe b = load_recipe(p2);
  expect_same_config(a, b);
  EXPECT_EQ(b.text, canon);
  // The canonical text is a fixed point.
  EXPECT_EQ(recipe_to_toml(b), canon);

  // Every key appears, sections in the fixed order, each key in its section.
  size_t pos = 0;
  for (const auto& [sec, keys] : kAllKeys) {
    size_t s = canon.find("\n[" + sec + "]\n", pos);
    ASSERT_NE(s, std::string::npos) << sec;
    pos = s;
    for (const auto& k : keys) {
      size_t kpos = canon.find("\n" + k + " = ", pos);
      ASSERT_NE(kpos, std::string::npos) << sec << "." << k;
      pos = kpos;
    }
  }

  // Without a seed, the canonical text has none either.
  Recipe c = load_recipe(write(join(with_line(1, "# none"))));
  Recipe d = load_recipe(write(recipe_to_toml(c), "canon2.toml"));
  EXPECT_FALSE(d.seed.has_value());
  expect_same_config(c, d);
}

using Snapshot = std::map<std::string, std::pair<std::string, fs::file_time_type>>;

Snapshot snapshot(const fs::path& dir) {
  Snapshot s;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    std::string content;
    if (e.is_regular_file()) {
      std::ifstream f(e.path(), std::ios::binary);
      std::ostringstream ss;
      ss << f.rdbuf();
      content = ss.str();
    }
    s[e.path().string()] = {content, fs::last_write_time(e.path())};
  }
  return s;
}

TEST_F(RecipeTest, LoadingWritesNothing) {
  std::string p = write(join(kBase));
  write(join(with_line(13, "steps = \"bad\"")), "bad.toml");
  Snapshot before = snapshot(dir_);
  auto dir_time = fs::last_write_time(dir_);
  EXPECT_NO_THROW(load_recipe(p, {"train.steps=3"}));
  EXPECT_THROW(load_recipe((dir_ / "bad.toml").string()), ConfigError);
  EXPECT_THROW(load_recipe(p, {"train.steps=x"}), ConfigError);
  EXPECT_THROW(load_recipe((dir_ / "absent.toml").string()), ConfigError);
  EXPECT_EQ(snapshot(dir_), before);
  EXPECT_EQ(fs::last_write_time(dir_), dir_time);
}

TEST(RecipeValidate, StructsThrowNamingKeyAndValueWithoutFile) {
  ModelConfig m;
  m.vocab_size = 300;
  m.n_layer = 1;
  m.d_model = 8;
  m.n_head = 0;
  m.n_kv_head = 1;
  m.d_ff = 8;
  m.max_seq_len = 8;
  try {
    m.validate();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "'model.n_head' = 0 is out of range (must be >= 1)");
  }
  m.n_head = 2;
  EXPECT_NO_THROW(m.validate());
  OptimConfig o;
  o.lr = 1e-3;
  EXPECT_NO_THROW(o.validate());
  o.beta1 = -0.1;
  EXPECT_THROW(o.validate(), ConfigError);
  Recipe r;
  r.seed = 1ull << 63;  // not representable in TOML
  EXPECT_THROW(r.validate(), ConfigError);
}

}  // namespace
}  // namespace ssiat

// ---- parse_recipe and first_recipe_difference (strict resume) --------------------------

namespace ssiat {
namespace {

TEST_F(RecipeTest, ParseRecipeEqualsLoadingTheSameBytes) {
  const std::string text = join(kBase);
  const Recipe a = load_recipe(write(text), {"optim.lr=0.002"});
  const Recipe b = parse_recipe(text, path(), {"optim.lr=0.002"});
  EXPECT_TRUE(a == b);
  try {
    parse_recipe(join(with_line(13, "steps = \"ten\"")), "mem.toml");
    FAIL() << "loaded";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(starts_with(e.what(), "mem.toml:13: ")) << e.what();
  }
}

TEST_F(RecipeTest, InvalidUtf8IsRefusedWithLineAndByte) {
  // Line 11 is `train = "data/tiny"`; a lone continuation byte replaces its 't' of "tiny".
  std::string text = join(kBase);
  const size_t at = text.find("tiny");
  text[at] = '\x98';
  const std::string want = path() + ":11: not valid UTF-8 at byte " + std::to_string(at);
  try {
    load_recipe(write(text));
    FAIL() << "loaded";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), want);
  }
  EXPECT_THROW(first_recipe_difference("a = 1\n", "a = \"\xc0\x80\"\n"), ConfigError);  // overlong NUL
}

TEST_F(RecipeTest, ParseErrorQuotingTheInputStaysOnOneLine) {
  // toml++ quotes what it saw ("f" and the newline after it): the message must stay one line.
  const std::string m = error_of(with_line(9, "max_seq_len = 64\ntied_embeddings = f"));
  EXPECT_TRUE(starts_with(m, path() + ":10:")) << m;
  EXPECT_NE(m.find("\\n"), std::string::npos) << m;
  const std::string esc = error_of(with_line(9, "max_seq_len = 64\ntied_embeddings = f\x1b"));
  EXPECT_EQ(esc.find('\x1b'), std::string::npos) << esc;
}

// The canonical text of kBase with `overrides`.
std::string canon(const std::vector<std::string>& overrides, const std::vector<std::string>& lines = kBase) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return recipe_to_toml(parse_recipe(text, "r.toml", overrides));
}

TEST(RecipeDifferenceTest, EqualRecipesHaveNoDifference) {
  EXPECT_FALSE(first_recipe_difference(canon({}), canon({})).has_value());
  // Formatting is not a difference: the same value written another way, with a comment.
  std::string hand = canon({});
  const size_t at = hand.find("\nlr = 0.001\n");
  ASSERT_NE(at, std::string::npos);
  hand.replace(at, 12, "\nlr   =   1e-3   # by hand\n");
  EXPECT_FALSE(first_recipe_difference(canon({}), hand).has_value());
  hand.replace(hand.find("1e-3"), 4, "2e-3");
  EXPECT_TRUE(first_recipe_difference(canon({}), hand).has_value());
}

TEST(RecipeDifferenceTest, NamesTheFirstKeyInCanonicalOrderWithBothValues) {
  auto d = first_recipe_difference(canon({}), canon({"optim.lr=0.0003"}));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key, "optim.lr");
  EXPECT_EQ(d->ours, "0.001");
  EXPECT_EQ(d->theirs, "0.0003");
  // Canonical order puts [model] before [data] (name order would say data.train first).
  d = first_recipe_difference(canon({"data.train=other", "model.tied_embeddings=true"}), canon({}));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key, "model.tied_embeddings");
  EXPECT_EQ(d->ours, "true");
  EXPECT_EQ(d->theirs, "false");
  d = first_recipe_difference(canon({"data.train=data/other dir"}), canon({}));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key, "data.train");
  EXPECT_EQ(d->ours, "\"data/other dir\"");
  EXPECT_EQ(d->theirs, "\"data/tiny\"");
  d = first_recipe_difference(canon({"model.d_model=128"}), canon({}));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key, "model.d_model");
  EXPECT_EQ(d->ours, "128");
  EXPECT_EQ(d->theirs, "64");
}

TEST(RecipeDifferenceTest, IgnoredKeysAreSkippedAndOthersStillFound) {
  const std::vector<std::string_view> ignore(std::begin(kResumeMutableKeys), std::end(kResumeMutableKeys));
  const std::string base = canon({});
  EXPECT_FALSE(first_recipe_difference(canon({"train.steps=99", "train.log_interval=5", "checkpoint.interval=2",
                                              "checkpoint.keep=3", "data.val=elsewhere", "train.sample_tokens=9",
                                              "train.sample_prompt=x", "train.eval_interval=4", "train.eval_batches=2"}),
                                       base, ignore)
                   .has_value());
  auto d = first_recipe_difference(canon({"train.steps=99", "train.grad_accum=2"}), base, ignore);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key, "train.grad_accum");
  d = first_recipe_difference(canon({"train.steps=99"}), base);  // nothing ignored
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key, "train.steps");
  EXPECT_EQ(d->ours, "99");
  EXPECT_EQ(d->theirs, "10");
  // The list holds the keys trainer.h documents, and data.train is not among them.
  for (const char* k : {"data.train", "optim.lr", "model.tied_embeddings", "model.d_model", "train.micro_batch"})
    EXPECT_EQ(std::find(ignore.begin(), ignore.end(), k), ignore.end()) << k;
}

TEST(RecipeDifferenceTest, AbsentTypeChangedAndUnknownKeys) {
  const std::string base = canon({});
  // Seed present in one text only.
  std::vector<std::string> seedless = kBase;
  seedless[0] = "# no seed";
  auto d = first_recipe_difference(base, canon({}, seedless));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key, "seed");
  EXPECT_EQ(d->ours, "7");
  EXPECT_EQ(d->theirs, "(absent)");
  // Same number, other TOML type.
  d = first_recipe_difference("[optim]\nlr = 1\n", "[optim]\nlr = 1.0\n");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key, "optim.lr");
  EXPECT_EQ(d->ours, "1");
  EXPECT_EQ(d->theirs, "1.0");
  // A key no recipe knows is compared too, after the known ones.
  d = first_recipe_difference(base + "\n[extra]\nx = 1\n", base);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key, "extra.x");
  EXPECT_EQ(d->theirs, "(absent)");
  // Text that is not TOML: ConfigError naming which text.
  try {
    first_recipe_difference(base, "[optim\nlr = ");
    FAIL() << "parsed";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("#2"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace ssiat

// ---- [parallel] (distributed/mesh.h) ----------------------------------------------------

namespace ssiat {
namespace {

// kBase has n_head 4 (line 6), n_kv_head 2 (line 7), d_ff 128 (line 8), vocab_size 300 (line 3).
std::vector<std::string> with_parallel(const std::vector<std::string>& lines, const std::string& body) {
  auto out = lines;
  out.push_back("[parallel]");  // line 18
  out.push_back(body);          // line 19
  return out;
}

TEST_F(RecipeTest, ParallelKeysParse) {
  Recipe r = load_recipe(write(join(with_parallel(kBase, "dp = 4\ntp = 2\nzero1 = true"))));
  EXPECT_EQ(r.parallel.dp, 4);
  EXPECT_EQ(r.parallel.tp, 2);
  EXPECT_TRUE(r.parallel.zero1);
  // Dotted keys and overrides, like every section.
  Recipe d = load_recipe(write("parallel.tp = 2\n" + join(kBase)), {"parallel.dp=2", "parallel.zero1=false"});
  EXPECT_EQ(d.parallel, (ParallelConfig{2, 2, false}));
  // The largest tp here is n_kv_head = 2; dp · tp may reach 2^31 - 1 (an MPI rank count).
  EXPECT_NO_THROW(load_recipe(write(join(with_parallel(kBase, "tp = 2\ndp = 1073741823")))));
}

TEST_F(RecipeTest, ParallelBadValuesNameTheKey) {
  EXPECT_EQ(error_of(with_parallel(kBase, "dp = 0")),
            path() + ":19: 'parallel.dp' = 0 is out of range (must be >= 1)");
  EXPECT_EQ(error_of(with_parallel(kBase, "tp = -1")),
            path() + ":19: 'parallel.tp' = -1 is out of range (must be >= 1)");
  EXPECT_EQ(error_of(with_parallel(kBase, "dp = 2147483648")),
            path() + ":19: 'parallel.dp' = 2147483648 is out of range (must be <= 2147483647)");
  EXPECT_EQ(error_of(with_parallel(kBase, "zero1 = 1")), path() + ":19: 'parallel.zero1' must be a boolean, got integer");
  EXPECT_EQ(error_of(with_parallel(kBase, "tp = 2.0")), path() + ":19: 'parallel.tp' must be an integer, got float");
  EXPECT_EQ(error_of(with_parallel(kBase, "pp = 2")), path() + ":19: unknown key 'parallel.pp' (did you mean 'parallel.dp'?)");
  auto lines = kBase;
  lines.push_back("[paralel]");
  EXPECT_EQ(error_of(lines), path() + ":18: unknown section 'paralel' (did you mean 'parallel'?)");
}

// The mesh's own words (distributed/mesh.h), blaming parallel.tp's line; the world size is
// not known to a recipe, so any dp passes.
TEST_F(RecipeTest, ParallelTpMustDivideTheShardedDimensions) {
  EXPECT_EQ(error_of(with_parallel(kBase, "tp = 3")), path() + ":19: parallel.tp = 3 does not divide model.n_head = 4");
  EXPECT_EQ(error_of(with_parallel(kBase, "tp = 4")),
            path() + ":19: parallel.tp = 4 does not divide model.n_kv_head = 2");
  auto lines = with_line(7, "n_kv_head = 4");
  lines[7] = "d_ff = 130";
  EXPECT_EQ(error_of(with_parallel(lines, "dp = 3\ntp = 4")), path() + ":20: parallel.tp = 4 does not divide model.d_ff = 130");
  lines[7] = "d_ff = 128";
  lines[2] = "vocab_size = 302";
  EXPECT_EQ(error_of(with_parallel(lines, "tp = 4")), path() + ":19: parallel.tp = 4 does not divide model.vocab_size = 302");
  EXPECT_EQ(error_of(with_parallel(kBase, "dp = 65536\ntp = 32768")),
            path() + ":20: parallel.dp * parallel.tp = 65536 * 32768 exceeds the largest MPI world size 2147483647");
  // Set by --set: the override is named; fixed by --set: the recipe loads.
  EXPECT_EQ(error_of(kBase, {"parallel.tp=3"}), "--set parallel.tp=3: parallel.tp = 3 does not divide model.n_head = 4");
  EXPECT_NO_THROW(load_recipe(write(join(with_parallel(kBase, "tp = 3"))), {"parallel.tp=2"}));
  // Recipe::validate() on the structs throws the same words without a file.
  Recipe r = load_recipe(write(join(kBase)));
  r.parallel.tp = 3;
  try {
    r.validate();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "parallel.tp = 3 does not divide model.n_head = 4");
  }
  ParallelConfig p;
  p.dp = 0;
  EXPECT_THROW(p.validate(), ConfigError);
}

// Keys written by default in the canonical text; parallel.* are layout keys, not freely mutable.
TEST_F(RecipeTest, ParallelKeysAreCanonicalAndFixedOnResume) {
  Recipe r = load_recipe(write(join(kBase)));
  const std::string canon = recipe_to_toml(r);
  EXPECT_NE(canon.find("\n[parallel]\ndp = 1\ntp = 1\nzero1 = false\n"), std::string::npos) << canon;
  for (std::string_view k : kResumeMutableKeys) EXPECT_NE(k.substr(0, 9), "parallel.") << k;
  Recipe other = load_recipe(write(join(kBase), "b.toml"), {"parallel.zero1=true"});
  const auto d = first_recipe_difference(canon, recipe_to_toml(other), kResumeMutableKeys);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key, "parallel.zero1");
  EXPECT_EQ(d->ours, "false");
  EXPECT_EQ(d->theirs, "true");
  // A text without [parallel] (an older build's) reads back to the defaults.
  const std::string older = canon.substr(0, canon.find("\n[parallel]")) + "\n";
  EXPECT_EQ(recipe_to_toml(parse_recipe(older, "old.toml")), canon);
}

}  // namespace
}  // namespace ssiat
