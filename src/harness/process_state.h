// The process state every CUDA variant is timed in (README, "One process state for all"). Once a
// process has run 8 operations on a stream other than the one a CUDA graph is launched on, every
// node of that graph launches ~0.35 us later for the rest of the process. By default the CUDA
// backend puts each variant's process there before its setup (kSettleSideStreamOperations
// operations on a second stream: the state of any multi-stream application), so a variant whose
// setup uses other streams (max-autotune's search) and one that does not are timed alike.
// `bench run --process-state single-stream` skips that, for what a single-stream application sees;
// the variants that use other streams themselves then still leave it.
//
// The choice travels to the variants' processes as AISP_CUDA_PROCESS_STATE, and each run's manifest
// records it as "measurement.cuda_process_state", so `bench diff` can say when two runs were timed
// in different states. Runs from before the record have none: those before 2026-11-27 22:10 UTC
// (commit 2102757) were not settled, those after it were.
#pragma once

#include <string>

namespace aisp::harness {

enum class CudaProcessState { multi_stream, single_stream };

inline constexpr int kSettleSideStreamOperations = 64;
inline constexpr const char* kProcessStateEnv = "AISP_CUDA_PROCESS_STATE";
// What a manifest without the record means.
inline constexpr const char* kCudaProcessStateUnrecorded = "not recorded";

// "multi-stream" | "single-stream" (the CLI's spelling); another name throws aisp::UsageError.
CudaProcessState parse_process_state(const std::string& name);
const char* name_of(CudaProcessState s);
// How the manifest describes it: "multi-stream (64 operations on a side stream before setup)".
std::string describe(CudaProcessState s);
// The state this process is asked for (kProcessStateEnv; unset: multi-stream), and setting it for
// the variants' processes this one starts.
CudaProcessState process_state_from_env();
void set_process_state_env(CudaProcessState s);

}  // namespace aisp::harness
