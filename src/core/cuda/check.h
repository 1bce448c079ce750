// CUDA error checks that raise aisp::Error with the failing call, file and line.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace aisp::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* expr, const char* file, int line);

}  // namespace aisp::cuda

#define AISP_CUDA_CHECK(expr)                                                          \
  do {                                                                                 \
    const cudaError_t aisp_status_ = (expr);                                           \
    if (aisp_status_ != cudaSuccess)                                                   \
      ::aisp::cuda::throw_cuda_error(aisp_status_, #expr, __FILE__, __LINE__);         \
  } while (0)

// After a kernel launch: catches launch-configuration errors at once.
#define AISP_CUDA_CHECK_LAUNCH() AISP_CUDA_CHECK(cudaGetLastError())
