#include "harness/kernel_report.h"

#include <fmt/format.h>

#include "core/error.h"
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

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const auto part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!part.empty()) parts.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return parts;
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
      {"example"},          {"variant"},     {"launches", true}, {"in graph", true}, {"kernels", true},
      {"kernel time", true}, {"busy", true}, {"span", true},     {"idle", true},     {"idle share", true}};
  return columns;
}

std::vector<std::string> summary_cells(const VariantResult& r) {
  if (!r.kernels) return {r.example, r.variant, "-", "-", "-", "-", "-", "-", "-", missing_reason(r)};
  const KernelBreakdown& b = *r.kernels;
  return {r.example,
          r.variant,
          fmt::format("{}", b.launches),
          fmt::format("{}", b.in_graph),
          fmt::format("{}", b.groups.size()),
          format_seconds(b.kernel_s),
          format_seconds(b.busy_s),
          format_seconds(b.span_s),
          format_seconds(b.idle_s()),
          percent(b.idle_s(), b.span_s)};
}

const std::vector<TextColumn>& kernel_columns() {
  static const std::vector<TextColumn> columns = {{"kernel"},          {"calls", true}, {"total", true},
                                                  {"share", true},     {"mean", true},  {"max", true}};
  return columns;
}

std::vector<std::vector<std::string>> kernel_cells(const KernelBreakdown& b, int top) {
  std::vector<std::vector<std::string>> rows;
  const std::size_t shown = top > 0 ? std::min<std::size_t>(std::size_t(top), b.groups.size()) : b.groups.size();
  for (std::size_t i = 0; i < shown; ++i) {
    const KernelGroup& g = b.groups[i];
    rows.push_back({display_kernel_name(g.name), fmt::format("{}", g.calls), format_seconds(g.total_s),
                    percent(g.total_s, b.kernel_s), format_seconds(g.total_s / g.calls), format_seconds(g.max_s)});
  }
  if (shown < b.groups.size()) {
    int calls = 0;
    double total = 0;
    for (std::size_t i = shown; i < b.groups.size(); ++i) {
      calls += b.groups[i].calls;
      total += b.groups[i].total_s;
    }
    rows.push_back({fmt::format("({} more kernels)", b.groups.size() - shown), fmt::format("{}", calls),
                    format_seconds(total), percent(total, b.kernel_s), "", ""});
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
  static const std::vector<std::string> fields = {"example", "variant", "kernel", "calls", "total_s",
                                                  "mean_s",  "max_s",   "share",  "name"};
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
                      {"name", g.name}});
    }
  }
  return render_csv(fields, rows);
}

}  // namespace

std::vector<const VariantResult*> select_variants(const std::vector<VariantResult>& variants,
                                                  const std::string& targets) {
  const auto wanted = split_commas(targets);
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
