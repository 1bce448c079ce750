#include "harness/process_state.h"

#include <cstdlib>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::harness {

CudaProcessState parse_process_state(const std::string& name) {
  if (name == "multi-stream") return CudaProcessState::multi_stream;
  if (name == "single-stream") return CudaProcessState::single_stream;
  throw UsageError(fmt::format("--process-state '{}': use multi-stream (the default: every variant timed as in a "
                               "process that has used a second stream) or single-stream",
                               name));
}

const char* name_of(CudaProcessState s) {
  return s == CudaProcessState::single_stream ? "single-stream" : "multi-stream";
}

std::string describe(CudaProcessState s) {
  if (s == CudaProcessState::single_stream) return "single-stream (nothing run on a side stream before setup)";
  return fmt::format("multi-stream ({} operations on a side stream before setup)", kSettleSideStreamOperations);
}

CudaProcessState process_state_from_env() {
  const char* value = std::getenv(kProcessStateEnv);
  if (!value || !*value) return CudaProcessState::multi_stream;
  try {
    return parse_process_state(value);
  } catch (const UsageError&) {
    throw Error(fmt::format("{}='{}' is neither multi-stream nor single-stream (bench run --process-state sets it)",
                            kProcessStateEnv, value));
  }
}

void set_process_state_env(CudaProcessState s) { ::setenv(kProcessStateEnv, name_of(s), 1); }

}  // namespace aisp::harness
