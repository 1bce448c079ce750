// `aisp inspect --backend cuda` (CUDA builds only): what the CUDA backend made of a graph, as files.
//   (the plan files of inspect.h: passes/, fusion.txt, graph.dot, stats.txt)
//   kernels/kNN.cu          every generated kernel step's source (launch configuration in its header)
//   kernels/kNN.ptx         PTX of each distinct source (NVRTC, virtual compute_XX target)
//   kernels/kNN.sass        SASS of its CUBIN (cuobjdump -sass), where the toolkit has cuobjdump
//   resources.txt           per distinct kernel: registers, shared memory, stack and local memory
//                           (spills) from cuobjdump -res-usage
// Compiles without loading (no GPU needed): the CUBINs come from the NVRTC cache of `jit`.
#pragma once

#include <string>

#include "compiler/compile_cuda.h"

namespace aisp::compiler {

struct CudaInspection {
  int kernel_steps = 0;
  int distinct = 0;
  std::string resources;  // one line per distinct kernel, or why there is none
};

CudaInspection write_cuda_inspection(const CudaCompiledGraph& cg, const NvrtcJit& jit, const std::string& dir);

}  // namespace aisp::compiler
