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

// A counter pair for a persistent launch being captured into a CUDA graph on `stream` (a graph may
// replay on any stream, so it cannot take a stream's pair): nodes of the graph itself allocate it
// (cudaMallocAsync), zero it before the kernel and, through free_captured_work_counter after the
// kernel, free it. A graph with an allocation node has at most one executable instance at a time
// (cudaGraphInstantiate refuses a second), and launches of one instance run in order, so no two
// replays share the pair. nullptr where the device has no stream-ordered allocator: the caller runs
// one CTA per row then, or, `required` (FlexSchedule::persistent asked for), this throws.
unsigned* captured_work_counter(cudaStream_t stream, int device, bool required);
void free_captured_work_counter(unsigned* counter, cudaStream_t stream);

}  // namespace aisp::kernels::flex::detail
