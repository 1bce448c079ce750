// A compiled graph: the lowered plan, one loaded function per kernel step, and an arena for the
// intermediates. run() walks the steps in order; nothing is cached across calls.
#pragma once

#include <string>
#include <vector>

#include "compiler/codegen/cpp_kernel.h"
#include "compiler/ir/host_tensor.h"
#include "compiler/passes/layout.h"
#include "compiler/passes/pipeline.h"

namespace aisp::compiler {

struct CompileStats {
  double trace_ms = 0;    // building the graph (set by the caller that traced it)
  double passes_ms = 0;   // simplify .. plan_memory
  double codegen_ms = 0;  // source generation
  double compile_ms = 0;  // wall time of the (parallel) JIT compile and load
  double autotune_ms = 0; // max-autotune: the timed config search (0 in default mode)
  int lowered_nodes = 0;  // nodes of the graph given to the passes
  int autotune_searches = 0, autotune_cache_hits = 0;  // max-autotune: decisions timed / read from disk
  int kernels = 0;        // kernel steps in the plan
  int unique_kernels = 0; // distinct sources (repeated layers share one)
  int memory_hits = 0, disk_hits = 0, builds = 0;
  int library_calls = 0;  // launches of the library steps (matmul/gather/concat; CUDA: 2 for a pointer-array matmul)
  int steps_per_call() const { return kernels + library_calls; }
  std::size_t arena_bytes = 0, peak_live_bytes = 0;
  std::string to_string() const;
};

using KernelFn = void (*)(void* const*);

class CompiledGraph {
 public:
  CompiledGraph(Lowered lowered, std::vector<KernelSource> sources, std::vector<KernelFn> fns, CompileStats stats);

  // Inputs bind to the graph's inputs in order; returns the outputs in order.
  std::vector<HostTensor> run(const std::vector<HostTensor>& inputs);
  // Same, into caller-owned contiguous buffers of the right dtype and shape.
  void run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs);

  const Lowered& lowered() const { return lowered_; }
  const std::vector<KernelSource>& kernels() const { return sources_; }  // per kernel step, in step order
  const CompileStats& stats() const { return stats_; }
  void set_trace_ms(double ms) { stats_.trace_ms = ms; }
  // The GEMM column block of library step `step` (a matmul); max-autotune sets it.
  void set_matmul_block(std::size_t step, std::int64_t block_n) { matmul_block_n_.at(step) = block_n; }
  std::int64_t matmul_block(std::size_t step) const { return matmul_block_n_.at(step); }

 private:
  // Where a buffer lives at run time.
  struct Where {
    enum class Kind { input, output, arena } kind;
    std::int64_t index;  // input/output position, or arena byte offset
  };
  void* address(const Where& w, const std::vector<const void*>& in, const std::vector<void*>& out);

  Lowered lowered_;
  std::vector<KernelSource> sources_;
  std::vector<KernelFn> fns_;
  CompileStats stats_;
  std::vector<Where> where_;  // per node id (buffer nodes only)
  std::vector<std::byte> arena_;
  std::vector<std::vector<Layout>> operand_layouts_;  // library steps: layouts of their operands
  std::vector<std::int64_t> matmul_block_n_;          // per step: the matmul's GEMM column block
};

}  // namespace aisp::compiler
