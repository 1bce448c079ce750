#include "harness/profiler_range.h"

#if AISP_WITH_CUDA
#include <cuda_profiler_api.h>
#endif

namespace aisp::harness {

#if AISP_WITH_CUDA
void begin_profiled_region() { cudaProfilerStart(); }
void end_profiled_region() { cudaProfilerStop(); }
#else
void begin_profiled_region() {}
void end_profiled_region() {}
#endif

}  // namespace aisp::harness
