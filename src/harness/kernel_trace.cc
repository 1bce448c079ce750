#include "harness/kernel_trace.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::harness {
namespace {

using nlohmann::json;

double seconds(std::uint64_t ns) { return double(ns) * 1e-9; }

// The union of [start, end) intervals, summed.
std::uint64_t covered_ns(std::vector<std::pair<std::uint64_t, std::uint64_t>> intervals) {
  std::sort(intervals.begin(), intervals.end());
  std::uint64_t total = 0;
  std::uint64_t open_start = 0, open_end = 0;
  bool open = false;
  for (const auto& [start, end] : intervals) {
    if (open && start <= open_end) {
      open_end = std::max(open_end, end);
      continue;
    }
    if (open) total += open_end - open_start;
    open_start = start;
    open_end = end;
    open = true;
  }
  if (open) total += open_end - open_start;
  return total;
}

std::string demangled(const std::string& name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> text(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && text ? std::string(text.get()) : name;
}

// Drops a trailing "(parameters)" and a leading return type ("void "), both at template depth 0.
std::string without_signature(std::string s) {
  if (!s.empty() && s.back() == ')') {
    int depth = 0;
    for (std::size_t i = s.size(); i-- > 0;) {
      if (s[i] == ')') ++depth;
      if (s[i] == '(' && --depth == 0) {
        s.erase(i);
        break;
      }
    }
  }
  if (s.rfind("void ", 0) == 0) s.erase(0, 5);
  return s;
}

template <class T>
T field(const json& j, const char* key) {
  if (!j.contains(key)) throw Error(fmt::format("kernel breakdown: missing field '{}'", key));
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    throw Error(fmt::format("kernel breakdown: field '{}': {}", key, e.what()));
  }
}

}  // namespace

KernelBreakdown summarize_kernels(const std::vector<KernelRecord>& records) {
  KernelBreakdown b;
  if (records.empty()) return b;
  std::map<std::string, KernelGroup> by_name;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> intervals;
  intervals.reserve(records.size());
  std::uint64_t first = records.front().start_ns, last = records.front().end_ns;
  for (const KernelRecord& r : records) {
    if (r.end_ns < r.start_ns) {
      throw Error(fmt::format("kernel record of {} ends ({} ns) before it starts ({} ns): the device "
                              "timestamps are unusable; run again, or without other profilers attached",
                              r.name, r.end_ns, r.start_ns));
    }
    const double d = seconds(r.end_ns - r.start_ns);
    KernelGroup& g = by_name[r.name];
    g.name = r.name;
    ++g.calls;
    g.total_s += d;
    g.max_s = std::max(g.max_s, d);
    if (r.kind == TraceKind::kernel) {
      ++b.launches;
      b.kernel_s += d;
      if (r.in_graph) ++b.in_graph;
    } else {
      ++b.memory_ops;
      b.memory_op_s += d;
    }
    intervals.emplace_back(r.start_ns, r.end_ns);
    first = std::min(first, r.start_ns);
    last = std::max(last, r.end_ns);
  }
  b.busy_s = seconds(covered_ns(std::move(intervals)));
  // Each gap in the busy time belongs to the record that ends it. The gaps add up to span - busy.
  std::vector<const KernelRecord*> by_start;
  by_start.reserve(records.size());
  for (const KernelRecord& r : records) by_start.push_back(&r);
  std::stable_sort(by_start.begin(), by_start.end(),
                   [](const KernelRecord* a, const KernelRecord* c) { return a->start_ns < c->start_ns; });
  std::uint64_t frontier = first;  // the latest end so far
  for (const KernelRecord* r : by_start) {
    if (r->start_ns > frontier) by_name[r->name].idle_before_s += seconds(r->start_ns - frontier);
    frontier = std::max(frontier, r->end_ns);
  }
  b.span_s = seconds(last - first);
  for (auto& [name, group] : by_name) b.groups.push_back(std::move(group));
  std::stable_sort(b.groups.begin(), b.groups.end(),
                   [](const KernelGroup& a, const KernelGroup& c) { return a.total_s > c.total_s; });
  return b;
}

std::string display_kernel_name(const std::string& name, std::size_t max_chars) {
  std::string s = without_signature(demangled(name));
  if (s.size() <= max_chars || max_chars < 8) return s;
  const std::size_t head = (max_chars - 3) * 2 / 3;
  const std::size_t tail = max_chars - 3 - head;
  return s.substr(0, head) + "..." + s.substr(s.size() - tail);
}

json to_json(const KernelBreakdown& b) {
  json groups = json::array();
  for (const KernelGroup& g : b.groups)
    groups.push_back({{"name", g.name},
                      {"calls", g.calls},
                      {"total_s", g.total_s},
                      {"max_s", g.max_s},
                      {"idle_before_s", g.idle_before_s}});
  return {{"launches", b.launches},     {"in_graph", b.in_graph}, {"kernel_s", b.kernel_s},
          {"memory_ops", b.memory_ops}, {"memory_op_s", b.memory_op_s}, {"busy_s", b.busy_s},
          {"span_s", b.span_s},         {"kernels", groups}};
}

KernelBreakdown kernel_breakdown_from_json(const json& j) {
  if (!j.is_object()) throw Error(fmt::format("kernel breakdown: expected an object, found {}", j.type_name()));
  KernelBreakdown b;
  b.launches = field<int>(j, "launches");
  b.in_graph = field<int>(j, "in_graph");
  b.kernel_s = field<double>(j, "kernel_s");
  // Results from before memory operations were traced have none.
  b.memory_ops = j.contains("memory_ops") ? field<int>(j, "memory_ops") : 0;
  b.memory_op_s = j.contains("memory_op_s") ? field<double>(j, "memory_op_s") : 0.0;
  b.busy_s = field<double>(j, "busy_s");
  b.span_s = field<double>(j, "span_s");
  for (const json& g : field<json>(j, "kernels")) {
    // Results from before the gaps were attributed have no idle_before_s.
    b.groups.push_back({field<std::string>(g, "name"), field<int>(g, "calls"), field<double>(g, "total_s"),
                        field<double>(g, "max_s"), g.contains("idle_before_s") ? field<double>(g, "idle_before_s") : 0.0});
  }
  return b;
}

}  // namespace aisp::harness
