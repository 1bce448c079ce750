// Dynamic mode on the CUDA backend (CUDA builds only, AISP_WITH_CUDA): one NVRTC compile serves every
// size n of a batch-like dim, as compile_cpu_dynamic does on the CPU (dynamic.h says how the graph is
// traced at two sizes and which graphs are refused).
//
//   CudaDynamicGraph cg = compile_cuda_dynamic([&](std::int64_t n) { return models::build_gpt(c, n, 64).graph; });
//   cg.run(cg.size_of(input_shapes), inputs, outputs, stream);  // device pointers, as CudaCompiledGraph::run
//
// Per call size n, the first call derives that size's plan without compiling anything: the lowered
// graph at n (graph_at_size), its memory plan, every kernel's grid from the launch rule in its header
// (cuda_blocks_at_size), the cuBLAS/cuBLASLt GEMM plans, gather counts and attention steps. The plan
// is a CudaCompiledGraph over the shared kernels, library and arena, kept for the next call of that
// size (size_plans() counts derivations). At most DynamicOptions::max_size_plans are kept: a new size
// beyond them drops the least recently used plan (after waiting for the device, since calls in flight
// may still use its attention masks; its CUDA graph goes with it) and a dropped size that comes back
// is derived again, so a server seeing every size of a wide range holds a bounded set of plans. The arena is shared by every size and grows to the largest
// plan seen; growing it waits for the device (cudaDeviceSynchronize: earlier calls may still be
// using the old one) and makes earlier sizes' CUDA graphs capture again on their next call. plan(n)
// derives a size ahead of time, e.g. the largest one, so that no later call grows the arena.
//
// Modes: `default`, and `reduce-overhead` (options.cuda_graph): one CUDA graph per size, captured on
// that size's first call and replayed after (keyed, as for a static compile, on the input/output
// addresses, the stream and the arena). max-autotune (options.autotune) is refused: its GEMM
// decisions are timed at one size. A size with no plan yet cannot be derived inside a caller's stream
// capture (deriving allocates and builds attention block masks): run it once before capturing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compiler/compile_cuda.h"
#include "compiler/dynamic.h"
#include "compiler/runtime/size_plans.h"

namespace aisp::compiler {

class CudaDynamicGraph {
 public:
  CudaDynamicGraph(Lowered lowered, SymbolicSizes sym, std::vector<CudaKernelSource> kernels,
                   std::vector<cudaKernel_t> fns, CompileStats stats, std::shared_ptr<CudaLibrary> library,
                   const CudaCompileOptions& options, std::string arch, int max_size_plans);
  CudaDynamicGraph(CudaDynamicGraph&&) noexcept;
  CudaDynamicGraph& operator=(CudaDynamicGraph&&) noexcept;
  ~CudaDynamicGraph();

  // n for these input shapes (binding order): every dynamic input's dim 0 over its k, equal across
  // inputs, other dims as compiled; aisp::Error naming the input otherwise.
  std::int64_t size_of(const std::vector<Shape>& input_shapes) const;
  // Runs size n (>= 1): inputs and outputs as CudaCompiledGraph::run, of the shapes at that size.
  void run(std::int64_t n, const std::vector<const void*>& inputs, const std::vector<void*>& outputs,
           cudaStream_t stream);

  // The plan of size n, derived (and the arena grown) if this size has none: its lowered graph gives
  // the input and output shapes at n, its kernels() the grids. The reference stays valid until a plan
  // for another size is derived (which may drop this one). Throws aisp::Error for n < 1.
  CudaCompiledGraph& plan(std::int64_t n);

  const Lowered& lowered() const { return lowered_; }  // at the first traced size
  const SymbolicSizes& symbolic() const { return sym_; }
  const std::vector<CudaKernelSource>& kernels() const { return kernels_; }  // symbolic: blocks = 0 where the grid scales
  // The one compile's stats (arena_bytes and library_calls at the traced size: one per library step).
  const CompileStats& stats() const { return stats_; }
  void set_trace_ms(double ms) { stats_.trace_ms = ms; }  // guards (guards_cuda.h) add their own trace
  int size_plans() const { return size_plans_; }          // derivations, a dropped size derived again included
  int kept_size_plans() const { return plans_.size(); }
  int dropped_size_plans() const { return plans_.dropped(); }  // least recently used, past max_size_plans
  double size_plan_ms() const { return size_plan_ms_; }     // total time spent deriving size plans
  int graph_captures() const;                               // reduce-overhead: over every size, dropped plans' too
  int arena_grows() const { return arena_grows_; }
  std::size_t arena_bytes() const;

 private:
  struct Arena;

  Lowered lowered_;
  SymbolicSizes sym_;
  std::vector<CudaKernelSource> kernels_;
  std::vector<cudaKernel_t> fns_;
  CompileStats stats_;
  std::shared_ptr<CudaLibrary> library_;
  CudaKernelOptions kernel_options_;
  std::string arch_;
  bool cuda_graph_ = false, loaded_ = false, programmatic_launch_ = false;
  std::unique_ptr<Arena> arena_;  // on the heap: size plans hold its address
  // Drops the least recently used plan (waiting for the device first when loaded).
  void drop_least_recently_used();

  SizePlans<std::unique_ptr<CudaCompiledGraph>> plans_;
  int size_plans_ = 0, dropped_captures_ = 0;
  double size_plan_ms_ = 0;
  int arena_grows_ = 0;
};

// Traces `build` at dynamic.trace_sizes, lowers with the CUDA pipeline, generates the symbolic
// kernels and compiles them once (NVRTC, parallel, cached as for compile_cuda). options.load = false
// compiles without a GPU (plan(n) still derives size plans; run() throws). Throws aisp::Error for
// max-autotune and for every graph dynamic mode refuses (dynamic.h).
CudaDynamicGraph compile_cuda_dynamic(const BuildAtSize& build, const CudaCompileOptions& options = {},
                                      const DynamicOptions& dynamic = {});

}  // namespace aisp::compiler
