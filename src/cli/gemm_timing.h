// CUDA-event timing for the `aisp gemm` commands (bf16 sweep in gemm_command.cc, fp8 sweep in
// gemm_fp8_command.cc).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "core/cuda/check.h"

namespace aisp::cli {

// Median over 5 batches of `iters` back-to-back calls, in milliseconds per call.
inline double time_ms(cudaStream_t stream, int iters, const std::function<void()>& call) {
  call();  // warm-up (and module load)
  call();
  AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  AISP_CUDA_CHECK(cudaEventCreate(&start));
  AISP_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> per_call;
  for (int rep = 0; rep < 5; ++rep) {
    AISP_CUDA_CHECK(cudaEventRecord(start, stream));
    for (int i = 0; i < iters; ++i) call();
    AISP_CUDA_CHECK(cudaEventRecord(stop, stream));
    AISP_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    AISP_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    per_call.push_back(double(ms) / iters);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(per_call.begin(), per_call.end());
  return per_call[per_call.size() / 2];
}

}  // namespace aisp::cli
