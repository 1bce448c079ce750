// max-autotune for the CUDA backend's generated kernels: per distinct kernel, a timed search over its
// launch configuration (the GEMMs have theirs in lt_matmul.h and aisp_gemm.h).
//
//   pointwise   block size 256 (the default), 128, 512  x  grid cap 2112 blocks (the default: grid-
//               stride beyond it), 4, 8 and 32 blocks per SM
//   row kernels the register plan's target block size 64 (the default), 32, 128, 256, 512  x  at most
//               64 (the default) or 32 row elements per thread, which sets the register chunks per
//               thread and so the block size
//
// Candidates that generate the same source and launch as an earlier one are listed, not timed. Each
// legal candidate is compiled (NVRTC, in parallel, through the kernel cache) and timed on random
// scratch buffers of its arguments' sizes, by graph_timing.h's procedure; a candidate replaces the
// default only when at least kMinKernelGain faster (a switch inside the noise would only make plans
// differ between compiles). Decisions are cached on disk per kernel source and device.
#pragma once

#include <string>
#include <vector>

#include "compiler/codegen/cuda_kernel.h"
#include "compiler/passes/pipeline.h"
#include "compiler/runtime/autotune.h"
#include "compiler/runtime/compiled_graph.h"  // CompileStats
#include "compiler/runtime/cuda/nvrtc_jit.h"

namespace aisp::compiler {

inline constexpr double kMinKernelGain = 1.02;

// The candidate configurations of one kernel step, the default (`base`) first; `sms`: the GPU's
// multiprocessor count (the grid caps scale with it).
std::vector<Candidate<CudaKernelOptions>> kernel_config_candidates(const Step& step, const CudaKernelOptions& base,
                                                                   int sms);

struct KernelTuning {
  std::string autotune_dir;  // the decision cache
  std::string device_key;    // device_tuning_key(): where a decision holds
  int jobs = 1;              // parallel NVRTC compiles
};

// Tunes every distinct kernel of `lowered` (kernels[i] belongs to the i-th kernel step; steps with
// equal default sources share one search): kernels[i] and fns[i] are replaced by the chosen
// configuration, kernels[i].kernel.config says what was chosen and how. Updates stats'
// autotune_ms, autotune_searches and autotune_cache_hits.
void autotune_kernels(const Lowered& lowered, const CudaKernelOptions& base, NvrtcJit& jit, const KernelTuning& tuning,
                      std::vector<CudaKernelSource>& kernels, std::vector<cudaKernel_t>& fns, CompileStats& stats);

}  // namespace aisp::compiler
