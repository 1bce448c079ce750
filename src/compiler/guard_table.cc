#include "compiler/guard_table.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "compiler/compile.h"  // trace
#include "core/error.h"

namespace aisp::compiler {
namespace {
std::string dims(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ",")); }  // "[2,64]"

// e's signature with its marked dims taken from s: what s is compared with in dynamic mode.
Signature with_marked_dims(const Signature& pattern, const std::vector<std::pair<std::size_t, std::size_t>>& marked,
                           const Signature& s) {
  Signature t = pattern;
  for (const auto& [i, a] : marked)
    if (i < s.inputs.size() && a < s.inputs[i].shape.size() && a < t.inputs[i].shape.size())
      t.inputs[i].shape[a] = s.inputs[i].shape[a];
  return t;
}
// Whether s equals the compiled signature except at the marked dims, compared in place: building
// with_marked_dims' copy on every call cost a dynamic guard 8-17 us per hit against a static one's
// 1.4-3 us for the 12-layer GPT's 197 inputs (H200, ch14:dynamic_shapes_gpu, 2026-11-28).
bool equal_except_marked(const Signature& compiled, const std::vector<std::pair<std::size_t, std::size_t>>& marked,
                         const Signature& s) {
  if (compiled.inputs.size() != s.inputs.size()) return false;
  for (std::size_t i = 0; i < s.inputs.size(); ++i) {
    const InputSpec &want = compiled.inputs[i], &got = s.inputs[i];
    if (want.dtype != got.dtype || want.shape.size() != got.shape.size()) return false;
    for (std::size_t a = 0; a < got.shape.size(); ++a)
      if (want.shape[a] != got.shape[a] &&
          std::find(marked.begin(), marked.end(), std::pair<std::size_t, std::size_t>{i, a}) == marked.end())
        return false;
  }
  return true;
}
}  // namespace

std::string Signature::to_string() const {
  std::vector<std::string> parts;
  for (const InputSpec& s : inputs) parts.push_back(fmt::format("{}{}", name_of(s.dtype), dims(s.shape)));
  return fmt::format("({})", fmt::join(parts, ", "));
}

Signature Signature::of(const std::vector<HostTensor>& inputs) {
  Signature s;
  for (const HostTensor& t : inputs) s.inputs.push_back({t.shape, t.dtype});
  return s;
}

std::string recompile_reason(const Signature& before, const Signature& now, const std::vector<std::string>& names) {
  if (before.inputs.size() != now.inputs.size())
    return fmt::format("input count {} -> {}", before.inputs.size(), now.inputs.size());
  std::vector<std::string> why;
  for (std::size_t i = 0; i < now.inputs.size(); ++i) {
    const std::string name = i < names.size() ? names[i] : fmt::format("#{}", i);
    const InputSpec &a = before.inputs[i], &b = now.inputs[i];
    if (a.shape != b.shape)
      why.push_back(fmt::format("input '{}' shape {} -> {}", name, dims(a.shape), dims(b.shape)));
    if (a.dtype != b.dtype) why.push_back(fmt::format("input '{}' dtype {} -> {}", name, name_of(a.dtype), name_of(b.dtype)));
  }
  return fmt::format("{}", fmt::join(why, "; "));
}

std::vector<std::int64_t> input_leads(const Graph& lowered, const SymbolicSizes& sym) {
  std::vector<std::int64_t> leads;
  for (NodeId id : lowered.inputs()) leads.push_back(sym.lead_of(id));
  return leads;
}

GuardTable::GuardTable(Build build, GuardRules rules) : build_(std::move(build)), rules_(std::move(rules)) {
  if (rules_.recompile_limit < 1) throw Error("recompile_limit must be at least 1");
}

std::vector<Signature> GuardTable::signatures() const {
  std::vector<Signature> out;
  for (const Entry& e : entries_) out.push_back(e.signature);
  return out;
}

std::string GuardTable::Entry::describe() const {
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < signature.inputs.size(); ++i) {
    const InputSpec& in = signature.inputs[i];
    std::vector<std::string> d;
    for (std::size_t a = 0; a < in.shape.size(); ++a)
      d.push_back(std::find(dynamic.begin(), dynamic.end(), std::pair{i, a}) != dynamic.end() ? "n" : std::to_string(in.shape[a]));
    parts.push_back(fmt::format("{}[{}]", name_of(in.dtype), fmt::join(d, ",")));
  }
  return fmt::format("({})", fmt::join(parts, ", "));
}

std::vector<std::string> GuardTable::describe() const {
  std::vector<std::string> out;
  for (const Entry& e : entries_) out.push_back(e.describe());
  return out;
}

bool GuardTable::serves(const Entry& e, const Signature& s) const {
  if (e.dynamic.empty()) return e.signature == s;
  if (!equal_except_marked(e.signature, e.dynamic, s)) return false;
  const std::int64_t n = s.inputs[e.dynamic[0].first].shape[e.dynamic[0].second];
  for (const auto& [i, a] : e.dynamic)
    if (s.inputs[i].shape[a] != n) return false;
  return n >= rules_.dynamic_min && n <= rules_.dynamic_max;
}

