#include "compiler/guards_cuda.h"

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler {

CudaCompiledFunction::CudaCompiledFunction(Build build, CudaGuardOptions options)
    : GuardedFunction(std::move(build), options), compile_(std::move(options.compile)) {}
CudaCompiledFunction::CudaCompiledFunction(CudaCompiledFunction&&) noexcept = default;
CudaCompiledFunction& CudaCompiledFunction::operator=(CudaCompiledFunction&&) noexcept = default;
CudaCompiledFunction::~CudaCompiledFunction() = default;

CudaCompiledFunction::Specialization& CudaCompiledFunction::lookup(const Signature& s) {
  Specialization fresh;
  const std::size_t i = table_.lookup(s, [&](const NewSpecialization& spec) -> std::vector<std::int64_t> {
    if (!spec.at_size) {
      fresh.fixed = std::make_unique<CudaCompiledGraph>(compile_cuda(spec.graph, compile_));
      fresh.fixed->set_trace_ms(spec.trace_ms);
      return {};
    }
    fresh.dynamic = std::make_unique<CudaDynamicGraph>(
        compile_cuda_dynamic(*spec.at_size, compile_, table_.rules().dynamic_trace));
    fresh.dynamic->set_trace_ms(fresh.dynamic->stats().trace_ms + spec.trace_ms);
    return input_leads(fresh.dynamic->lowered().graph, fresh.dynamic->symbolic());
  });
  if (fresh.fixed || fresh.dynamic) specializations_.push_back(std::move(fresh));
  return specializations_[i];
}

namespace {
std::vector<Shape> shapes_of(const Signature& s) {
  std::vector<Shape> shapes;
  for (const InputSpec& in : s.inputs) shapes.push_back(in.shape);
  return shapes;
}
}  // namespace

void CudaCompiledFunction::run(const Signature& s, const std::vector<const void*>& inputs,
                               const std::vector<void*>& outputs, cudaStream_t stream) {
  if (inputs.size() != s.inputs.size())
    throw Error(fmt::format("CudaCompiledFunction::run: {} input pointers for the signature {} of {} inputs; pass "
                            "one device pointer per input, in binding order",
                            inputs.size(), s.to_string(), s.inputs.size()));
  Specialization& sp = lookup(s);
  if (sp.fixed) return sp.fixed->run(inputs, outputs, stream);
  // Through the dynamic graph (not plan(n).run): a size first seen inside a caller's capture is refused there.
  sp.dynamic->run(sp.dynamic->size_of(shapes_of(s)), inputs, outputs, stream);
}

CudaCompiledGraph& CudaCompiledFunction::specialization(const Signature& s) {
  Specialization& sp = lookup(s);
  return sp.fixed ? *sp.fixed : sp.dynamic->plan(sp.dynamic->size_of(shapes_of(s)));
}

int CudaCompiledFunction::graph_captures() const {
  int captures = 0;
  for (const Specialization& sp : specializations_)
    captures += sp.fixed ? sp.fixed->graph_captures() : sp.dynamic->graph_captures();
  return captures;
}

}  // namespace aisp::compiler
