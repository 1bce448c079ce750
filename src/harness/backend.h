// What the child runner needs from a device: memory, seeded fills, poisoning, comparison, timing
// and counters. One implementation per Backend: cuda/cuda_backend.cu (GPU) and cpu_backend.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/example.h"
#include "harness/kernel_trace.h"
#include "harness/timing_options.h"
#include "harness/verification.h"

namespace aisp::harness {

struct TimedSamples {
  Mode mode = Mode::cold;
  int calls_per_sample = 1;
  std::vector<double> samples_s;  // one entry per sample: seconds per call
  std::string stop_reason;
  std::string note;  // e.g. why a mode was not measured
  bool measured = true;
};

struct MemoryUse {
  std::int64_t setup_bytes = -1;      // device memory the variant holds after setup (its own buffers)
  std::int64_t call_peak_bytes = -1;  // extra device memory at the peak of one call (stream-ordered pools)
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;

  virtual Tensor allocate(const TensorSpec& spec) = 0;  // throws aisp::Error (e.g. out of memory)
  virtual void release(Tensor& tensor) = 0;
  virtual void fill(const Tensor& tensor, const Init& init, std::uint64_t seed) = 0;
  virtual void poison(const Tensor& tensor) = 0;  // NaN for floats, 0xFF bytes otherwise
  virtual ErrorStats compare(const Tensor& out, const Tensor& ref, const Tolerance& tolerance) = 0;
  virtual StreamHandle stream() = 0;
  virtual void synchronize() = 0;  // waits for the stream and raises any pending device error

  // Times `variant` in one mode with the stopping rule. Warm-up is the caller's job.
  virtual TimedSamples time(Variant& variant, Mode mode, const TimingOptions& options) = 0;

  // The kernels one call of run() ran, after an L2 flush as in a cold sample (CUPTI activity
  // records: names, device start and end); nullopt with `why_not` filled where not available.
  virtual std::optional<std::vector<KernelRecord>> trace_kernels(Variant& variant, std::string* why_not) = 0;

  // Device memory in use now (bytes), for the setup footprint; -1 where unknown.
  virtual std::int64_t memory_in_use() = 0;
  // Peak extra device memory during one call of run(); -1 where unknown.
  virtual std::int64_t call_peak_bytes(Variant& variant) = 0;
};

// nullptr with `why` filled when this backend cannot run here (no GPU, no CUDA in this build).
std::unique_ptr<DeviceBackend> make_cuda_backend(int device, std::string* why);
std::unique_ptr<DeviceBackend> make_cpu_backend();

}  // namespace aisp::harness
