#include "compiler/regional.h"

#include <unordered_map>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler {

std::string RegionalStats::to_string() const {
  return fmt::format("{} regions compiled for {} calls; {}", regions, calls, total.to_string());
}

RegionalCompiled::RegionalCompiled(RegionalProgram program, std::vector<CompiledGraph> compiled, RegionalStats stats)
    : program_(std::move(program)), compiled_(std::move(compiled)), stats_(stats) {}

RegionalCompiled compile_regional_cpu(RegionalProgram program, const CompileOptions& options) {
  for (const RegionCall& c : program.calls)
    if (c.region >= program.regions.size()) throw Error(fmt::format("region call to region {} of {}", c.region, program.regions.size()));
  RegionalStats stats;
  std::vector<CompiledGraph> compiled;
  for (const Graph& g : program.regions) {
    compiled.push_back(compile_cpu(g, options));
    const CompileStats& s = compiled.back().stats();
    CompileStats& t = stats.total;
    t.trace_ms += s.trace_ms, t.passes_ms += s.passes_ms, t.codegen_ms += s.codegen_ms, t.compile_ms += s.compile_ms;
    t.autotune_ms += s.autotune_ms;
    t.lowered_nodes += s.lowered_nodes;
    t.kernels += s.kernels, t.unique_kernels += s.unique_kernels;
    t.memory_hits += s.memory_hits, t.disk_hits += s.disk_hits, t.builds += s.builds;
    t.library_calls += s.library_calls;
    t.arena_bytes = std::max(t.arena_bytes, s.arena_bytes);
    t.peak_live_bytes = std::max(t.peak_live_bytes, s.peak_live_bytes);
  }
  stats.regions = int(program.regions.size());
  stats.calls = int(program.calls.size());
  return RegionalCompiled(std::move(program), std::move(compiled), stats);
}

std::vector<HostTensor> RegionalCompiled::run(const std::vector<std::string>& names, const std::vector<HostTensor>& values) {
  if (names.size() != values.size()) throw Error("regional run: one name per input value");
  std::unordered_map<std::string, const HostTensor*> by_name;
  for (std::size_t i = 0; i < names.size(); ++i) by_name[names[i]] = &values[i];
  std::vector<HostTensor> carried;  // the previous call's outputs
  for (std::size_t ci = 0; ci < program_.calls.size(); ++ci) {
    const RegionCall& call = program_.calls[ci];
    CompiledGraph& cg = compiled_[call.region];
    const Graph& g = program_.regions[call.region];
    std::vector<const void*> in;
    for (NodeId id : g.inputs()) {
      const Node& n = g.node(id);
      const HostTensor* t = nullptr;
      std::string bound;
      if (n.name == program_.carry) {
        if (carried.empty()) throw Error(fmt::format("region call {}: '{}' has no previous call to come from", ci, n.name));
        t = &carried[0];
        bound = fmt::format("output 0 of call {}", ci - 1);
      } else {
        bound = call.prefix + n.name;
        auto it = by_name.find(bound);
        if (it == by_name.end()) throw Error(fmt::format("region call {}: no input named '{}'", ci, bound));
        t = it->second;
      }
      if (t->shape != n.shape || t->dtype != n.dtype)
        throw Error(fmt::format("region call {}: input '{}' ({}) expects {}{}, got {}{}", ci, n.name, bound, name_of(n.dtype),
                                to_string(n.shape), name_of(t->dtype), to_string(t->shape)));
      in.push_back(t->data());
    }
    std::vector<HostTensor> outs;
    std::vector<void*> out;
    for (NodeId o : g.outputs()) outs.push_back(HostTensor::zeros(g.node(o).dtype, g.node(o).shape));
    for (HostTensor& t : outs) out.push_back(t.data());
    cg.run(in, out);
    carried = std::move(outs);
  }
  return carried;
}

}  // namespace aisp::compiler
