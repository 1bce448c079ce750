// The compiler's front door for the CPU backend:
//
//   Graph g; ... build ...
//   CompiledGraph cg = compile_cpu(g);
//   auto outputs = cg.run(inputs);
//   fmt::print("{}\n", cg.stats().to_string());
//
// front end (ir/) -> passes (passes/pipeline.h) -> codegen (codegen/cpp_kernel.h, one source per
// kernel step) -> runtime (runtime/cpu_jit.h compiles the distinct sources in parallel and loads them;
// runtime/compiled_graph.h runs the steps).
#pragma once

#include <chrono>

#include "compiler/passes/pipeline.h"
#include "compiler/runtime/compiled_graph.h"
#include "compiler/runtime/cpu_jit.h"

namespace aisp::compiler {

struct CompileOptions {
  PipelineOptions pipeline;
  CpuJit* jit = nullptr;  // null: default_cpu_jit()
  int jobs = 0;           // parallel compiler processes; 0: the hardware's thread count
};

CompiledGraph compile_cpu(const Graph& g, const CompileOptions& options = {});

// Builds a graph with `build(Graph&)` and reports how long that took (CompileStats::trace_ms).
template <class Build>
Graph trace(Build&& build, double* ms) {
  const auto t = std::chrono::steady_clock::now();
  Graph g;
  build(g);
  *ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
  return g;
}

}  // namespace aisp::compiler
