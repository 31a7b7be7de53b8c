// Metrics one can look at (issue 11): the TensorBoard event files a training run writes in
// <run>/tb/ (core/tensorboard.h), read back by the `tensorboard` package's own loader
// (EventAccumulator; skipped with a reason when python3 cannot import tensorboard), and
// `ssiat plot RUN_DIR` (core/plot.h), whose PNG is read back with cairo and checked point by
// point against metrics.jsonl through the same axis mapping.
#include <cairo.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/plot.h"
#include "core/tensorboard.h"
#include "tests/tools/cli_test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using ssiat::testing::Cmd;
using ssiat::testing::slurp;
using ssiat::testing::write_file;

namespace {

// 12 steps, evaluation every 4, a checkpoint every 3, no progress lines.
const std::string kArgs = " -q --set train.steps=12 --set train.eval_interval=4 --set checkpoint.interval=3";

// Every scalar TensorBoard's loader holds for a run's tb/ directory, tag -> [[step, value]...],
// and "_files": [[file name, file_version of its first event, largest step in it]] per file.
constexpr const char* kReader = R"(import json, os, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
out = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
files = []
for name in sorted(os.listdir(sys.argv[1])):
    events = list(EventFileLoader(os.path.join(sys.argv[1], name)).Load())
    files.append([name, events[0].file_version, max(e.step for e in events)])
out["_files"] = files
print(json.dumps(out))
)";

std::vector<json> metrics_lines(const fs::path& run) {
  std::vector<json> out;
  std::istringstream in(slurp(run / "metrics.jsonl"));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

bool have_tensorboard() { return std::system("python3 -c 'import tensorboard' >/dev/null 2>&1") == 0; }

class MetricsView : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("ssiat_metrics_view_" + std::to_string(::getpid()));
    ssiat::testing::write_tiny_inputs(dir_);
    write_file(dir_ / "read_tb.py", kReader);
    setup_ok_ = ssiat::testing::prepare_tiny_data(dir_) && run("train tiny.toml --run-dir run" + kArgs).status == 0;
    // A crash in step 11 (10 steps logged, the last checkpoint at 9), then --resume from step 9:
    // the first event file holds steps up to 10, the second 10 to 12.
    if (setup_ok_) {
      std::vector<std::string> args = {"train", "tiny.toml", "--run-dir", "resumed", "-q", "--set", "train.steps=12",
                                       "--set", "train.eval_interval=4", "--set", "checkpoint.interval=3"};
      ssiat::testing::Child c = ssiat::testing::spawn_cli(dir_, args, {{"SSIAT_FAULT", "step.after_backward:11"}}, "crash");
      const ssiat::testing::ChildExit e = ssiat::testing::wait_child(c, std::chrono::seconds(120));
      setup_ok_ = e.signaled && run("train tiny.toml --run-dir resumed --resume" + kArgs).status == 0;
    }
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override { ASSERT_TRUE(setup_ok_) << "data prepare, training or the crash/resume failed in " << dir_; }

  static Cmd run(const std::string& args) { return ssiat::testing::run_cli(dir_, args); }

  // TensorBoard's view of run/tb (kReader's JSON).
  static json tensorboard_view(const std::string& run) {
    const std::string cmd = "cd '" + dir_.string() + "' && python3 read_tb.py '" + run + "/tb' > tb.json 2> tb.err";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << slurp(dir_ / "tb.err");
    return json::parse(slurp(dir_ / "tb.json"));
  }

  // Every numeric field of every metrics.jsonl line is in the view at its step, and nothing else.
  static void expect_view_holds_metrics(const fs::path& run, const json& view) {
    std::map<std::string, std::map<int64_t, double>> want;
    for (const json& m : metrics_lines(run))
      for (const auto& [key, v] : m.items())
        if (key != "step" && v.is_number()) want[ssiat::metrics_tag(key)][m["step"].get<int64_t>()] = v.get<double>();
    ASSERT_GE(want.size(), 11u);
    for (const auto& [tag, points] : want) {
      ASSERT_TRUE(view.contains(tag)) << tag << " missing from " << run;
      std::map<int64_t, double> got;
      for (const json& p : view[tag]) {
        const int64_t step = p[0].get<int64_t>();
        EXPECT_EQ(got.count(step), 0u) << tag << " step " << step << " twice";
        got[step] = p[1].get<double>();
      }
      ASSERT_EQ(got.size(), points.size()) << tag;
      for (const auto& [step, v] : points) {
        ASSERT_EQ(got.count(step), 1u) << tag << " step " << step;
        EXPECT_EQ(static_cast<float>(got[step]), static_cast<float>(v)) << tag << " step " << step;
      }
    }
  }

  static inline fs::path dir_;
  static inline bool setup_ok_ = false;
};

