#include "harness/kernel_report.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "core/error.h"
#include "harness/registry.h"
#include "harness/text_table.h"

namespace aisp::harness {
namespace {

using nlohmann::json;

bool matches(const std::string& example, const std::string& target) {
  if (example == target) return true;
  const auto colon = example.find(':');
  if (colon == std::string::npos) return false;
  return example.substr(0, colon) == target || example.substr(colon + 1) == target;
}

// Why a row has no breakdown, in words.
std::string missing_reason(const VariantResult& r) {
  if (r.status != Status::passed) return fmt::format("{}: {}", name_of(r.status), r.reason);
  if (!r.launches_note.empty()) return r.launches_note;
  return "no kernel breakdown recorded (a run from before kernel tracing)";
}

std::string percent(double part, double whole) { return whole > 0 ? fmt::format("{:.1f}%", 100 * part / whole) : "-"; }

const std::vector<TextColumn>& summary_columns() {
  static const std::vector<TextColumn> columns = {
      {"example"},          {"variant"},          {"launches", true}, {"in graph", true}, {"kernels", true},
      {"kernel time", true}, {"memory ops", true}, {"busy", true},     {"span", true},     {"idle", true},
      {"idle share", true}};
  return columns;
}

std::vector<std::string> summary_cells(const VariantResult& r) {
  if (!r.kernels) return {r.example, r.variant, "-", "-", "-", "-", "-", "-", "-", "-", missing_reason(r)};
  const KernelBreakdown& b = *r.kernels;
  return {r.example,
          r.variant,
          fmt::format("{}", b.launches),
          fmt::format("{}", b.in_graph),
          fmt::format("{}", b.groups.size()),
          format_seconds(b.kernel_s),
          b.memory_ops > 0 ? fmt::format("{} ({})", b.memory_ops, format_seconds(b.memory_op_s)) : "0",
          format_seconds(b.busy_s),
          format_seconds(b.span_s),
          format_seconds(b.idle_s()),
          percent(b.idle_s(), b.span_s)};
}

const std::vector<TextColumn>& kernel_columns() {
  static const std::vector<TextColumn> columns = {{"kernel"},      {"calls", true}, {"total", true},
                                                  {"share", true}, {"mean", true},  {"max", true},
                                                  {"idle before", true}};
  return columns;
}

std::vector<std::vector<std::string>> kernel_cells(const KernelBreakdown& b, int top) {
  std::vector<std::vector<std::string>> rows;
  const std::size_t shown = top > 0 ? std::min<std::size_t>(std::size_t(top), b.groups.size()) : b.groups.size();
  for (std::size_t i = 0; i < shown; ++i) {
    const KernelGroup& g = b.groups[i];
    rows.push_back({display_kernel_name(g.name), fmt::format("{}", g.calls), format_seconds(g.total_s),
                    percent(g.total_s, b.kernel_s), format_seconds(g.total_s / g.calls), format_seconds(g.max_s),
                    format_seconds(g.idle_before_s)});
  }
  if (shown < b.groups.size()) {
    int calls = 0;
    double total = 0, idle_before = 0;
    for (std::size_t i = shown; i < b.groups.size(); ++i) {
      calls += b.groups[i].calls;
      total += b.groups[i].total_s;
      idle_before += b.groups[i].idle_before_s;
    }
    rows.push_back({fmt::format("({} more kernels)", b.groups.size() - shown), fmt::format("{}", calls),
                    format_seconds(total), percent(total, b.kernel_s), "", "", format_seconds(idle_before)});
  }
  return rows;
}

std::string render_text(bool markdown, const std::vector<const VariantResult*>& variants, int top) {
  const auto table = [&](const std::vector<TextColumn>& c, const std::vector<std::vector<std::string>>& rows) {
    return markdown ? render_markdown_table(c, rows) : render_plain_table(c, rows);
  };
  std::vector<std::vector<std::string>> summary;
  for (const VariantResult* r : variants) summary.push_back(summary_cells(*r));
  std::string out = (markdown ? "## Kernels of one traced call per variant\n\n" : "") + table(summary_columns(), summary);
  for (const VariantResult* r : variants) {
    if (!r->kernels || r->kernels->groups.empty()) continue;
    out += markdown ? fmt::format("\n### {} {}\n\n", r->example, r->variant)
                    : fmt::format("\n{} {}\n", r->example, r->variant);
    out += table(kernel_columns(), kernel_cells(*r->kernels, top));
  }
  return out;
}

json kernel_json(const VariantResult& r) {
  json row = {{"example", r.example}, {"variant", r.variant}};
  if (!r.kernels) {
    row["kernels"] = nullptr;
    row["reason"] = missing_reason(r);
    return row;
  }
  json breakdown = to_json(*r.kernels);
  for (json& g : breakdown.at("kernels")) g["display_name"] = display_kernel_name(g.at("name").get<std::string>());
  row["kernels"] = std::move(breakdown);
  return row;
}

std::string render_kernel_csv(const std::vector<const VariantResult*>& variants) {
  static const std::vector<std::string> fields = {"example", "variant", "kernel", "calls",         "total_s",
                                                  "mean_s",  "max_s",   "share",  "idle_before_s", "name"};
  std::vector<json> rows;
  for (const VariantResult* r : variants) {
    if (!r->kernels) continue;
    for (const KernelGroup& g : r->kernels->groups) {
      rows.push_back({{"example", r->example},
                      {"variant", r->variant},
                      {"kernel", display_kernel_name(g.name)},
                      {"calls", g.calls},
                      {"total_s", g.total_s},
                      {"mean_s", g.total_s / g.calls},
                      {"max_s", g.max_s},
                      {"share", r->kernels->kernel_s > 0 ? g.total_s / r->kernels->kernel_s : 0.0},
                      {"idle_before_s", g.idle_before_s},
                      {"name", g.name}});
    }
  }
  return render_csv(fields, rows);
}

// ---- two runs ----

struct KernelDelta {
  std::string name;
  int base_calls = 0, run_calls = 0;
  double base_s = 0, run_s = 0;
  double delta_s() const { return run_s - base_s; }
};

struct RowPair {
  const VariantResult* base = nullptr;
  const VariantResult* run = nullptr;
};

// The rows both runs traced, in the base run's order.
std::vector<RowPair> traced_pairs(const std::vector<const VariantResult*>& base,
                                  const std::vector<const VariantResult*>& run) {
  std::vector<RowPair> pairs;
  for (const VariantResult* b : base) {
    if (!b->kernels) continue;
    for (const VariantResult* r : run) {
      if (r->kernels && r->example == b->example && r->variant == b->variant) pairs.push_back({b, r});
    }
  }
  return pairs;
}

// Kernels by name over both sides, largest |difference| first (ties: by name).
std::vector<KernelDelta> kernel_deltas(const KernelBreakdown& base, const KernelBreakdown& run) {
  std::map<std::string, KernelDelta> by_name;
  for (const KernelGroup& g : base.groups) {
    KernelDelta& d = by_name[g.name];
    d.name = g.name, d.base_calls = g.calls, d.base_s = g.total_s;
  }
  for (const KernelGroup& g : run.groups) {
    KernelDelta& d = by_name[g.name];
    d.name = g.name, d.run_calls = g.calls, d.run_s = g.total_s;
  }
  std::vector<KernelDelta> deltas;
  for (auto& [name, d] : by_name) deltas.push_back(std::move(d));
  std::stable_sort(deltas.begin(), deltas.end(), [](const KernelDelta& a, const KernelDelta& b) {
    return std::abs(a.delta_s()) > std::abs(b.delta_s());
  });
  return deltas;
}

std::string signed_seconds(double s) { return (s < 0 ? "-" : "+") + format_seconds(std::abs(s)); }

std::string arrow(const std::string& a, const std::string& b) { return a + " -> " + b; }

const std::vector<TextColumn>& pair_columns() {
  static const std::vector<TextColumn> columns = {{"example"},         {"variant"},   {"launches", true},
                                                  {"kernel time", true}, {"change", true}, {"idle", true}};
  return columns;
}

std::vector<std::string> pair_cells(const RowPair& p) {
  const KernelBreakdown &b = *p.base->kernels, &r = *p.run->kernels;
  return {p.base->example,
          p.base->variant,
          arrow(fmt::format("{}", b.launches), fmt::format("{}", r.launches)),
          arrow(format_seconds(b.kernel_s), format_seconds(r.kernel_s)),
          signed_seconds(r.kernel_s - b.kernel_s),
          arrow(format_seconds(b.idle_s()), format_seconds(r.idle_s()))};
}

const std::vector<TextColumn>& delta_columns() {
  static const std::vector<TextColumn> columns = {{"kernel"},           {"calls", true}, {"base", true},
                                                  {"run", true},        {"change", true}};
  return columns;
}

std::vector<std::vector<std::string>> delta_cells(const std::vector<KernelDelta>& deltas, int top) {
  std::vector<std::vector<std::string>> rows;
  const std::size_t shown = top > 0 ? std::min<std::size_t>(std::size_t(top), deltas.size()) : deltas.size();
  for (std::size_t i = 0; i < shown; ++i) {
    const KernelDelta& d = deltas[i];
    // A kernel only one side ran shows "-" on the other.
    rows.push_back({display_kernel_name(d.name), arrow(fmt::format("{}", d.base_calls), fmt::format("{}", d.run_calls)),
                    d.base_calls > 0 ? format_seconds(d.base_s) : "-", d.run_calls > 0 ? format_seconds(d.run_s) : "-",
                    signed_seconds(d.delta_s())});
  }
  if (shown < deltas.size()) {
    double base = 0, run = 0;
    for (std::size_t i = shown; i < deltas.size(); ++i) base += deltas[i].base_s, run += deltas[i].run_s;
    rows.push_back({fmt::format("({} more kernels)", deltas.size() - shown), "", format_seconds(base),
                    format_seconds(run), signed_seconds(run - base)});
  }
  return rows;
}

}  // namespace

std::string render_kernel_diff(Format format, const std::vector<const VariantResult*>& base,
                               const std::vector<const VariantResult*>& run, int top) {
  const std::vector<RowPair> pairs = traced_pairs(base, run);
  if (format == Format::json || format == Format::csv) {
    std::vector<json> rows;
    json out = json::array();
    for (const RowPair& p : pairs) {
      json kernels = json::array();
      for (const KernelDelta& d : kernel_deltas(*p.base->kernels, *p.run->kernels)) {
        const json k = {{"example", p.base->example}, {"variant", p.base->variant},
                        {"kernel", display_kernel_name(d.name)}, {"base_calls", d.base_calls},
                        {"run_calls", d.run_calls}, {"base_s", d.base_s}, {"run_s", d.run_s},
                        {"change_s", d.delta_s()}, {"name", d.name}};
        rows.push_back(k);
        kernels.push_back(k);
      }
      out.push_back({{"example", p.base->example},
                     {"variant", p.base->variant},
                     {"base", to_json(*p.base->kernels)},
                     {"run", to_json(*p.run->kernels)},
                     {"kernels", kernels}});
    }
    if (format == Format::json) return out.dump(2) + "\n";
    return render_csv({"example", "variant", "kernel", "base_calls", "run_calls", "base_s", "run_s", "change_s", "name"},
                      rows);
  }
  const bool markdown = format == Format::markdown;
  const auto table = [&](const std::vector<TextColumn>& c, const std::vector<std::vector<std::string>>& rows) {
    return markdown ? render_markdown_table(c, rows) : render_plain_table(c, rows);
  };
  if (pairs.empty()) return "no row was traced in both runs (kernel breakdowns are recorded since aisp's kernel tracing)\n";
  std::vector<std::vector<std::string>> summary;
  for (const RowPair& p : pairs) summary.push_back(pair_cells(p));
  std::string out = table(pair_columns(), summary);
  for (const RowPair& p : pairs) {
    out += markdown ? fmt::format("\n### {} {}\n\n", p.base->example, p.base->variant)
                    : fmt::format("\n{} {}\n", p.base->example, p.base->variant);
    out += table(delta_columns(), delta_cells(kernel_deltas(*p.base->kernels, *p.run->kernels), top));
  }
  return out;
}

std::vector<const VariantResult*> select_variants(const std::vector<VariantResult>& variants,
                                                  const std::string& targets) {
  std::vector<std::string> wanted;
  for (auto& t : split_target_list(targets, ',')) {
    if (!t.empty()) wanted.push_back(std::move(t));
  }
  std::vector<const VariantResult*> chosen;
  for (const VariantResult& v : variants) {
    bool keep = wanted.empty();
    for (const auto& t : wanted) keep = keep || matches(v.example, t);
    if (keep) chosen.push_back(&v);
  }
  if (chosen.empty() && !wanted.empty()) {
    std::string held;
    for (const VariantResult& v : variants) {
      if (held.find(v.example) == std::string::npos) held += (held.empty() ? "" : ", ") + v.example;
    }
    throw UsageError(fmt::format("no row of the run matches '{}'; the run holds: {}", targets,
                                 held.empty() ? "(no rows)" : held));
  }
  return chosen;
}

std::string render_kernel_report(Format format, const std::vector<const VariantResult*>& variants, int top) {
  switch (format) {
    case Format::table: return render_text(false, variants, top);
    case Format::markdown: return render_text(true, variants, top);
    case Format::csv: return render_kernel_csv(variants);
    case Format::json: {
      json rows = json::array();
      for (const VariantResult* r : variants) rows.push_back(kernel_json(*r));
      return rows.dump(2) + "\n";
    }
  }
  throw Error("unknown report format");
}

}  // namespace aisp::harness
