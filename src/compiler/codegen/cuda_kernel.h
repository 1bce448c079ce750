// CUDA C++ code generation for one kernel step (the GPU twin of cpp_kernel.h), from the same
// FusionPlan. One translation unit per step with one kernel
//   extern "C" __global__ void aisp_kernel(<typed buffer pointers: reads, then outputs>, [long long n,] int aligned)
// `aligned` is 1 when every buffer pointer is 16-byte aligned (the launcher checks); otherwise the
// vector loads and stores fall back to scalar ones (same kernel, one uniform branch between the two
// instances of the body, `template <int aligned> aisp_body`, so neither issues the other's code).
//
//   pointwise:  grid-stride loop over chunks of `vec` elements; a buffer read at the element's own
//               index (same shape as the domain), a strided view of one whose 8-element chunks are
//               contiguous and 16-byte aligned (a permuted attention head), and every output move as
//               16-byte vectors; other reads (broadcasts, other views) are scalar; a scalar loop does
//               the tail.
//   reduction:  one block per row; every buffer value the row needs is loaded once into registers
//               (chunk k of thread t covers row elements [(k * threads + t) * vec, +vec)), then one
//               pass per reduction (block reduction: warp shuffles + 32 floats of shared memory),
//               then the outputs. `vec` is 8 when the reduced axis is the last one and its length is
//               a multiple of 8, else 1. 16-bit row values stay raw bits in registers (uint4 per
//               chunk); row-invariant vectors (a LayerNorm's weight and bias) are loaded per chunk in
//               the outputs pass instead of being held in registers through the reductions.
// fp32 math; bf16/fp16 storage through cuda_bf16.h / cuda_fp16.h intrinsics (round to nearest even);
// no fast-math. Node ids never appear in the text: identical steps share one binary.
#pragma once

#include <string>
#include <vector>

#include "compiler/codegen/cpp_kernel.h"  // KernelSource
#include "compiler/ir/graph.h"
#include "compiler/passes/fusion.h"

namespace aisp::compiler {

// The launch configuration of a generated kernel: a pure function of the step (cuda_launch_config),
// recorded in the source's header comment so a cached binary always comes with its launch.
struct CudaLaunchConfig {
  int threads = 256;          // block size, a multiple of 32
  int vec = 8;                // elements per chunk (8: 16-byte bf16 vectors; 1: scalar)
  std::int64_t blocks = 0;    // grid size (rows for a reduction; enough chunks for a pointwise kernel)
  int chunks_per_thread = 0;  // reductions: register chunks per thread (compile-time in the source)
  // Dynamic mode: the grid depends on n, so the launcher sizes it per call; this says how (blocks = 0).
  std::string blocks_per_call;
  std::string to_string() const;
};

struct CudaKernelOptions {
  int pointwise_threads = 256;
  int max_pointwise_blocks = 132 * 16;  // grid-stride beyond this
  int row_target_threads = 64;          // as the hand-written LayerNorm kernel (plan_row says why)
  int max_row_elements_per_thread = 64; // registers per thread per cached buffer
};

CudaLaunchConfig cuda_launch_config(const Graph& g, const Step& step, const CudaKernelOptions& options = {});

struct CudaKernelSource {
  KernelSource kernel;  // symbol "aisp_kernel", source, args, summary, config (launch as text)
  CudaLaunchConfig launch;
};

// Throws aisp::Error for library steps and for rows longer than the register plan allows.
// `sym` (dynamic mode, passes/symbolic.h): the kernel takes the size as `long long n` before
// `aligned` and uses it only for the pointwise element count (the grid-stride loop and its tail);
// a reduction's rows come from blockIdx, so only the launcher's grid depends on n. A reduction over
// the dynamic dim is refused (its row lives in registers sized when the kernel is generated).
CudaKernelSource generate_cuda_kernel(const Graph& g, const Step& step, const CudaKernelOptions& options = {},
                                      const SymbolicSizes* sym = nullptr);

// Dynamic mode: the grid of a kernel generated with `sym` for a call of size n, i.e. the rule its
// header spells (`blocks=ceil(n * K / 2048) capped at 2112`, `blocks=n * R (one per row)`) evaluated.
// A step whose domain does not scale with n keeps its generated grid. Pure: tested without a GPU.
std::int64_t cuda_blocks_at_size(const Graph& g, const Step& step, const CudaLaunchConfig& launch,
                                 const SymbolicSizes& sym, std::int64_t n, const CudaKernelOptions& options = {});

}  // namespace aisp::compiler
