// Regional compilation (torch.compile's "compile the repeated block"): a model written as a sequence
// of region calls, e.g. embedding, N x transformer block, head. Each distinct region graph goes
// through the passes, codegen and the JIT once; every call of it reuses that compiled plan with its
// own parameters bound by name.
//
// Binding, per call: the region input named `carry` ("x") takes output 0 of the previous call (the
// activation flowing through the model); every other input named n binds to the program input
// `prefix + n` (call prefix "h3." binds block input "ln1.w" to "h3.ln1.w"; embedding and head use "").
// The program's outputs are the last call's outputs.
//
// Cost of the trade: a region boundary is a fusion boundary (the residual add that full compile fuses
// into the next LayerNorm is stored and reloaded once per layer), and constants a full graph shares
// after CSE (the causal mask) are recomputed per call.
#pragma once

#include <string>
#include <vector>

#include "compiler/compile.h"

namespace aisp::compiler {

struct RegionCall {
  std::size_t region = 0;  // index into RegionalProgram::regions
  std::string prefix;      // prepended to the region's input names (except the carry)
};

struct RegionalProgram {
  std::vector<Graph> regions;
  std::vector<RegionCall> calls;
  std::string carry = "x";
};

struct RegionalStats {
  CompileStats total;     // summed over the distinct regions (each compiled once)
  int regions = 0;        // distinct regions compiled
  int calls = 0;          // region instances run per forward
  std::string to_string() const;
};

class RegionalCompiled {
 public:
  RegionalCompiled(RegionalProgram program, std::vector<CompiledGraph> compiled, RegionalStats stats);

  // Program inputs by name (names[i] names values[i]); returns the last call's outputs.
  std::vector<HostTensor> run(const std::vector<std::string>& names, const std::vector<HostTensor>& values);

  const RegionalStats& stats() const { return stats_; }
  const std::vector<CompiledGraph>& regions() const { return compiled_; }

 private:
  RegionalProgram program_;
  std::vector<CompiledGraph> compiled_;
  RegionalStats stats_;
};

RegionalCompiled compile_regional_cpu(RegionalProgram program, const CompileOptions& options = {});

}  // namespace aisp::compiler
