// Training curves of a run as one PNG (`ssiat plot RUN_DIR`), drawn with cairo.
//
// Input: <run>/metrics.jsonl (core/trainer.h). Each non-empty line must be a JSON object with an
// integer "step" and a number "loss"; lr, grad_norm, tokens_per_s and val_loss are optional
// (a missing or null value -- nlohmann writes NaN/inf as null -- leaves a gap). A last line
// without its newline that does not parse is a line being written by a live trainer and is
// skipped. Errors are one line: IoError "RUN: no such run directory", "RUN/metrics.jsonl: no such
// file ...", ConfigError "RUN/metrics.jsonl:LINE: <what is wrong>", "...: no steps logged yet".
//
// Picture: kPlotWidth × kPlotHeight pixels, four panels in a 2×2 grid -- loss (train as a line,
// validation as a line with round markers, drawn under the train line), learning rate, grad
// norm, tokens/s -- each with a frame, grid lines, tick labels on both axes and a title; the x
// axis is the step. Each series is drawn in its own colour (series_colour), 2.5 px lines, so
// that the pixel at axis_map(...)'s position of every logged point has that colour (a test
// reads the PNG back and checks each point). The PNG is written atomically (temp + rename): a
// failed plot never leaves a half-written file.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ssiat {

enum class Series { kLoss = 0, kValLoss, kLr, kGradNorm, kTokensPerS };
inline constexpr int kSeriesCount = 5;

struct Rgb {
  uint8_t r, g, b;
};
Rgb series_colour(Series s);

struct SeriesData {
  std::vector<double> x, y;  // step, value; in file order
};

// The curves of one run, indexed by Series.
struct RunMetrics {
  std::array<SeriesData, kSeriesCount> series;
  const SeriesData& operator[](Series s) const { return series[static_cast<int>(s)]; }
};

// Reads <run>/metrics.jsonl (errors above).
RunMetrics read_run_metrics(const std::filesystem::path& run_dir);

// Data -> pixel for one panel: the data box [x_min, x_max] × [y_min, y_max] fills the plot area
// whose top-left pixel corner is (left, top), y growing downwards (cairo's user space).
struct AxisMap {
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  double left = 0, top = 0, width = 1, height = 1;
  double px(double x) const { return left + (x - x_min) / (x_max - x_min) * width; }
  double py(double y) const { return top + (y_max - y) / (y_max - y_min) * height; }
};

struct Panel {
  std::string title;
  std::vector<Series> series;  // drawing order: later ones on top
  AxisMap map;
};

inline constexpr int kPlotWidth = 1200, kPlotHeight = 860;

// The four panels and their axis maps for these metrics (the data box is the data's range with
// 5% margins; a flat or single-point range is widened by 10% of its value, or by 1 at 0). Tick
// marks sit at multiples of 1, 2 or 5 × 10^k, about five per axis.
std::vector<Panel> plot_layout(const RunMetrics& m);

// Draws the panels and writes the PNG to `out` atomically. IoError naming `out` on failure.
void write_plot_png(const RunMetrics& m, const std::filesystem::path& out);

}  // namespace ssiat
