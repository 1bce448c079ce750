// The work counters of the fa3 kernel's persistent schedule (FlexSchedule::persistent, Fa3Maps::work).
#pragma once

#include <cuda_runtime.h>

namespace aisp::kernels::flex::detail {

// Two zeroed uint32 on the current device for launches on `stream`: {next ticket, CTAs done}. The
// kernel leaves them zero when it completes (its last CTA resets them), so launches in stream order
// can share them; launches that may overlap must not, hence one pair per (device, stream), kept for
// the process (a destroyed stream's handle, if reused, gets the pair back). They live in a static
// device array: no allocation or memset per call. nullptr once every slot of the device is taken
// (kFa3WorkSlots streams): the caller runs one CTA per row then.
inline constexpr int kFa3WorkSlots = 1024;
unsigned* fa3_work_counter(cudaStream_t stream);

}  // namespace aisp::kernels::flex::detail