TEST_F(MetricsView, TensorBoardReadsEveryLoggedStepAndValue) {
  if (!have_tensorboard()) GTEST_SKIP() << "python3 cannot import tensorboard (pip install -r tests/requirements.txt)";
  const json view = tensorboard_view("run");
  ASSERT_EQ(view["_files"].size(), 1u);
  EXPECT_EQ(view["_files"][0][1], "brain.Event:2");
  expect_view_holds_metrics(dir_ / "run", view);
  EXPECT_EQ(view["val/loss"].size(), 3u);  // steps 4, 8, 12
}

TEST_F(MetricsView, AResumedRunShowsEachStepOnceWithTheResumedValues) {
  if (!have_tensorboard()) GTEST_SKIP() << "python3 cannot import tensorboard (pip install -r tests/requirements.txt)";
  const json view = tensorboard_view("resumed");
  // Two files: the crashed segment's (steps up to 10, past its checkpoint at 9) and the resumed one.
  ASSERT_EQ(view["_files"].size(), 2u);
  EXPECT_EQ(view["_files"][0][2], 10);
  EXPECT_EQ(view["_files"][1][2], 12);
  // The view is metrics.jsonl's (truncated to step 9, then 10-12 again): step 10's
  // elapsed_s/tokens_per_s from the crashed segment would differ and appear twice.
  expect_view_holds_metrics(dir_ / "resumed", view);
}

// The pixel of `img` nearest (x, y) within `radius` px with colour c (±8 per channel).
bool has_colour_near(cairo_surface_t* img, double x, double y, ssiat::Rgb c, int radius) {
  const int w = cairo_image_surface_get_width(img), h = cairo_image_surface_get_height(img);
  const int stride = cairo_image_surface_get_stride(img);
  const unsigned char* data = cairo_image_surface_get_data(img);
  for (int j = static_cast<int>(std::floor(y)) - radius; j <= static_cast<int>(std::floor(y)) + radius; j++)
    for (int i = static_cast<int>(std::floor(x)) - radius; i <= static_cast<int>(std::floor(x)) + radius; i++) {
      if (i < 0 || j < 0 || i >= w || j >= h) continue;
      uint32_t px;
      std::memcpy(&px, data + static_cast<size_t>(j) * stride + static_cast<size_t>(i) * 4, 4);
      const int r = (px >> 16) & 0xff, g = (px >> 8) & 0xff, b = px & 0xff;
      if (std::abs(r - c.r) <= 8 && std::abs(g - c.g) <= 8 && std::abs(b - c.b) <= 8) return true;
    }
  return false;
}

TEST_F(MetricsView, PlotHoldsEveryPointOfEverySeries) {
  fs::remove(dir_ / "run" / "plot.png");
  const Cmd r = run("plot run");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "wrote run/plot.png (12 steps)\n");
  const ssiat::RunMetrics m = ssiat::read_run_metrics(dir_ / "run");
  ASSERT_EQ(m[ssiat::Series::kLoss].x.size(), 12u);
  ASSERT_EQ(m[ssiat::Series::kValLoss].x.size(), 3u);
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> img(
      cairo_image_surface_create_from_png((dir_ / "run" / "plot.png").c_str()), cairo_surface_destroy);
  ASSERT_EQ(cairo_surface_status(img.get()), CAIRO_STATUS_SUCCESS) << "plot.png does not load as a PNG";
  ASSERT_EQ(cairo_image_surface_get_width(img.get()), ssiat::kPlotWidth);
  ASSERT_EQ(cairo_image_surface_get_height(img.get()), ssiat::kPlotHeight);
  const std::vector<ssiat::Panel> panels = ssiat::plot_layout(m);
  ASSERT_EQ(panels.size(), 4u);
  int checked = 0;
  for (const ssiat::Panel& p : panels)
    for (ssiat::Series s : p.series) {
      const ssiat::SeriesData& d = m[s];
      for (size_t k = 0; k < d.x.size(); k++, checked++) {
        const double x = p.map.px(d.x[k]), y = p.map.py(d.y[k]);
        EXPECT_TRUE(has_colour_near(img.get(), x, y, ssiat::series_colour(s), 2))
            << p.title << ": series " << static_cast<int>(s) << " point (" << d.x[k] << ", " << d.y[k]
            << ") not drawn at pixel (" << x << ", " << y << ")";
      }
    }
  EXPECT_EQ(checked, 12 * 4 + 3);
  // Each colour stays inside its own panel's plot area.
  for (const ssiat::Panel& p : panels)
    for (ssiat::Series s : p.series)
      for (const ssiat::Panel& other : panels) {
        if (&other == &p) continue;
        const ssiat::AxisMap& a = other.map;
        for (double y = a.top + 2; y < a.top + a.height - 2; y += 5)
          for (double x = a.left + 2; x < a.left + a.width - 2; x += 5)
            ASSERT_FALSE(has_colour_near(img.get(), x, y, ssiat::series_colour(s), 0))
                << "colour of " << p.title << " found in " << other.title;
      }

  const Cmd o = run("plot run --out elsewhere.png");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(slurp(dir_ / "elsewhere.png"), slurp(dir_ / "run" / "plot.png"));
}

