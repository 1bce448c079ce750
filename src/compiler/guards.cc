#include "compiler/guards.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

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

CompiledGraph& CompiledFunction::specialization(const Signature& s) {
  ++stats_.calls;
  // The guard: the previous call's signature first (the common case), then every other one.
  if (last_ >= 0 && entries_[std::size_t(last_)].signature == s) {
    ++stats_.guard_hits;
    return *entries_[std::size_t(last_)].graph;
  }
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].signature == s) {
      ++stats_.guard_hits;
      last_ = int(i);
      return *entries_[i].graph;
    }
  std::string reason;
  if (last_ >= 0) {
    const Entry& prev = entries_[std::size_t(last_)];
    reason = recompile_reason(prev.signature, s, prev.names);
    if (int(entries_.size()) >= options_.recompile_limit) {
      std::vector<std::string> seen;
      for (const Entry& e : entries_) seen.push_back("  " + e.signature.to_string());
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
  Entry e{s, {}, nullptr};
  for (NodeId id : g.inputs()) e.names.push_back(g.node(id).name);
  // The traced graph must accept what the guard let through.
  const auto ids = g.inputs();
  Signature traced;
  for (NodeId id : ids) traced.inputs.push_back({g.node(id).shape, g.node(id).dtype});
  if (!(traced == s))
    throw Error(fmt::format("the graph built for {} takes {} ({})", s.to_string(), traced.to_string(),
                            recompile_reason(s, traced, e.names)));
  e.graph = std::make_unique<CompiledGraph>(compile_cpu(g, options_.compile));
  e.graph->set_trace_ms(trace_ms);
  ++stats_.compiles;
  entries_.push_back(std::move(e));
  last_ = int(entries_.size()) - 1;
  return *entries_.back().graph;
}

std::vector<HostTensor> CompiledFunction::run(const std::vector<HostTensor>& inputs) {
  return specialization(Signature::of(inputs)).run(inputs);
}

}  // namespace aisp::compiler
