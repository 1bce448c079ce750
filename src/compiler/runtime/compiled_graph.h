// A compiled graph: the lowered plan, one loaded function per kernel step, and an arena for the
// intermediates. run() walks the steps in order; nothing is cached across calls.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/codegen/cpp_kernel.h"
#include "compiler/ir/host_tensor.h"
#include "compiler/passes/layout.h"
#include "compiler/passes/pipeline.h"
#include "compiler/passes/symbolic.h"
#include "compiler/runtime/size_plans.h"

namespace aisp::compiler {

struct CompileStats {
  double trace_ms = 0;    // building the graph (set by the caller that traced it)
  double passes_ms = 0;   // simplify .. plan_memory
  double codegen_ms = 0;  // source generation
  double compile_ms = 0;  // wall time of the (parallel) JIT compile and load
  double autotune_ms = 0; // max-autotune: the timed config search (0 in default mode)
  double capture_ms = 0;  // reduce-overhead (CUDA): capturing and instantiating the plan's graph, summed over captures
  int lowered_nodes = 0;  // nodes of the graph given to the passes
  int autotune_searches = 0, autotune_cache_hits = 0;  // max-autotune: decisions timed / read from disk
  int aisp_gemm_steps = 0;  // max-autotune (CUDA): GEMM steps that run one of aisp's kernels (tile or skinny)
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
  // `sym` (dynamic mode, passes/symbolic.h): the kernels take the size n as their last argument, and
  // the memory plan and library layouts are derived per call size from the lowered graph (no compile).
  // `max_size_plans` (dynamic mode): the per-size plans kept, least recently used dropped past it.
  CompiledGraph(Lowered lowered, std::vector<KernelSource> sources, std::vector<KernelFn> fns, CompileStats stats,
                std::optional<SymbolicSizes> sym = std::nullopt, int max_size_plans = 64);

  // Inputs bind to the graph's inputs in order; returns the outputs in order. Dynamic mode: any n the
  // input shapes imply (their leading dims k·n, every other dim as traced).
  std::vector<HostTensor> run(const std::vector<HostTensor>& inputs);
  // Same, into caller-owned contiguous buffers of the right dtype and shape; `size` is the dynamic
  // size n (required in dynamic mode, ignored otherwise).
  void run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs, std::int64_t size = 0);

  const Lowered& lowered() const { return lowered_; }
  const std::vector<KernelSource>& kernels() const { return sources_; }  // per kernel step, in step order
  const CompileStats& stats() const { return stats_; }
  void set_trace_ms(double ms) { stats_.trace_ms = ms; }
  // The GEMM column block of library step `step` (a matmul); max-autotune sets it.
  void set_matmul_block(std::size_t step, std::int64_t block_n) { matmul_block_n_.at(step) = block_n; }
  std::int64_t matmul_block(std::size_t step) const { return matmul_block_n_.at(step); }

  // Dynamic mode: the symbolic sizes (null for a static compile), plans derived for a call size without
  // one (memory plan + library layouts; up to max_size_plans kept, least recently used dropped:
  // size_plans() counts derivations, a dropped size derived again included), and the arena's size.
  const SymbolicSizes* symbolic() const { return sym_ ? &*sym_ : nullptr; }
  int size_plans() const { return size_plans_; }
  int kept_size_plans() const { return sized_.size(); }
  std::size_t arena_bytes() const { return arena_.size() > kBufferAlignment ? arena_.size() - kBufferAlignment : 0; }

 private:
  // Where a buffer lives at run time.
  struct Where {
    enum class Kind { input, output, arena } kind;
    std::int64_t index;  // input/output position, or arena byte offset
  };
  // Everything that depends on the sizes: the graph's shapes, arena offsets, library operand strides.
  struct SizedPlan {
    std::int64_t n = 0;  // 0: the static plan
    Graph graph;         // lowered_.graph at this size (node ids unchanged)
    MemoryPlan memory;
    std::vector<Where> where;                    // per node id (buffer nodes only)
    std::vector<std::vector<Layout>> layouts;    // library steps: layouts of their operands
  };
  SizedPlan make_plan(Graph graph, MemoryPlan memory, std::int64_t n) const;
  const SizedPlan& plan_for(std::int64_t n);
  void* address(const Where& w, const std::vector<const void*>& in, const std::vector<void*>& out);

  Lowered lowered_;
  std::vector<KernelSource> sources_;
  std::vector<KernelFn> fns_;
  CompileStats stats_;
  std::optional<SymbolicSizes> sym_;
  SizedPlan plan_;             // static: the only plan
  SizePlans<SizedPlan> sized_;  // dynamic: by size
  int size_plans_ = 0;
  std::vector<std::byte> arena_;                // grown to the largest plan seen
  std::vector<std::int64_t> matmul_block_n_;    // per step: the matmul's GEMM column block
};

}  // namespace aisp::compiler
