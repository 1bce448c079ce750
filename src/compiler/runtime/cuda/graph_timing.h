// How max-autotune times a GEMM candidate (cuBLASLt algorithms in lt_matmul.cc, aisp's kernel
// configs in aisp_gemm.cc): every candidate by the same procedure, so their times compare.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>

#include "core/dtype.h"

namespace aisp::compiler {

// Device scratch holding random values of `dtype` (autotune operands: timing on zeros or constants
// would flatter the tensor cores' power draw): a block of 2^20 random elements, repeated.
struct DeviceScratch {
  void* p = nullptr;
  DeviceScratch(DType dtype, std::int64_t count, std::uint64_t seed);
  ~DeviceScratch();
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
};

// Repetitions of a GEMM of `flops` for one timed sample: ~0.2 TFLOP in all, 3 to 50.
int timing_reps(std::int64_t flops);

// Milliseconds per call of `call` (which enqueues on `stream`): `reps` calls captured as one CUDA
// graph (small GEMMs would otherwise time the host's launch rate, and the plans that use them
// replay from graphs too), replayed once to warm up and once timed with CUDA events.
double time_as_graph_ms(cudaStream_t stream, int reps, const std::function<void()>& call);

}  // namespace aisp::compiler
