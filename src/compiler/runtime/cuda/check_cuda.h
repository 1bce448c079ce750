// The CUDA runtime's CUDA error check: aisp::Error naming what failed ("launch of generated kernel 3
// (...)"), for messages the file/line form of core/cuda/check.h cannot give.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler {

inline void check_cuda(cudaError_t r, const std::string& what) {
  if (r != cudaSuccess) throw Error(fmt::format("CUDA: {} failed: {} ({})", what, cudaGetErrorString(r), cudaGetErrorName(r)));
}

}  // namespace aisp::compiler
