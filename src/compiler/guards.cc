#include "compiler/guards.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <iostream>

#include "core/error.h"

namespace aisp::compiler {
namespace {
std::string dims(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ",")); }  // "[2,64]"
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

CompiledFunction::CompiledFunction(Build build, GuardOptions options)
    : build_(std::move(build)), options_(std::move(options)) {
  if (options_.recompile_limit < 1) throw Error("recompile_limit must be at least 1");
}

std::vector<Signature> CompiledFunction::signatures() const {
  std::vector<Signature> out;
  for (const Entry& e : entries_) out.push_back(e.signature);
  return out;
}

std::string CompiledFunction::Entry::describe() const {
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

std::vector<std::string> CompiledFunction::describe() const {
  std::vector<std::string> out;
  for (const Entry& e : entries_) out.push_back(e.describe());
  return out;
}

namespace {
// e's signature with its marked dims taken from s: what s is compared with in dynamic mode.
Signature with_marked_dims(const Signature& pattern, const std::vector<std::pair<std::size_t, std::size_t>>& dims,
                           const Signature& s) {
  Signature t = pattern;
  for (const auto& [i, a] : dims)
    if (i < s.inputs.size() && a < s.inputs[i].shape.size() && a < t.inputs[i].shape.size())
      t.inputs[i].shape[a] = s.inputs[i].shape[a];
  return t;
}
}  // namespace

bool CompiledFunction::serves(const Entry& e, const Signature& s) const {
  if (e.dynamic.empty()) return e.signature == s;
  if (!(with_marked_dims(e.signature, e.dynamic, s) == s)) return false;
  const std::int64_t n = s.inputs[e.dynamic[0].first].shape[e.dynamic[0].second];
  for (const auto& [i, a] : e.dynamic)
    if (s.inputs[i].shape[a] != n) return false;
  return n >= options_.dynamic_min && n <= options_.dynamic_max;
}

std::optional<std::int64_t> CompiledFunction::dynamic_size(const Signature& s, const std::vector<std::string>& names,
                                                           std::vector<std::pair<std::size_t, std::size_t>>* dims,
                                                           std::string* why) const {
  dims->clear();
  std::optional<std::int64_t> n;
  for (const DynamicDim& d : options_.dynamic) {
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
    dims->emplace_back(i, std::size_t(d.axis));
  }
  if (n && (*n < options_.dynamic_min || *n > options_.dynamic_max)) {
    *why = fmt::format("input '{}' dim {} = {} is outside the dynamic range [{}, {}]", options_.dynamic[0].input,
                       options_.dynamic[0].axis, *n, options_.dynamic_min, options_.dynamic_max);
    dims->clear();
    return std::nullopt;
  }
  return n;
}

CompiledGraph& CompiledFunction::specialization(const Signature& s) {
  ++stats_.calls;
  // The guard: the previous call's specialization first (the common case), then every other one.
  if (last_ >= 0 && serves(entries_[std::size_t(last_)], s)) {
    ++stats_.guard_hits;
    return *entries_[std::size_t(last_)].graph;
  }
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (serves(entries_[i], s)) {
      ++stats_.guard_hits;
      last_ = int(i);
      return *entries_[i].graph;
    }
  std::string reason;
  if (last_ >= 0) {
    const Entry& prev = entries_[std::size_t(last_)];
    reason = recompile_reason(with_marked_dims(prev.signature, prev.dynamic, s), s, prev.names);
    if (reason.empty()) {  // only the dynamic dims differ: out of range, or no longer one shared size
      std::vector<std::pair<std::size_t, std::size_t>> dims;
      std::string why;
      dynamic_size(s, prev.names, &dims, &why);
      reason = why;
    }
    if (int(entries_.size()) >= options_.recompile_limit) {
      std::vector<std::string> seen;
      for (const Entry& e : entries_) seen.push_back("  " + e.describe());
      throw Error(fmt::format(
          "recompile limit ({}) reached: {} would be specialization {} ({}).\nsignatures compiled:\n{}\n"
          "Mark the varying sizes dynamic (dynamic mode compiles once for all of them) or raise "
          "GuardOptions::recompile_limit.",
          options_.recompile_limit, s.to_string(), entries_.size() + 1, reason, fmt::join(seen, "\n")));
    }
    stats_.reasons.push_back(reason);
    ++stats_.recompiles;
    if (options_.log) options_.log(reason);
    else std::cerr << "[aisp compile] recompiling: " << reason << "\n";
  }
  double trace_ms = 0;
  Graph g = trace([&](Graph& out) { out = build_(s); }, &trace_ms);
  Entry e{s, {}, nullptr, {}};
  for (NodeId id : g.inputs()) e.names.push_back(g.node(id).name);
  // The traced graph must accept what the guard let through.
  const auto ids = g.inputs();
  Signature traced;
  for (NodeId id : ids) traced.inputs.push_back({g.node(id).shape, g.node(id).dtype});
  if (!(traced == s))
    throw Error(fmt::format("the graph built for {} takes {} ({})", s.to_string(), traced.to_string(),
                            recompile_reason(s, traced, e.names)));
  std::string out_of_range;
  const std::optional<std::int64_t> n =
      options_.dynamic.empty() ? std::nullopt : dynamic_size(s, e.names, &e.dynamic, &out_of_range);
  if (n) {
    // One compile for every size in the range: the builder sees the marked dims set to each traced n.
    const auto dims = e.dynamic;
    const BuildAtSize at_size = [&, dims](std::int64_t m) {
      Signature t = s;
      for (const auto& [i, a] : dims) t.inputs[i].shape[a] = m;
      return build_(t);
    };
    e.graph = std::make_unique<CompiledGraph>(compile_cpu_dynamic(at_size, options_.compile, options_.dynamic_trace));
    for (const auto& [i, a] : dims)
      if (a != 0 || e.graph->symbolic()->lead_of(e.graph->lowered().graph.inputs()[i]) != 1)
        throw Error(fmt::format("dynamic dim: input '{}' axis {} is not the leading dim of the compiled graph; mark "
                                "axis 0 of an input whose leading dim is the varying size", e.names[i], a));
    e.graph->set_trace_ms(e.graph->stats().trace_ms + trace_ms);
    ++stats_.dynamic_compiles;
  } else {
    e.graph = std::make_unique<CompiledGraph>(compile_cpu(g, options_.compile));
    e.graph->set_trace_ms(trace_ms);
  }
  ++stats_.compiles;
  entries_.push_back(std::move(e));
  last_ = int(entries_.size()) - 1;
  return *entries_.back().graph;
}

std::vector<HostTensor> CompiledFunction::run(const std::vector<HostTensor>& inputs) {
  return specialization(Signature::of(inputs)).run(inputs);
}

}  // namespace aisp::compiler
