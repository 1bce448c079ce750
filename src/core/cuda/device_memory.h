// Owning device memory: cudaMalloc'd bytes freed when the owner goes (variants' workspaces and
// intermediates, allocated in setup and released in teardown).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <memory>

#include "core/cuda/check.h"

namespace aisp::cuda {

struct CudaFree {
  void operator()(void* p) const noexcept { cudaFree(p); }
};
using DeviceMemory = std::unique_ptr<void, CudaFree>;

inline DeviceMemory device_alloc(std::size_t bytes) {
  void* p = nullptr;
  AISP_CUDA_CHECK(cudaMalloc(&p, bytes));
  return DeviceMemory(p);
}

}  // namespace aisp::cuda
