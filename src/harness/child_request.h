// What the parent asks one child process to do, passed as a JSON file (`aisp __run-variant`).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "harness/timing_options.h"

namespace aisp::harness {

struct ChildRequest {
  std::string example;  // "ch14:fused_elementwise"
  std::string variant;  // "baseline"
  TimingOptions timing;
  std::uint64_t seed = 1;  // the second verification uses seed + 1
  int device = 0;
  // Profile pass: setup, warm-up, then one call of run() between cudaProfilerStart/Stop, for the
  // profiler (--profile-from-start off); nothing is verified or timed.
  bool profile_pass = false;
};

nlohmann::json to_json(const ChildRequest& r);
ChildRequest child_request_from_json(const nlohmann::json& j);

}  // namespace aisp::harness
