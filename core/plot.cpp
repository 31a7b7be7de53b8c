// Training curves as a PNG with cairo (core/plot.h).
#include "core/plot.h"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"

namespace ssiat {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// metrics.jsonl's key of each Series.
constexpr const char* kKeys[kSeriesCount] = {"loss", "val_loss", "lr", "grad_norm", "tokens_per_s"};

// The tick spacing for a range: 1, 2 or 5 × 10^k, about five ticks.
double tick_step(double lo, double hi) {
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
}

// [lo, hi] of the values of these series (+inf, -inf if none), widened by 5% and never flat.
std::pair<double, double> data_range(const RunMetrics& m, const std::vector<Series>& ss, bool x) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (Series s : ss)
    for (double v : x ? m[s].x : m[s].y) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!(lo <= hi)) return {0, 1};
  if (hi - lo <= 1e-12 * std::max(std::fabs(lo), std::fabs(hi))) {
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    return {lo - pad, hi + pad};
  }
  const double pad = 0.05 * (hi - lo);
  return {lo - pad, hi + pad};
}

// A tick label with enough digits to tell neighbouring ticks apart.
std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-9) v = 0;
  const double big = std::max(std::fabs(v), step);
  const int digits = std::clamp(static_cast<int>(std::ceil(std::log10(big / step) + 1e-9)) + 1, 1, 8);
  char buf[48];
  if (step >= 1 && std::fabs(v) < 1e12) std::snprintf(buf, sizeof buf, "%.0f", v);  // 80000, not 8e+04
  else std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

void set_rgb(cairo_t* cr, Rgb c) { cairo_set_source_rgb(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0); }

void draw_text(cairo_t* cr, const std::string& s, double x, double y, double align_x, double align_y) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  cairo_move_to(cr, x - e.x_bearing - align_x * e.width, y - e.y_bearing - align_y * e.height);
  cairo_show_text(cr, s.c_str());
}

void draw_panel(cairo_t* cr, const RunMetrics& m, const Panel& p) {
  const AxisMap& a = p.map;
  cairo_set_line_width(cr, 1);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 12);
  for (int axis = 0; axis < 2; axis++) {  // grid lines and tick labels
    const double lo = axis == 0 ? a.x_min : a.y_min, hi = axis == 0 ? a.x_max : a.y_max;
    const double step = tick_step(lo, hi);
    for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
      const double pos = axis == 0 ? std::round(a.px(t)) + 0.5 : std::round(a.py(t)) + 0.5;
      cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
      if (axis == 0) cairo_move_to(cr, pos, a.top), cairo_line_to(cr, pos, a.top + a.height);
      else cairo_move_to(cr, a.left, pos), cairo_line_to(cr, a.left + a.width, pos);
      cairo_stroke(cr);
      cairo_set_source_rgb(cr, 0, 0, 0);
      if (axis == 0) draw_text(cr, tick_label(t, step), pos, a.top + a.height + 6, 0.5, 0);
      else draw_text(cr, tick_label(t, step), a.left - 6, pos, 1, 0.5);
    }
  }
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  cairo_rectangle(cr, a.left + 0.5, a.top + 0.5, a.width - 1, a.height - 1);
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, 14);
  draw_text(cr, p.title, a.left + a.width / 2, a.top - 10, 0.5, 1);
  cairo_set_font_size(cr, 12);
  draw_text(cr, "step", a.left + a.width / 2, a.top + a.height + 24, 0.5, 0);

  cairo_save(cr);
  cairo_rectangle(cr, a.left, a.top, a.width, a.height);
  cairo_clip(cr);
  cairo_set_line_width(cr, 2.5);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  for (Series s : p.series) {
    const SeriesData& d = m[s];
    set_rgb(cr, series_colour(s));
    for (size_t i = 0; i < d.x.size(); i++) {  // a polyline; a single point is a dot (round cap)
      if (i == 0) cairo_move_to(cr, a.px(d.x[i]), a.py(d.y[i]));
      cairo_line_to(cr, a.px(d.x[i]), a.py(d.y[i]));
    }
    cairo_stroke(cr);
    if (s == Series::kValLoss)
      for (size_t i = 0; i < d.x.size(); i++) {
        cairo_arc(cr, a.px(d.x[i]), a.py(d.y[i]), 4.5, 0, 2 * M_PI);
        cairo_fill(cr);
      }
  }
  cairo_restore(cr);
}

