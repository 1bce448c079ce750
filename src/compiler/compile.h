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
#include <string_view>

#include "compiler/passes/pipeline.h"
#include "compiler/runtime/compiled_graph.h"
#include "compiler/runtime/cpu_jit.h"

namespace aisp::compiler {

// torch.compile's modes. The CPU backend runs `default` (fusion + heuristic kernel configs) and
// `max-autotune-no-cudagraphs` (+ a timed search over kernel configs, runtime/autotune.h, decisions
// cached on disk). `reduce-overhead` and `max-autotune` capture the plan in a CUDA graph: they need
// the GPU backend, and compile_cpu refuses them with an aisp::Error saying so.
enum class Mode { default_mode, reduce_overhead, max_autotune, max_autotune_no_cudagraphs };
std::string_view name_of(Mode m);     // "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
Mode parse_mode(std::string_view s);  // the names above; throws aisp::Error listing them

struct CompileOptions {
  PipelineOptions pipeline;
  Mode mode = Mode::default_mode;
  std::string autotune_dir;  // decision cache; empty: <jit cache dir>/autotune
  CpuJit* jit = nullptr;  // null: default_cpu_jit()
  int jobs = 0;           // parallel compiler processes; 0: the hardware's thread count
};

CompiledGraph compile_cpu(const Graph& g, const CompileOptions& options = {});

// The JIT step of compile_cpu (and compile_cpu_dynamic, dynamic.h): each distinct source compiled
// once, `jobs` (0: the hardware's threads) at a time; fills unique_kernels and the cache counters.
std::vector<KernelFn> jit_kernels(const std::vector<KernelSource>& sources, CpuJit& jit, int jobs, CompileStats& stats);

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
