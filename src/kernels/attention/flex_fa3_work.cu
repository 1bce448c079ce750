// Per-stream work counters of the persistent fa3 schedule (flex_fa3_work.h).
#include "kernels/attention/flex_fa3_work.h"

#include <map>
#include <mutex>
#include <utility>

#include "core/cuda/check.h"

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

}  // namespace aisp::kernels::flex::detail
