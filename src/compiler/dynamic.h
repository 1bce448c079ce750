// Dynamic mode: one compile serves every size n of a batch-like dim (torch.compile(dynamic=True),
// narrowed to one symbol that may scale only leading dims).
//
//   CompiledGraph cg = compile_cpu_dynamic([&](std::int64_t n) { return models::build_gpt(c, n, 64).graph; });
//   cg.run(inputs_of_batch_1);  // n = 1, read from the input shapes
//   cg.run(inputs_of_batch_5);  // n = 5: same kernels, a memory plan derived for this size (no compile)
//
// How: `build` is traced at two representative sizes (DynamicOptions::trace_sizes) and both traces are
// lowered; passes/symbolic.h compares them node by node (a dim equal in both is static, one that is
// k·na and k·nb is k·n; only dim 0 may vary) and step by step (same fusion decisions). Each kernel is
// generated with n as an argument, from both lowerings, and the two texts must be identical: if any
// size leaked into a kernel the compile is refused, naming the kernel and the first differing line.
// Refusals are aisp::Errors naming the node, the dim and the way out (compile statically; guards then
// recompile per size).
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "compiler/codegen/cuda_kernel.h"
#include "compiler/compile.h"

namespace aisp::compiler {

struct DynamicOptions {
  // The sizes traced. Distinct, at least 2 (at 1 a dim would be a unit dim, which code generation
  // drops from index arithmetic), and primes unlikely to equal a static dim of a model.
  std::array<std::int64_t, 2> trace_sizes = {11, 13};
  // The per-size plans (memory plan and layouts; on the GPU also grids, GEMM plans, attention masks
  // and, in reduce-overhead, the CUDA graph) kept at once; a new size beyond it drops the least
  // recently used one, which is derived again (never compiled) if it comes back. At least 1.
  int max_size_plans = 64;
};

using BuildAtSize = std::function<Graph(std::int64_t n)>;

// The front half of dynamic mode, shared by the backends: `build` traced at both sizes, both traces
// lowered and compared (passes/symbolic.h). `lowered`/`sym` are at trace_sizes[0], `other`/
// `other_sym` at trace_sizes[1] (same node ids and coefficients).
struct DynamicLowering {
  Lowered lowered, other;
  SymbolicSizes sym, other_sym;
  double trace_ms = 0, passes_ms = 0;
};
DynamicLowering lower_dynamic(const BuildAtSize& build, const PipelineOptions& pipeline = {},
                              const DynamicOptions& dynamic = {});

// The CUDA kernels of a dynamic lowering, one per kernel step (each takes `long long n`); throws when a
// kernel's text differs between the two traced sizes, or for a reduction over the dynamic dim.
std::vector<CudaKernelSource> generate_cuda_kernels_dynamic(const DynamicLowering& d, const CudaKernelOptions& options = {});

// Mode: `default` only (max-autotune's decisions are timed at one size; the CUDA-graph modes need the
// GPU backend): anything else throws aisp::Error.
CompiledGraph compile_cpu_dynamic(const BuildAtSize& build, const CompileOptions& options = {},
                                  const DynamicOptions& dynamic = {});

}  // namespace aisp::compiler
