#include "core/cuda/check.h"

#include <fmt/format.h>

namespace aisp::cuda {

void throw_cuda_error(cudaError_t status, const char* expr, const char* file, int line) {
  std::string hint;
  if (status == cudaErrorMemoryAllocation)
    hint = " (out of device memory: free the GPU or run fewer/smaller examples)";
  else if (status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver)
    hint = " (no usable GPU: run on a machine with an NVIDIA GPU and driver)";
  throw Error(fmt::format("CUDA error {} ({}) in {} at {}:{}{}", cudaGetErrorName(status),
                          cudaGetErrorString(status), expr, file, line, hint));
}

}  // namespace aisp::cuda
