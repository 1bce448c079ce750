// The compiler's front door for the CUDA backend (CUDA builds only, AISP_WITH_CUDA):
//
//   Graph g; ... build ...
//   CudaCompiledGraph cg = compile_cuda(g);
//   cg.run({x, w, b}, {out}, stream);  // device pointers, enqueued on `stream`, no copies, no sync
//
// The same passes as compile_cpu (passes/pipeline.h) -> codegen/cuda_kernel.h (one CUDA source per
// kernel step, launch configuration recorded with it) -> runtime/cuda/nvrtc_jit.h (distinct sources
// compiled by NVRTC in parallel, cached in memory and on disk) -> cudaLaunchKernel per step.
// Graphs of pointwise and row-reduction groups only for now: a matmul, gather or concat step throws
// aisp::Error ("not yet supported on the CUDA backend").
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "compiler/codegen/cuda_kernel.h"
#include "compiler/passes/pipeline.h"
#include "compiler/runtime/compiled_graph.h"  // CompileStats
#include "compiler/runtime/cuda/nvrtc_jit.h"

namespace aisp::compiler {

struct CudaCompileOptions {
  PipelineOptions pipeline;
  CudaKernelOptions kernels;
  NvrtcJit* jit = nullptr;  // null: default_nvrtc_jit()
  int jobs = 0;             // parallel NVRTC compiles; 0: the hardware's thread count
  bool load = true;         // false: compile only (no GPU needed; run() then throws)
};

class CudaCompiledGraph {
 public:
  CudaCompiledGraph(Lowered lowered, std::vector<CudaKernelSource> kernels, std::vector<cudaKernel_t> fns,
                    CompileStats stats, bool loaded);
  CudaCompiledGraph(CudaCompiledGraph&&) noexcept;
  CudaCompiledGraph& operator=(CudaCompiledGraph&&) noexcept;
  ~CudaCompiledGraph();

  // Device pointers: inputs in the graph's binding order, outputs in output order (contiguous, of the
  // graph's dtypes and shapes). Enqueues one launch per kernel step on `stream`; never synchronizes.
  void run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs, cudaStream_t stream);

  const Lowered& lowered() const { return lowered_; }
  const std::vector<CudaKernelSource>& kernels() const { return kernels_; }  // per kernel step, in order
  const CompileStats& stats() const { return stats_; }
  void set_trace_ms(double ms) { stats_.trace_ms = ms; }

 private:
  struct Where {
    enum class Kind { input, output, arena } kind;
    std::int64_t index;
  };
  void* address(const Where& w, const std::vector<const void*>& in, const std::vector<void*>& out) const;

  Lowered lowered_;
  std::vector<CudaKernelSource> kernels_;
  std::vector<cudaKernel_t> fns_;
  CompileStats stats_;
  bool loaded_ = false;
  std::vector<Where> where_;
  void* arena_ = nullptr;  // device memory for the intermediates (cudaMalloc'd: 256-byte aligned)
};

CudaCompiledGraph compile_cuda(const Graph& g, const CudaCompileOptions& options = {});

}  // namespace aisp::compiler
