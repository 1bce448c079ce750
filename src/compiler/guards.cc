#include "compiler/guards.h"

namespace aisp::compiler {

CompiledFunction::CompiledFunction(Build build, GuardOptions options)
    : GuardedFunction(std::move(build), options), compile_(std::move(options.compile)) {}

CompiledGraph& CompiledFunction::specialization(const Signature& s) {
  std::unique_ptr<CompiledGraph> fresh;
  const std::size_t i = table_.lookup(s, [&](const NewSpecialization& spec) -> std::vector<std::int64_t> {
    if (!spec.at_size) {
      fresh = std::make_unique<CompiledGraph>(compile_cpu(spec.graph, compile_));
      fresh->set_trace_ms(spec.trace_ms);
      return {};
    }
    fresh = std::make_unique<CompiledGraph>(compile_cpu_dynamic(*spec.at_size, compile_, table_.rules().dynamic_trace));
    fresh->set_trace_ms(fresh->stats().trace_ms + spec.trace_ms);
    return input_leads(fresh->lowered().graph, *fresh->symbolic());
  });
  if (fresh) graphs_.push_back(std::move(fresh));
  return *graphs_[i];
}

std::vector<HostTensor> CompiledFunction::run(const std::vector<HostTensor>& inputs) {
  return specialization(Signature::of(inputs)).run(inputs);
}

}  // namespace aisp::compiler
