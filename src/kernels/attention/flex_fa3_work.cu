// Work counters of the persistent fa3 schedule: one pair per stream, or one a CUDA graph owns (flex_fa3_work.h).
#include "kernels/attention/flex_fa3_work.h"

#include <map>
#include <mutex>
#include <utility>

#include "core/cuda/check.h"
#include "core/error.h"

namespace aisp::kernels::flex::detail {
namespace {

// Zero at module load; each kernel leaves its pair zero again.
__device__ unsigned g_fa3_work[2 * kFa3WorkSlots];

struct DeviceSlots {
  unsigned* base = nullptr;
  std::map<cudaStream_t, int> slot_of;
};

}  // namespace

unsigned* fa3_work_counter(cudaStream_t stream) {
  static std::mutex mutex;
  static std::map<int, DeviceSlots> devices;
  int device = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  DeviceSlots& d = devices[device];
  if (d.base == nullptr) {
    void* address = nullptr;
    AISP_CUDA_CHECK(cudaGetSymbolAddress(&address, g_fa3_work));
    d.base = static_cast<unsigned*>(address);
  }
  auto found = d.slot_of.find(stream);
  if (found == d.slot_of.end()) {
    if (int(d.slot_of.size()) == kFa3WorkSlots) return nullptr;
    found = d.slot_of.emplace(stream, int(d.slot_of.size())).first;
  }
  return d.base + 2 * found->second;
}

unsigned* captured_work_counter(cudaStream_t stream, int device, bool required) {
  int pools = 0;
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device));
  if (pools == 0) {
    if (required)
      throw Error("flex_attention: FlexSchedule::persistent inside a CUDA graph capture needs the stream-ordered "
                  "allocator (cudaMallocAsync), which this device does not support; use FlexSchedule::automatic "
                  "(one CTA per row there) or per_row");
    return nullptr;
  }
  void* counter = nullptr;
  AISP_CUDA_CHECK(cudaMallocAsync(&counter, 2 * sizeof(unsigned), stream));
  AISP_CUDA_CHECK(cudaMemsetAsync(counter, 0, 2 * sizeof(unsigned), stream));
  return static_cast<unsigned*>(counter);
}

void free_captured_work_counter(unsigned* counter, cudaStream_t stream) {
  AISP_CUDA_CHECK(cudaFreeAsync(counter, stream));
}

}  // namespace aisp::kernels::flex::detail