std::optional<std::int64_t> GuardTable::dynamic_size(const Signature& s, const std::vector<std::string>& names,
                                                     Dims* marked, std::string* why) const {
  marked->clear();
  std::optional<std::int64_t> n;
  for (const DynamicDim& d : rules_.dynamic) {
    const auto it = std::find(names.begin(), names.end(), d.input);
    if (it == names.end())
      throw Error(fmt::format("dynamic dim: the graph has no input named '{}' (inputs: {})", d.input, fmt::join(names, ", ")));
    const std::size_t i = std::size_t(it - names.begin());
    if (d.axis < 0 || std::size_t(d.axis) >= s.inputs[i].shape.size())
      throw Error(fmt::format("dynamic dim: input '{}' has rank {}, no axis {}", d.input, s.inputs[i].shape.size(), d.axis));
    const std::int64_t v = s.inputs[i].shape[std::size_t(d.axis)];
    if (n && *n != v)
      throw Error(fmt::format("dynamic dims share one size n, but input '{}' dim {} = {} while an earlier marked dim is {}",
                              d.input, d.axis, v, *n));
    n = v;
    marked->emplace_back(i, std::size_t(d.axis));
  }
  if (n && (*n < rules_.dynamic_min || *n > rules_.dynamic_max)) {
    *why = fmt::format("input '{}' dim {} = {} is outside the dynamic range [{}, {}]", rules_.dynamic[0].input,
                       rules_.dynamic[0].axis, *n, rules_.dynamic_min, rules_.dynamic_max);
    marked->clear();
    return std::nullopt;
  }
  return n;
}

std::string GuardStats::to_string() const {
  return fmt::format("{} calls, {} compiles ({} recompiles{}), {} guard hits, guard {:.2f} us per hit", calls, compiles,
                     recompiles, dynamic_compiles > 0 ? fmt::format(", {} dynamic", dynamic_compiles) : "", guard_hits,
                     guard_us_per_hit());
}

std::size_t GuardTable::lookup(const Signature& s, const Compile& compile) {
  ++stats_.calls;
  const auto start = std::chrono::steady_clock::now();
  const auto hit = [&](std::size_t i) {
    ++stats_.guard_hits;
    stats_.guard_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    last_ = int(i);
    return i;
  };
  // The guard: the previous call's entry first (the common case), then every other one.
  if (last_ >= 0 && serves(entries_[std::size_t(last_)], s)) return hit(std::size_t(last_));
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (serves(entries_[i], s)) return hit(i);
  if (last_ >= 0) check_and_log_recompile(s);
  return compile_new(s, compile);
}

void GuardTable::check_and_log_recompile(const Signature& s) {
  const Entry& prev = entries_[std::size_t(last_)];
  std::string reason = recompile_reason(with_marked_dims(prev.signature, prev.dynamic, s), s, prev.names);
  if (reason.empty()) {  // only the dynamic dims differ: out of range, or no longer one shared size
    Dims marked;
    dynamic_size(s, prev.names, &marked, &reason);
  }
  if (int(entries_.size()) >= rules_.recompile_limit) {
    std::vector<std::string> seen;
    for (const Entry& e : entries_) seen.push_back("  " + e.describe());
    throw Error(fmt::format(
        "recompile limit ({}) reached: {} would be specialization {} ({}).\nsignatures compiled:\n{}\n"
        "Mark the varying sizes dynamic (dynamic mode compiles once for all of them) or raise the guard "
        "options' recompile_limit.",
        rules_.recompile_limit, s.to_string(), entries_.size() + 1, reason, fmt::join(seen, "\n")));
  }
  stats_.reasons.push_back(reason);
  ++stats_.recompiles;
  if (rules_.log) rules_.log(reason);
  else std::cerr << "[aisp compile] recompiling: " << reason << "\n";
}

std::size_t GuardTable::compile_new(const Signature& s, const Compile& compile) {
  double trace_ms = 0;
  const Graph g = trace([&](Graph& out) { out = build_(s); }, &trace_ms);
  Entry e{s, {}, {}};
  for (NodeId id : g.inputs()) e.names.push_back(g.node(id).name);
  // The traced graph must accept what the guard let through.
  Signature traced;
  for (NodeId id : g.inputs()) traced.inputs.push_back({g.node(id).shape, g.node(id).dtype});
  if (!(traced == s))
    throw Error(fmt::format("the graph built for {} takes {} ({})", s.to_string(), traced.to_string(),
                            recompile_reason(s, traced, e.names)));
  std::string out_of_range;
  const std::optional<std::int64_t> n =
      rules_.dynamic.empty() ? std::nullopt : dynamic_size(s, e.names, &e.dynamic, &out_of_range);
  if (n) {
    // One compile for every size in the range: the builder sees the marked dims set to each traced n.
    const Dims marked = e.dynamic;
    const BuildAtSize at_size = [&, marked](std::int64_t m) {
      Signature t = s;
      for (const auto& [i, a] : marked) t.inputs[i].shape[a] = m;
      return build_(t);
    };
    const std::vector<std::int64_t> leads = compile({s, g, trace_ms, &at_size});
    for (const auto& [i, a] : marked)
      if (a != 0 || i >= leads.size() || leads[i] != 1)
        throw Error(fmt::format("dynamic dim: input '{}' axis {} is not the leading dim of the compiled graph; mark "
                                "axis 0 of an input whose leading dim is the varying size", e.names[i], a));
    ++stats_.dynamic_compiles;
  } else {
    compile({s, g, trace_ms, nullptr});
  }
  ++stats_.compiles;
  entries_.push_back(std::move(e));
  last_ = int(entries_.size()) - 1;
  return entries_.size() - 1;
}

}  // namespace aisp::compiler