cairo_status_t append_png(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

Rgb series_colour(Series s) {
  switch (s) {
    case Series::kLoss: return {31, 119, 180};
    case Series::kValLoss: return {255, 127, 14};
    case Series::kLr: return {44, 160, 44};
    case Series::kGradNorm: return {214, 39, 40};
    case Series::kTokensPerS: return {148, 103, 189};
  }
  return {0, 0, 0};
}

RunMetrics read_run_metrics(const fs::path& run_dir) {
  if (!fs::is_directory(run_dir)) throw IoError(run_dir.string() + ": no such run directory");
  const fs::path file = run_dir / "metrics.jsonl";
  if (!fs::exists(file))
    throw IoError(file.string() + ": no such file (not a run directory, or a run that has not logged a step)");
  const std::string text = read_whole_file(file);
  RunMetrics m;
  size_t begin = 0;
  int64_t line_no = 0, steps = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    const bool unterminated = end == std::string::npos;
    if (unterminated) end = text.size();
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    line_no++;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = file.string() + ":" + std::to_string(line_no) + ": ";
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      if (unterminated) break;  // being written by a live trainer
      throw ConfigError(where + "not a JSON object");
    }
    if (!j.is_object()) throw ConfigError(where + "not a JSON object");
    if (!j.contains("step") || !j["step"].is_number_integer())
      throw ConfigError(where + "'step' is missing or not an integer");
    if (!j.contains("loss") || !j["loss"].is_number()) throw ConfigError(where + "'loss' is missing or not a number");
    const double step = static_cast<double>(j["step"].get<int64_t>());
    for (int s = 0; s < kSeriesCount; s++) {
      if (!j.contains(kKeys[s]) || j[kKeys[s]].is_null()) continue;
      if (!j[kKeys[s]].is_number()) throw ConfigError(where + "'" + kKeys[s] + "' is not a number");
      const double v = j[kKeys[s]].get<double>();
      if (!std::isfinite(v)) continue;
      m.series[s].x.push_back(step);
      m.series[s].y.push_back(v);
    }
    steps++;
  }
  if (steps == 0) throw ConfigError(file.string() + ": no steps logged yet");
  return m;
}

std::vector<Panel> plot_layout(const RunMetrics& m) {
  std::vector<Panel> panels = {{"loss (train, validation)", {Series::kValLoss, Series::kLoss}, {}},
                               {"learning rate", {Series::kLr}, {}},
                               {"grad norm", {Series::kGradNorm}, {}},
                               {"tokens/s", {Series::kTokensPerS}, {}}};
  const double cell_w = kPlotWidth / 2.0, cell_h = kPlotHeight / 2.0;
  const double margin_l = 80, margin_r = 24, margin_t = 36, margin_b = 52;
  for (size_t i = 0; i < panels.size(); i++) {
    AxisMap& a = panels[i].map;
    std::tie(a.x_min, a.x_max) = data_range(m, panels[i].series, true);
    std::tie(a.y_min, a.y_max) = data_range(m, panels[i].series, false);
    a.left = static_cast<double>(i % 2) * cell_w + margin_l;
    a.top = static_cast<double>(i / 2) * cell_h + margin_t;
    a.width = cell_w - margin_l - margin_r;
    a.height = cell_h - margin_t - margin_b;
  }
  return panels;
}

void write_plot_png(const RunMetrics& m, const fs::path& out) {
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface(
      cairo_image_surface_create(CAIRO_FORMAT_RGB24, kPlotWidth, kPlotHeight), cairo_surface_destroy);
  std::unique_ptr<cairo_t, decltype(&cairo_destroy)> cr(cairo_create(surface.get()), cairo_destroy);
  if (cairo_status(cr.get()) != CAIRO_STATUS_SUCCESS)
    throw IoError(out.string() + ": cannot draw: " + cairo_status_to_string(cairo_status(cr.get())));
  cairo_set_source_rgb(cr.get(), 1, 1, 1);
  cairo_paint(cr.get());
  for (const Panel& p : plot_layout(m)) draw_panel(cr.get(), m, p);
  cairo_surface_flush(surface.get());
  std::string png;
  const cairo_status_t st = cairo_surface_write_to_png_stream(surface.get(), append_png, &png);
  if (st != CAIRO_STATUS_SUCCESS) throw IoError(out.string() + ": cannot encode PNG: " + cairo_status_to_string(st));
  write_file_atomic(out, png);
}

}  // namespace ssiat