// A run directory with metrics.jsonl = text.
fs::path fake_run(const fs::path& dir, const std::string& name, const std::string& text) {
  fs::remove_all(dir / name);
  fs::create_directories(dir / name);
  write_file(dir / name / "metrics.jsonl", text);
  return dir / name;
}

void expect_one_line_failure(const Cmd& r, const std::vector<std::string>& parts) {
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  for (const std::string& p : parts) EXPECT_NE(r.err.find(p), std::string::npos) << "'" << p << "' not in " << r.err;
}

TEST_F(MetricsView, PlotOfBadInputsIsOneLineAndLeavesNoPng) {
  expect_one_line_failure(run("plot nowhere"), {"nowhere: no such run directory"});
  EXPECT_FALSE(fs::exists(dir_ / "nowhere"));
  fs::create_directories(dir_ / "bare");
  expect_one_line_failure(run("plot bare"), {"bare/metrics.jsonl: no such file"});
  EXPECT_FALSE(fs::exists(dir_ / "bare" / "plot.png"));
  fake_run(dir_, "empty", "");
  expect_one_line_failure(run("plot empty"), {"empty/metrics.jsonl: no steps logged yet"});
  EXPECT_FALSE(fs::exists(dir_ / "empty" / "plot.png"));
  const std::string good = R"({"step":1,"loss":5.0,"lr":0.001})" "\n";
  const fs::path bad = fake_run(dir_, "bad", good + "{\"step\":2,\"loss\":\n" + good);
  write_file(bad / "plot.png", "an older plot");
  expect_one_line_failure(run("plot bad"), {"bad/metrics.jsonl:2: not a JSON object"});
  EXPECT_EQ(slurp(bad / "plot.png"), "an older plot") << "a failed plot replaced the older one";
  fake_run(dir_, "nostep", good + R"({"loss":4.0})" "\n");
  expect_one_line_failure(run("plot nostep"), {"nostep/metrics.jsonl:2: 'step' is missing"});
  fake_run(dir_, "textlr", good + R"({"step":2,"loss":4.0,"lr":"fast"})" "\n");
  expect_one_line_failure(run("plot textlr"), {"textlr/metrics.jsonl:2: 'lr' is not a number"});
  for (const char* name : {"bad", "nostep", "textlr"}) {
    EXPECT_FALSE(fs::exists(dir_ / name / ".plot.png.tmp")) << name;
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / name), fs::directory_iterator()), name == std::string("bad") ? 2 : 1)
        << name << ": something was left beside metrics.jsonl";
  }
}

TEST_F(MetricsView, PlotOfALiveRunSkipsTheLineBeingWritten) {
  fake_run(dir_, "live", R"({"step":1,"loss":5.0,"grad_norm":null})" "\n" R"({"step":2,"loss":4.0})" "\n" R"({"step":3,"lo)");
  const Cmd r = run("plot live");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "wrote live/plot.png (2 steps)\n");
  const ssiat::RunMetrics m = ssiat::read_run_metrics(dir_ / "live");
  EXPECT_EQ(m[ssiat::Series::kGradNorm].x.size(), 0u);  // null (a NaN in JSON) is a gap
  EXPECT_EQ(m[ssiat::Series::kLoss].y, (std::vector<double>{5.0, 4.0}));
}

TEST_F(MetricsView, EventFileWriteFailureIsOneLineNamingTheFile) {
  const std::vector<std::string> args = {"train", "tiny.toml", "--run-dir", "wfail", "-q", "--set", "train.steps=6"};
  ssiat::testing::Child c = ssiat::testing::spawn_cli(
      dir_, args,
      {{"LD_PRELOAD", SSIAT_IOSHIM}, {"SSIAT_IOSHIM_PATH", "tfevents"}, {"SSIAT_IOSHIM_WRITE_AFTER", "300"},
       {"SSIAT_IOSHIM_WRITE_ERRNO", "ENOSPC"}},
      "wfail");
  const ssiat::testing::ChildExit e = ssiat::testing::wait_child(c, std::chrono::seconds(120));
  ASSERT_TRUE(e.exited) << "timed out or killed";
  EXPECT_EQ(e.code, 1);
  const std::string err = slurp(c.err);
  EXPECT_EQ(err.find('\n'), err.size() - 1) << err;
  EXPECT_NE(err.find("wfail/tb/events.out.tfevents."), std::string::npos) << err;
  EXPECT_NE(err.find("write failed: no space left on device"), std::string::npos) << err;
}

}  // namespace
