// The NVBench-style stopping rule as a pure function of the samples so far, testable on the CPU.
#pragma once

#include <vector>

#include "harness/timing_options.h"

namespace aisp::harness {

class StoppingRule {
 public:
  explicit StoppingRule(StoppingOptions options) : options_(options) {}

  // `samples_s`: timed sample durations so far (seconds); `wall_s`: wall time spent sampling.
  bool done(const std::vector<double>& samples_s, double wall_s) const;
  // Why sampling stopped, for the results ("noise", "max_time", "iterations", "max_samples").
  const char* reason(const std::vector<double>& samples_s, double wall_s) const;

 private:
  StoppingOptions options_;
};

// Relative standard deviation (sample std / mean); +inf for fewer than 2 samples.
double relative_noise(const std::vector<double>& samples);

}  // namespace aisp::harness
