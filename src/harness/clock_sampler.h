// The GPU's SM clock and board power while a variant is timed: a thread reads NVML every few
// milliseconds between start and stop. Under a power cap (700 W on an H100/H200 SXM) the clock
// moves with the work, so two variants' times compare only with the clocks they ran at: a variant
// that keeps the GPU busier (a CUDA graph with no launch gaps, say) may run at a lower clock.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/nvml.h"

namespace aisp::harness {

struct ClockSummary {
  int readings = 0;          // 0: nothing read (see `note`)
  double sm_mhz_mean = 0, sm_mhz_min = 0, sm_mhz_max = 0;
  double power_w_mean = -1;  // -1: the board reports no power
  double power_capped_share = 0;  // share of readings with the clock held down by the power limit
  std::string note;          // why there are no readings
};

// Mean, min and max over the readings; power over those that have it.
ClockSummary summarize_clocks(const std::vector<NvmlReading>& readings);

nlohmann::json to_json(const ClockSummary& c);
ClockSummary clock_summary_from_json(const nlohmann::json& j);  // throws aisp::Error naming the field

// Starts reading at construction; stop() ends the thread and summarizes. Without NVML (no driver,
// no device) nothing runs and the summary's note says why.
class ClockSampler {
 public:
  explicit ClockSampler(int cuda_index, std::chrono::milliseconds period = std::chrono::milliseconds(10));
  ~ClockSampler();
  ClockSampler(const ClockSampler&) = delete;
  ClockSampler& operator=(const ClockSampler&) = delete;

  ClockSummary stop();

 private:
  NvmlReader reader_;
  std::chrono::milliseconds period_;
  std::atomic<bool> stop_{false};
  std::vector<NvmlReading> readings_;  // written by the thread only until it is joined
  std::thread thread_;
};

}  // namespace aisp::harness
