// Guards and recompilation on the CPU backend (torch.compile's guard + recompile_limit): a
// CompiledFunction wraps a graph-building function of the input signature and keeps one CompiledGraph
// per signature seen.
//
//   CompiledFunction f([](const Signature& s) { return build(s); });
//   f.run(inputs);   // first call: trace + compile
//   f.run(inputs);   // same signature: the guard passes, no recompile (stats().guard_hits)
//   f.run(other);    // new shape or dtype: recompile, reason logged ("input 'tokens' shape [1,64] -> [2,64]")
//
// The guard itself (signatures, reasons, the recompile limit, dynamic-mode size matching) is the
// backend-independent GuardTable (guard_table.h); guards_cuda.h is the same layer for device tensors.
// Dynamic mode (GuardRules::dynamic): one compile_cpu_dynamic serves every size of the marked dims.
#pragma once

#include <memory>
#include <vector>

#include "compiler/compile.h"
#include "compiler/guard_table.h"

namespace aisp::compiler {

using GuardOptions = GuardOptionsFor<CompileOptions>;

class CompiledFunction : public GuardedFunction {
 public:
  explicit CompiledFunction(Build build, GuardOptions options = {});

  std::vector<HostTensor> run(const std::vector<HostTensor>& inputs);
  // The specialization for `s`, compiling it if needed (same guard and limit as run).
  CompiledGraph& specialization(const Signature& s);
  // stats(), signatures(), describe(): GuardedFunction's.

 private:
  CompileOptions compile_;
  std::vector<std::unique_ptr<CompiledGraph>> graphs_;  // per table entry
};

}  // namespace aisp::compiler
