// How max-autotune times a GEMM candidate (cuBLASLt algorithms in lt_matmul.cc, aisp's kernel
// configs in aisp_gemm.cc): every candidate by the same procedure, so their times compare.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <string>

#include "compiler/runtime/autotune.h"
#include "core/dtype.h"

namespace aisp::compiler {

// The stream max-autotune's timings run on: the one AutotuneStreamScope names on this thread (the
// stream the compiled plan will run on, CudaCompileOptions::autotune_stream), else one of its own,
// made here and destroyed with this object. Timing on the plan's own stream keeps a single-stream
// process single-stream: after 8 operations on a second stream, every later CUDA-graph node of the
// process launches ~0.35 us later (ch14/README.md, "What the state is").
class AutotuneStream {
 public:
  AutotuneStream();
  ~AutotuneStream();
  AutotuneStream(const AutotuneStream&) = delete;
  AutotuneStream& operator=(const AutotuneStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
  bool owned_ = false;
};

// For its lifetime, AutotuneStream gives `stream` on this thread (null: each makes its own); nested
// scopes restore the outer one.
class AutotuneStreamScope {
 public:
  explicit AutotuneStreamScope(cudaStream_t stream);
  ~AutotuneStreamScope();
  AutotuneStreamScope(const AutotuneStreamScope&) = delete;
  AutotuneStreamScope& operator=(const AutotuneStreamScope&) = delete;

 private:
  cudaStream_t outer_;
};

// Device scratch holding random values of `dtype` (autotune operands: timing on zeros or constants
// would flatter the tensor cores' power draw): a block of 2^20 random elements, repeated; filled on
// the AutotuneStream (not the legacy stream, which is a second stream too).
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

// One kernel candidate of a GEMM search (aisp_gemm.cc, skinny_gemm.cc): refused with `unsupported`
// when that is not empty; else `launch` once outside any capture (the kernel's one-time setup), then
// timed by time_as_graph_ms. A launch that throws aisp::Error is recorded as refused with its
// message, and the CUDA error it left is cleared so that it cannot poison the next candidate.
TuneRecord time_gemm_candidate(const std::string& name, const std::string& unsupported, cudaStream_t stream, int reps,
                               const std::function<void()>& launch);

}  // namespace aisp::compiler
