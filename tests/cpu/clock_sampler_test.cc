// The clocks a variant ran at (clock_sampler.h): the summary of NVML readings, its JSON form, and a
// sampler on a machine without NVML (CI), which reads nothing and says why.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "core/error.h"
#include "harness/clock_sampler.h"

namespace aisp::harness {
namespace {

TEST(ClockSummary, MeanMinMaxPowerAndCapShare) {
  const ClockSummary c = summarize_clocks({{1980, 300, false}, {1755, 700, true}, {1800, -1, true}});
  EXPECT_EQ(c.readings, 3);
  EXPECT_DOUBLE_EQ(c.sm_mhz_mean, 1845);
  EXPECT_DOUBLE_EQ(c.sm_mhz_min, 1755);
  EXPECT_DOUBLE_EQ(c.sm_mhz_max, 1980);
  EXPECT_DOUBLE_EQ(c.power_w_mean, 500);  // over the two readings with a power value
  EXPECT_DOUBLE_EQ(c.power_capped_share, 2.0 / 3.0);
  const ClockSummary none = summarize_clocks({});
  EXPECT_EQ(none.readings, 0);
  EXPECT_FALSE(none.note.empty());
  const ClockSummary no_power = summarize_clocks({{1500, -1, false}});
  EXPECT_DOUBLE_EQ(no_power.power_w_mean, -1);
}

TEST(ClockSummary, JsonRoundTripAndMissingField) {
  const ClockSummary c = summarize_clocks({{1980, 300, false}, {1755, 700, true}});
  const ClockSummary back = clock_summary_from_json(to_json(c));
  EXPECT_EQ(back.readings, 2);
  EXPECT_DOUBLE_EQ(back.sm_mhz_mean, c.sm_mhz_mean);
  EXPECT_DOUBLE_EQ(back.power_capped_share, 0.5);
  nlohmann::json broken = to_json(c);
  broken.erase("sm_mhz_min");
  try {
    clock_summary_from_json(broken);
    FAIL() << "a summary without sm_mhz_min was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sm_mhz_min"), std::string::npos) << e.what();
  }
}

// Without NVML nothing is read and the note names NVML; with it (a GPU machine), ~10 readings in
// 0.1 s, each a plausible clock.
TEST(ClockSampler, ReadsWhileRunningOrSaysWhyNot) {
  ClockSampler sampler(0, std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const ClockSummary c = sampler.stop();
  if (c.readings == 0) {
    EXPECT_NE(c.note.find("NVML"), std::string::npos) << c.note;
    return;
  }
  EXPECT_GE(c.readings, 3);
  EXPECT_GT(c.sm_mhz_min, 0);
  EXPECT_LT(c.sm_mhz_max, 5000);
  EXPECT_EQ(sampler.stop().readings, c.readings);  // a second stop reads nothing more
}

}  // namespace
}  // namespace aisp::harness
