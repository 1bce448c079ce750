// Rendering results. Every format is built from the same per-line fields (`Line`), so the terminal
// table, report.md, CSV and JSON never disagree. A line is one variant in one mode: the primary mode
// always, then one more line for each other mode that was measured (passing variants only).
//
// No number without a passing check: a variant that failed or was skipped shows no time, no
// throughput and no speedup, only why.
#include "harness/report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "core/error.h"
#include "harness/text_table.h"

namespace aisp::harness {
namespace {

using nlohmann::json;

struct Line {
  const VariantResult* result = nullptr;
  const Comparison* comparison = nullptr;  // only on the primary-mode line
  Mode mode = Mode::cold;
  bool continuation = false;  // an extra mode of the variant on the line above

  // Measured values; empty where not measured, not applicable, or the variant did not pass.
  std::optional<double> median_s, tflop_s, gb_s, peak_percent, launches, memory_bytes, max_rel_l2;
  std::optional<double> sm_mhz, power_w;  // mean over the mode's samples (NVML), where read
  // The variant's setup() (a compiler variant's cold compile, an allocation or a library plan), once
  // per variant (the table shows it on the variant's first line), pass or fail, where it ran.
  std::optional<double> setup_s;
  std::optional<Speedup> speedup;
  bool memory_bound = false;  // below the roofline's ridge: GB/s is the number that matters
};

std::optional<double> peak_of(const json& peaks, const char* key) {
  if (!peaks.is_object() || !peaks.contains(key) || !peaks.at(key).is_number()) return std::nullopt;
  const double value = peaks.at(key).get<double>();
  return value > 0 ? std::optional<double>(value) : std::nullopt;
}

Line make_line(const ReportRow& row, Mode mode, bool continuation, const json& peaks) {
  const VariantResult& r = *row.result;
  Line line;
  line.result = &r;
  line.comparison = continuation ? nullptr : &row.comparison;
  line.mode = mode;
  line.continuation = continuation;

  if (r.launches_per_call) line.launches = *r.launches_per_call;
  if (r.setup_s >= 0) line.setup_s = r.setup_s;
  const bool setup_known = r.memory.setup_bytes >= 0, peak_known = r.memory.call_peak_bytes >= 0;
  if (setup_known || peak_known) {
    line.memory_bytes = double(std::max<std::int64_t>(r.memory.setup_bytes, 0) +
                               std::max<std::int64_t>(r.memory.call_peak_bytes, 0));
  }
  if (!r.verification.empty()) {
    double worst = 0;
    for (const VerifyResult& v : r.verification) worst = std::max(worst, v.rel_l2);
    line.max_rel_l2 = worst;
  }

  const ModeResult* m = r.mode(mode);
  if (r.status != Status::passed || !m || !m->measured || m->samples_s.empty()) return line;
  const double median = m->summary.count > 0 ? m->summary.median : summarize(m->samples_s).median;
  if (!(median > 0)) return line;
  line.median_s = median;
  if (m->clocks && m->clocks->readings > 0) {
    line.sm_mhz = m->clocks->sm_mhz_mean;
    if (m->clocks->power_w_mean >= 0) line.power_w = m->clocks->power_w_mean;
  }
  if (r.flops > 0) line.tflop_s = r.flops / median / 1e12;
  if (r.bytes > 0) line.gb_s = r.bytes / median / 1e9;
  // Roofline: below the ridge (peak FLOP/s over peak bytes/s, measured; 100 FLOP/byte when
  // unknown) the work is bound by memory and its % of peak is of the copy bandwidth.
  // The measured peaks are the GPU's: a CPU-backend row has no peak to be a percentage of.
  const json no_peaks;
  const json& device_peaks = r.backend == Backend::cuda ? peaks : no_peaks;
  const auto compute_peak = peak_of(device_peaks, "bf16_tflops");
  const auto copy_peak = peak_of(device_peaks, "copy_gb_s");
  const double ridge = (compute_peak && copy_peak) ? (*compute_peak * 1e12) / (*copy_peak * 1e9) : 100.0;
  line.memory_bound = r.bytes > 0 && (r.flops <= 0 || r.flops / r.bytes < ridge);
  if (line.memory_bound && copy_peak) line.peak_percent = 100 * *line.gb_s / *copy_peak;
  if (!line.memory_bound && line.tflop_s && compute_peak) line.peak_percent = 100 * *line.tflop_s / *compute_peak;
  line.speedup = m->speedup;
  return line;
}

std::vector<Line> lines_of(const std::vector<ReportRow>& rows, const json& peaks, Mode primary) {
  std::vector<Line> lines;
  for (const ReportRow& row : rows) {
    if (!row.result) continue;
    lines.push_back(make_line(row, primary, false, peaks));
    // A variant that did not pass has nothing to show per mode: one line says why.
    if (row.result->status != Status::passed) continue;
    for (const ModeResult& m : row.result->modes) {
      if (m.mode != primary && m.measured) lines.push_back(make_line(row, m.mode, true, peaks));
    }
  }
  return lines;
}

// ---- human-readable cells (table, markdown) ----

const std::vector<TextColumn>& report_columns() {
  static const std::vector<TextColumn> columns = {
      {"example"},          {"variant"},  {"mode"},   {"median", true},     {"SM clock", true}, {"throughput", true},
      {"% peak", true},     {"speedup [95% CI]"},   {"launches", true}, {"memory", true},
      {"setup", true},      {"verification"},       {"expectation"}};
  return columns;
}

std::string throughput_cell(const Line& l) {
  if (l.tflop_s && !l.memory_bound)
    return *l.tflop_s >= 1 ? fmt::format("{:.1f} TFLOP/s", *l.tflop_s) : fmt::format("{:.1f} GFLOP/s", *l.tflop_s * 1e3);
  if (l.gb_s) return *l.gb_s >= 100 ? fmt::format("{:.0f} GB/s", *l.gb_s) : fmt::format("{:.1f} GB/s", *l.gb_s);
  return "-";
}

std::string verification_cell(const VariantResult& r, const std::optional<double>& max_rel_l2) {
  switch (r.status) {
    case Status::passed: return max_rel_l2 ? fmt::format("ok {:.1e}", *max_rel_l2) : "ok";
    case Status::failed: return "FAILED: " + r.reason;
    case Status::skipped: return "skipped: " + r.reason;
  }
  return "?";
}

std::string expectation_cell(const Comparison* c) {
  if (!c) return "";
  switch (c->verdict) {
    case Verdict::no_expectation: return "-";
    case Verdict::not_comparable: return "n/a";
    case Verdict::same: return fmt::format("same (exp {:.2f}x)", c->expected);
    case Verdict::faster: return fmt::format("faster (exp {:.2f}x)", c->expected);
    case Verdict::slower_within_noise: return fmt::format("slower? (exp {:.2f}x)", c->expected);
    case Verdict::regression: return fmt::format("REGRESSION (exp {:.2f}x)", c->expected);
  }
  return "?";
}

std::vector<std::string> display_cells(const Line& l, bool blank_continuations) {
  const VariantResult& r = *l.result;
  const bool blank = blank_continuations && l.continuation;
  auto or_dash = [](const std::optional<double>& x, auto&& format) -> std::string {
    return x ? format(*x) : "-";
  };
  return {
      blank ? "" : r.example,
      blank ? "" : r.variant,
      name_of(l.mode),
      or_dash(l.median_s, [](double s) { return format_seconds(s); }),
      or_dash(l.sm_mhz, [](double mhz) { return fmt::format("{:.0f} MHz", mhz); }),
      throughput_cell(l),
      or_dash(l.peak_percent, [](double p) { return fmt::format("{:.1f}%", p); }),
      l.speedup ? fmt::format("{:.2f}x [{:.2f}, {:.2f}]", l.speedup->ratio, l.speedup->ci_low,
                              l.speedup->ci_high)
                : "-",
      or_dash(l.launches, [](double n) { return fmt::format("{:.0f}", n); }),
      or_dash(l.memory_bytes, [](double b) { return format_bytes(b); }),
      blank ? "" : or_dash(l.setup_s, [](double s) { return format_seconds(s); }),
      blank ? "" : verification_cell(r, l.max_rel_l2),
      expectation_cell(l.comparison),
  };
}

std::string render_table(const std::vector<Line>& lines) {
  std::vector<std::vector<std::string>> cells;
  for (const Line& l : lines) cells.push_back(display_cells(l, true));
  return render_plain_table(report_columns(), cells);
}

std::string render_markdown(const std::vector<Line>& lines) {
  std::vector<std::vector<std::string>> cells;
  for (const Line& l : lines) cells.push_back(display_cells(l, false));
  return render_markdown_table(report_columns(), cells);
}

// Examples whose passing variants ran at mean SM clocks more than kClockSpread apart in the primary
// mode: their times include the clock difference (a power cap gives each kernel the clock its power
// allows). One line each, for people, under the table.
constexpr double kClockSpread = 0.05;

std::string clock_notes(const std::vector<Line>& lines) {
  std::vector<std::string> order;
  std::map<std::string, std::pair<double, double>> range;  // example -> (min, max) mean clock
  for (const Line& l : lines) {
    if (l.continuation || !l.sm_mhz) continue;
    const std::string& e = l.result->example;
    auto [it, fresh] = range.try_emplace(e, *l.sm_mhz, *l.sm_mhz);
    if (fresh) order.push_back(e);
    it->second.first = std::min(it->second.first, *l.sm_mhz);
    it->second.second = std::max(it->second.second, *l.sm_mhz);
  }
  std::string notes;
  for (const std::string& e : order) {
    const auto [low, high] = range.at(e);
    if (high > 0 && (high - low) / high > kClockSpread)
      notes += fmt::format("note: {}'s variants ran at mean SM clocks {:.0f}-{:.0f} MHz ({:.0f} % apart): their "
                           "times include the clock difference\n",
                           e, low, high, 100 * (high - low) / high);
  }
  return notes;
}

// Cold medians that may not be the sustained time the expectation runs hold. A power-capped GPU runs
// its first ~25 ms of busy time at the boost clock and is held down from ~0.1 s on (README, "Clocks:
// cold and burst"; H200 fp8 GEMM 711 -> 836 us), and on an H200 a further 10-20 % dip follows about
// every 0.8 s of load for ~0.2 s (the last fifth of a 1 s run). Two notes, one line each:
//  * the samples took less than kShortRunSeconds of GPU time in all: possibly all at the boost clock;
//  * the medians of the first and the second half of the samples (time order, at least 8) are more
//    than kHalvesApart of the whole set's median apart: no one clock state holds most samples, and
//    the median falls between states. (A dip in the last fifth leaves both halves' medians alone.)
constexpr double kShortRunSeconds = 0.05;
constexpr double kHalvesApart = 0.03;

std::string regime_notes(const std::vector<Line>& lines) {
  std::string notes;
  for (const Line& l : lines) {
    if (l.mode != Mode::cold || !l.median_s || l.result->backend != Backend::cuda) continue;
    const ModeResult* m = l.result->mode(Mode::cold);
    if (!m || m->samples_s.empty()) continue;
    const std::vector<double>& s = m->samples_s;
    double busy = 0;
    for (double x : s) busy += x;
    const std::string who = l.result->example + " " + l.result->variant;
    if (busy < kShortRunSeconds) {
      notes += fmt::format(
          "note: {}: its {} cold samples took {:.1f} ms of GPU time in all, so a power-capped GPU may have run them at "
          "its boost clock: a burst time, not the sustained one (run longer, or --mode burst to say so)\n",
          who, s.size(), busy * 1e3);
      continue;
    }
    if (s.size() < 8) continue;
    const auto middle = s.begin() + std::ptrdiff_t(s.size() / 2);
    const double first = summarize(std::vector<double>(s.begin(), middle)).median;
    const double second = summarize(std::vector<double>(middle, s.end())).median;
    if (std::abs(second - first) > kHalvesApart * *l.median_s)
      notes += fmt::format(
          "note: {}: the first and second half of its cold samples have medians {:.0f} % apart (the clock moved "
          "while it was sampled: power cap or temperature): its median falls between two states\n",
          who, 100 * std::abs(second - first) / *l.median_s);
  }
  return notes;
}

// ---- machine-readable fields (csv, json): raw numbers in base units, empty/null when absent ----

const std::vector<std::string> kFields = {"example",    "variant",        "mode",          "status",
                               "median_s",   "tflop_s",        "gb_s",          "peak_percent",
                               "speedup",    "speedup_ci_low", "speedup_ci_high", "launches_per_call",
                               "memory_bytes", "max_rel_l2",   "reason",        "expectation",
                               "sm_clock_mhz", "power_w",      "setup_s"};

json fields_of(const Line& l) {
  const VariantResult& r = *l.result;
  auto number = [](const std::optional<double>& x) { return x && std::isfinite(*x) ? json(*x) : json(nullptr); };
  json j = json::object();
  j["example"] = r.example;
  j["variant"] = r.variant;
  j["mode"] = name_of(l.mode);
  j["status"] = name_of(r.status);
  j["median_s"] = number(l.median_s);
  j["tflop_s"] = number(l.tflop_s);
  j["gb_s"] = number(l.gb_s);
  j["peak_percent"] = number(l.peak_percent);
  j["speedup"] = number(l.speedup ? std::optional(l.speedup->ratio) : std::nullopt);
  j["speedup_ci_low"] = number(l.speedup ? std::optional(l.speedup->ci_low) : std::nullopt);
  j["speedup_ci_high"] = number(l.speedup ? std::optional(l.speedup->ci_high) : std::nullopt);
  j["launches_per_call"] = l.launches ? json(std::int64_t(*l.launches)) : json(nullptr);
  j["memory_bytes"] = l.memory_bytes ? json(std::int64_t(*l.memory_bytes)) : json(nullptr);
  j["max_rel_l2"] = number(l.max_rel_l2);
  j["reason"] = r.reason;
  j["expectation"] = l.comparison ? json(name_of(l.comparison->verdict)) : json(nullptr);
  j["sm_clock_mhz"] = number(l.sm_mhz);
  j["power_w"] = number(l.power_w);
  j["setup_s"] = number(l.setup_s);
  return j;
}

std::string render_csv_lines(const std::vector<Line>& lines) {
  std::vector<json> rows;
  for (const Line& l : lines) rows.push_back(fields_of(l));
  return render_csv(kFields, rows);
}

std::string render_json(const std::vector<Line>& lines) {
  json rows = json::array();
  for (const Line& l : lines) rows.push_back(fields_of(l));
  return rows.dump(2) + "\n";
}

}  // namespace

Format parse_format(const std::string& text) {
  if (text == "table") return Format::table;
  if (text == "json") return Format::json;
  if (text == "markdown" || text == "md") return Format::markdown;
  if (text == "csv") return Format::csv;
  throw UsageError(fmt::format("unknown format '{}': valid values are table, json, markdown, csv", text));
}

std::string render(Format format, const std::vector<ReportRow>& rows, const nlohmann::json& peaks,
                   Mode primary_mode) {
  const std::vector<Line> lines = lines_of(rows, peaks, primary_mode);
  switch (format) {
    case Format::table: {
      const std::string notes = clock_notes(lines) + regime_notes(lines);
      return render_table(lines) + (notes.empty() ? "" : "\n" + notes);
    }
    case Format::markdown: {
      const std::string notes = clock_notes(lines) + regime_notes(lines);
      return render_markdown(lines) + (notes.empty() ? "" : "\n" + notes);
    }
    case Format::csv: return render_csv_lines(lines);
    case Format::json: return render_json(lines);
  }
  return {};
}

std::string format_seconds(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  struct Unit { double scale; const char* name; };
  constexpr Unit kUnits[] = {{1, "s"}, {1e-3, "ms"}, {1e-6, "us"}, {1e-9, "ns"}};
  for (const Unit& u : kUnits) {
    const double value = s / u.scale;
    if (value >= 1 || u.scale == 1e-9) {
      return value >= 100 ? fmt::format("{:.1f} {}", value, u.name) : fmt::format("{:.2f} {}", value, u.name);
    }
  }
  return "-";
}

std::string format_bytes(double bytes) {
  if (!std::isfinite(bytes) || bytes < 0) return "-";
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int unit = 0;
  double value = bytes;
  while (value >= 1024 && unit + 1 < int(std::size(kUnits))) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", value) : fmt::format("{:.2f} {}", value, kUnits[unit]);
}

}  // namespace aisp::harness
