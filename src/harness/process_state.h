// The process state every CUDA variant is timed in (README, "One process state for all"): before a
// variant's setup the CUDA backend runs kSettleSideStreamOperations operations on a second stream,
// which puts the process where CUDA-graph nodes launch as in any multi-stream application. Each run's
// manifest records it as "measurement.cuda_process_state", so `bench diff` can say when two runs were
// timed in different states. Runs from before the record have none: those before 2026-11-27 22:10 UTC
// (commit 2102757) were not settled, those after it were (64 allocations with side-stream memsets).
#pragma once

namespace aisp::harness {

inline constexpr int kSettleSideStreamOperations = 64;
inline constexpr const char* kCudaProcessState = "64 operations on a side stream before setup";
// What a manifest without the field means.
inline constexpr const char* kCudaProcessStateUnrecorded = "not recorded";

}  // namespace aisp::harness
