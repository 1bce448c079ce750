// Guards and recompilation on the CUDA backend (CUDA builds only, AISP_WITH_CUDA): CompiledFunction
// (guards.h) for device tensors. One specialization per input signature, a static CudaCompiledGraph;
// with dynamic dims marked (CudaGuardOptions::dynamic) one CudaDynamicGraph serves every size in the
// range. The guard, the logged reasons, the recompile limit and its error, and the stats are the
// shared GuardTable's (guard_table.h), so both backends behave alike.
//
//   CudaCompiledFunction f([&](const Signature& s) { return models::build_gpt(c, s.inputs[0].shape[0], 64).graph; });
//   f.run(signature, inputs, outputs, stream);  // device pointers, as CudaCompiledGraph::run
//   f.specialization(signature).lowered().graph  // the output shapes at this signature
//
// Device pointers carry no shapes: the caller states them as the signature (every input's shape and
// dtype, in binding order), and that is what is guarded. Modes are CudaCompileOptions': default,
// reduce-overhead (cuda_graph: each static specialization captures its own CUDA graph, a dynamic one
// one per size), max-autotune (autotune: static specializations only; a dynamic compile refuses it).
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "compiler/compile_cuda.h"
#include "compiler/compile_cuda_dynamic.h"
#include "compiler/guard_table.h"

namespace aisp::compiler {

using CudaGuardOptions = GuardOptionsFor<CudaCompileOptions>;

class CudaCompiledFunction : public GuardedFunction {
 public:
  explicit CudaCompiledFunction(Build build, CudaGuardOptions options = {});
  CudaCompiledFunction(CudaCompiledFunction&&) noexcept;
  CudaCompiledFunction& operator=(CudaCompiledFunction&&) noexcept;
  ~CudaCompiledFunction();

  // Enqueues the specialization serving `s` on `stream` (compiling it first on a new signature):
  // inputs in binding order with the shapes and dtypes `s` states, outputs of the shapes
  // specialization(s) gives. Never synchronizes, except where a dynamic specialization's arena grows.
  void run(const Signature& s, const std::vector<const void*>& inputs, const std::vector<void*>& outputs,
           cudaStream_t stream);

  // The plan serving `s`, compiling it if needed (same guard, limit and stats as run): a static
  // specialization's graph, or the dynamic one's plan at this size (derived if new, without compiling).
  CudaCompiledGraph& specialization(const Signature& s);
  // stats(), signatures(), describe(): GuardedFunction's.

  // reduce-overhead: CUDA graphs captured so far, over every specialization (and every size of a
  // dynamic one).
  int graph_captures() const;

 private:
  struct Specialization {  // exactly one is set
    std::unique_ptr<CudaCompiledGraph> fixed;
    std::unique_ptr<CudaDynamicGraph> dynamic;
  };
  Specialization& lookup(const Signature& s);

  CudaCompileOptions compile_;
  std::vector<Specialization> specializations_;  // per table entry
};

}  // namespace aisp::compiler
