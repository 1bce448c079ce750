#include "harness/clock_sampler.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::harness {

ClockSummary summarize_clocks(const std::vector<NvmlReading>& readings) {
  ClockSummary c;
  if (readings.empty()) {
    c.note = "no clock readings";
    return c;
  }
  c.readings = int(readings.size());
  c.sm_mhz_min = c.sm_mhz_max = readings.front().sm_mhz;
  double mhz = 0, watts = 0;
  int powered = 0, capped = 0;
  for (const NvmlReading& r : readings) {
    mhz += r.sm_mhz;
    c.sm_mhz_min = std::min(c.sm_mhz_min, r.sm_mhz);
    c.sm_mhz_max = std::max(c.sm_mhz_max, r.sm_mhz);
    if (r.power_w >= 0) watts += r.power_w, ++powered;
    capped += r.power_capped;
  }
  c.sm_mhz_mean = mhz / c.readings;
  if (powered > 0) c.power_w_mean = watts / powered;
  c.power_capped_share = double(capped) / c.readings;
  return c;
}

nlohmann::json to_json(const ClockSummary& c) {
  return {{"readings", c.readings},         {"sm_mhz_mean", c.sm_mhz_mean},   {"sm_mhz_min", c.sm_mhz_min},
          {"sm_mhz_max", c.sm_mhz_max},     {"power_w_mean", c.power_w_mean}, {"power_capped_share", c.power_capped_share},
          {"note", c.note}};
}

ClockSummary clock_summary_from_json(const nlohmann::json& j) {
  const auto field = [&](const char* key) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(key)) throw Error(fmt::format("clock summary: missing field '{}'", key));
    return j.at(key);
  };
  try {
    ClockSummary c;
    c.readings = field("readings").get<int>();
    c.sm_mhz_mean = field("sm_mhz_mean").get<double>();
    c.sm_mhz_min = field("sm_mhz_min").get<double>();
    c.sm_mhz_max = field("sm_mhz_max").get<double>();
    c.power_w_mean = field("power_w_mean").get<double>();
    c.power_capped_share = field("power_capped_share").get<double>();
    c.note = j.value("note", "");
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("clock summary: {}", e.what()));
  }
}

ClockSampler::ClockSampler(int cuda_index, std::chrono::milliseconds period) : reader_(cuda_index), period_(period) {
  if (!reader_.available()) return;
  thread_ = std::thread([this] {
    while (!stop_.load(std::memory_order_relaxed)) {
      if (auto r = reader_.read()) readings_.push_back(*r);
      std::this_thread::sleep_for(period_);
    }
  });
}

ClockSampler::~ClockSampler() { stop(); }

ClockSummary ClockSampler::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  ClockSummary c = summarize_clocks(readings_);
  if (!reader_.available()) c.note = "NVML: " + reader_.reason();
  return c;
}

}  // namespace aisp::harness
