// Summary statistics of timing samples and the speedup of one variant over another.
#pragma once

#include <cstdint>
#include <vector>

namespace aisp::harness {

struct Summary {
  int count = 0;
  double median = 0, mean = 0, min = 0, max = 0, p10 = 0, p90 = 0, p99 = 0, stddev = 0;
  double relative_noise = 0;  // stddev / mean
};

// Percentiles by linear interpolation between order statistics. Throws on empty input.
Summary summarize(const std::vector<double>& samples);
double percentile(std::vector<double> samples, double p);  // p in [0, 100]

struct Speedup {
  double ratio = 0;    // median(baseline) / median(variant)
  double ci_low = 0;   // bootstrap 95% interval of that ratio
  double ci_high = 0;
};

// Ratio of medians with a percentile-bootstrap 95% interval: both sample sets are resampled with
// replacement `resamples` times (deterministic seed, so a report is reproducible).
Speedup speedup_of(const std::vector<double>& baseline, const std::vector<double>& variant,
                   int resamples = 2000, std::uint64_t seed = 0x5eed);

}  // namespace aisp::harness
