#include "harness/run_diff.h"

#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "harness/text_table.h"

namespace aisp::harness {
namespace {

using nlohmann::json;

const ModeResult* measured(const VariantResult& r, Mode mode) {
  if (r.status != Status::passed) return nullptr;
  const ModeResult* m = r.mode(mode);
  return m && m->measured && !m->samples_s.empty() ? m : nullptr;
}

std::string why_not(const VariantResult* r, const char* side, Mode mode) {
  if (r->status != Status::passed) return fmt::format("{} {}: {}", side, name_of(r->status), r->reason);
  return fmt::format("{}: {} not measured", side, name_of(mode));
}

DiffRow compare_rows(const VariantResult* base, const VariantResult* run, Mode mode, double tolerance) {
  DiffRow row;
  const VariantResult& any = base ? *base : *run;
  row.example = any.example;
  row.variant = any.variant;
  if (base && base->setup_s >= 0) row.base_setup_s = base->setup_s;
  if (run && run->setup_s >= 0) row.run_setup_s = run->setup_s;
  if (!base || !run) {
    row.change = base ? Change::only_in_base : Change::only_in_run;
    return row;
  }
  const ModeResult* b = measured(*base, mode);
  const ModeResult* r = measured(*run, mode);
  const auto mhz = [](const ModeResult* m) -> std::optional<double> {
    if (!m || !m->clocks || m->clocks->readings == 0) return std::nullopt;
    return m->clocks->sm_mhz_mean;
  };
  if (b) row.base_median_s = summarize(b->samples_s).median, row.base_sm_mhz = mhz(b);
  if (r) row.run_median_s = summarize(r->samples_s).median, row.run_sm_mhz = mhz(r);
  if (!b || !r) {
    row.note = !b ? why_not(base, "base", mode) : why_not(run, "run", mode);
    return row;
  }
  row.ratio = speedup_of(b->samples_s, r->samples_s);
  if (row.ratio->ci_low > 1 + tolerance)
    row.change = Change::faster;
  else if (row.ratio->ci_high < 1 - tolerance)
    row.change = Change::slower;
  else
    row.change = Change::same;
  return row;
}

std::string describe(const StoredRun& run) {
  return fmt::format("{} ({}, commit {}{})", run.results.run_id, run.gpu_name().empty() ? "no GPU" : run.gpu_name(),
                     run.commit().substr(0, 12), run.dirty() ? ", dirty" : "");
}

std::string gpu_uuid(const StoredRun& run) {
  const json gpu = run.manifest.value("gpu", json::object());
  return gpu.is_object() ? gpu.value("uuid", std::string()) : std::string();
}

std::string heading(const RunDiff& d) {
  std::string text = fmt::format("base {}\nrun  {}\nratio = base median / run median ({} mode; above 1: the run is faster), "
                                 "tolerance {:.0f} %\n",
                                 d.base_id, d.run_id, name_of(d.mode), 100 * d.tolerance);
  const bool any_gpu = !d.base_gpu.empty() || !d.run_gpu.empty();
  if (!d.same_model)
    text += "WARNING: different GPU models: every change below includes the machine\n";
  else if (!d.same_gpu && any_gpu)
    text += "note: the same GPU model, not the same device: machine-to-machine variation is in the numbers\n";
  if (d.base_process_state != d.run_process_state && any_gpu)
    text += fmt::format("WARNING: the CUDA variants were timed in different process states (base: {}; run: {}): "
                        "CUDA-graph rows with many short kernels change with it (README, \"One process state for "
                        "all\")\n",
                        d.base_process_state, d.run_process_state);
  return text + "\n";
}

const std::vector<TextColumn>& diff_columns() {
  static const std::vector<TextColumn> columns = {
      {"example"}, {"variant"}, {"base", true}, {"run", true}, {"SM clock base / run", true}, {"ratio [95% CI]"},
      {"change"},  {"setup base / run", true}};
  return columns;
}

std::vector<std::string> cells_of(const DiffRow& r) {
  auto time = [](const std::optional<double>& s) { return s ? format_seconds(*s) : std::string("-"); };
  std::string change = name_of(r.change);
  if (!r.note.empty()) change += ": " + r.note;
  auto mhz = [](const std::optional<double>& m) { return m ? fmt::format("{:.0f}", *m) : std::string("-"); };
  const std::string clocks =
      r.base_sm_mhz || r.run_sm_mhz ? fmt::format("{} / {} MHz", mhz(r.base_sm_mhz), mhz(r.run_sm_mhz)) : "-";
  const std::string setup =
      r.base_setup_s || r.run_setup_s ? fmt::format("{} / {}", time(r.base_setup_s), time(r.run_setup_s)) : "-";
  return {r.example, r.variant, time(r.base_median_s), time(r.run_median_s), clocks,
          r.ratio ? fmt::format("{:.3f}x [{:.3f}, {:.3f}]", r.ratio->ratio, r.ratio->ci_low, r.ratio->ci_high) : "-",
          change, setup};
}

json fields_of(const DiffRow& r, Mode mode) {
  auto number = [](const std::optional<double>& x) { return x && std::isfinite(*x) ? json(*x) : json(nullptr); };
  return {{"example", r.example},
          {"variant", r.variant},
          {"mode", name_of(mode)},
          {"base_median_s", number(r.base_median_s)},
          {"run_median_s", number(r.run_median_s)},
          {"base_sm_clock_mhz", number(r.base_sm_mhz)},
          {"run_sm_clock_mhz", number(r.run_sm_mhz)},
          {"ratio", number(r.ratio ? std::optional(r.ratio->ratio) : std::nullopt)},
          {"ratio_ci_low", number(r.ratio ? std::optional(r.ratio->ci_low) : std::nullopt)},
          {"ratio_ci_high", number(r.ratio ? std::optional(r.ratio->ci_high) : std::nullopt)},
          {"change", name_of(r.change)},
          {"note", r.note},
          {"base_setup_s", number(r.base_setup_s)},
          {"run_setup_s", number(r.run_setup_s)}};
}

}  // namespace

const char* name_of(Change c) {
  switch (c) {
    case Change::faster: return "faster";
    case Change::slower: return "SLOWER";
    case Change::same: return "same";
    case Change::only_in_base: return "only in base";
    case Change::only_in_run: return "only in run";
    case Change::not_comparable: return "not comparable";
  }
  return "?";
}

RunDiff diff_runs(const StoredRun& base, const StoredRun& run, const std::optional<Mode>& mode, double tolerance) {
  if (!(tolerance >= 0 && tolerance < 1))
    throw UsageError(fmt::format("--tolerance {} is not a fraction in [0, 1)", tolerance));
  RunDiff d;
  d.base_id = describe(base);
  d.run_id = describe(run);
  d.base_gpu = base.gpu_name();
  d.run_gpu = run.gpu_name();
  d.same_model = d.base_gpu == d.run_gpu;
  d.same_gpu = d.same_model && !gpu_uuid(base).empty() && gpu_uuid(base) == gpu_uuid(run);
  d.base_process_state = base.cuda_process_state();
  d.run_process_state = run.cuda_process_state();
  d.tolerance = tolerance;
  if (mode) {
    d.mode = *mode;
  } else {
    bool found = false;
    for (const auto& r : base.results.variants)
      if (r.status == Status::passed && !r.modes.empty()) {
        d.mode = r.modes.front().mode;
        found = true;
        break;
      }
    if (!found)
      throw Error(fmt::format("{}: no row of the base run passed, so there is no time to compare", base.dir.string()));
  }
  auto find = [](const StoredRun& s, const VariantResult& like) -> const VariantResult* {
    for (const auto& r : s.results.variants)
      if (r.example == like.example && r.variant == like.variant) return &r;
    return nullptr;
  };
  for (const auto& b : base.results.variants) d.rows.push_back(compare_rows(&b, find(run, b), d.mode, tolerance));
  for (const auto& r : run.results.variants)
    if (!find(base, r)) d.rows.push_back(compare_rows(nullptr, &r, d.mode, tolerance));
  return d;
}

std::string render(Format format, const RunDiff& d) {
  std::vector<std::vector<std::string>> cells;
  std::vector<json> fields;
  for (const DiffRow& r : d.rows) {
    cells.push_back(cells_of(r));
    fields.push_back(fields_of(r, d.mode));
  }
  static const std::vector<std::string> kFields = {"example",       "variant",           "mode",
                                                   "base_median_s", "run_median_s",      "base_sm_clock_mhz",
                                                   "run_sm_clock_mhz", "ratio",          "ratio_ci_low",
                                                   "ratio_ci_high", "change",            "note",
                                                   "base_setup_s",  "run_setup_s"};
  switch (format) {
    case Format::table: return heading(d) + render_plain_table(diff_columns(), cells);
    case Format::markdown: return heading(d) + render_markdown_table(diff_columns(), cells);
    case Format::csv: return render_csv(kFields, fields);
    case Format::json:
      return json{{"base", d.base_id}, {"run", d.run_id}, {"same_gpu_model", d.same_model}, {"same_device", d.same_gpu},
                  {"base_process_state", d.base_process_state}, {"run_process_state", d.run_process_state},
                  {"mode", name_of(d.mode)}, {"tolerance", d.tolerance}, {"rows", fields}}
                 .dump(2) + "\n";
  }
  return {};
}

}  // namespace aisp::harness
