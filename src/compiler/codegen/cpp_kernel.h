// C++ code generation for one kernel step: a readable translation unit with one extern "C" function
//   void aisp_kernel(void* const* args)
// whose arguments are the step's buffers (reads, then outputs; in dynamic mode then the size n). fp32 math, storage in the buffers'
// dtypes, OpenMP over the outer loop. Loop structure:
//   pointwise:  for i in domain: outputs[i] = f(loads)
//   reduction:  for each row: acc = reduce_j(prologue(j)); ...; row values; for j: outputs = epilogue(j)
// Views become index arithmetic; node ids never appear in the text, so identical steps (the same
// layer repeated) produce identical sources and share one compiled kernel.
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/passes/fusion.h"
#include "compiler/passes/symbolic.h"

namespace aisp::compiler {

struct KernelSource {
  std::string symbol = "aisp_kernel";
  std::string source;        // the whole translation unit
  std::vector<NodeId> args;  // the buffer behind each argument: step.reads, then step.outputs
  std::string summary;       // one line: kind, domain, ops
  std::string config;        // how its knobs were chosen: "parallel_min=32768 (heuristic)" or the autotune pick
};

// The knobs of a CPU kernel (max-autotune searches them; the defaults are the heuristic).
struct CpuKernelConfig {
  // OpenMP on the outer loop when the kernel touches at least this many elements (an OpenMP fork
  // costs microseconds). 1: always; kNever: a serial kernel.
  static constexpr std::int64_t kNever = std::int64_t(1) << 62;
  std::int64_t parallel_min = std::int64_t(1) << 15;
  bool operator==(const CpuKernelConfig&) const = default;
};

// `sym` (dynamic mode): the kernel takes the size n as one more argument, args[reads + outputs]
// pointing to an int64, and uses it only in loop bounds, OpenMP `if` clauses and the divisor of a
// mean over the dynamic dim; the source is the same for every n. Null: every extent is a literal.
KernelSource generate_cpp_kernel(const Graph& g, const Step& step, const CpuKernelConfig& config = {},
                                 const SymbolicSizes* sym = nullptr);

}  // namespace aisp::compiler
