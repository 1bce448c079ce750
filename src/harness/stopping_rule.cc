// The stopping rule: sample until the measurement is quiet enough, or time runs out.
//
// Order of the checks matters only for the reported reason: a forced count (--iterations) overrides
// everything; the hard limits (sample count, wall time) come before the noise target so that a run
// that hit a limit says so even if the noise happened to be low at that moment.
#include "harness/stopping_rule.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace aisp::harness {
namespace {

double sum_of(const std::vector<double>& samples) {
  return std::accumulate(samples.begin(), samples.end(), 0.0);
}

}  // namespace

double relative_noise(const std::vector<double>& samples) {
  if (samples.size() < 2) return std::numeric_limits<double>::infinity();
  const double n = double(samples.size());
  const double mean = sum_of(samples) / n;
  if (mean == 0) return std::numeric_limits<double>::infinity();
  double sum_sq = 0;
  for (double x : samples) sum_sq += (x - mean) * (x - mean);
  return std::sqrt(sum_sq / (n - 1)) / std::abs(mean);
}

const char* StoppingRule::reason(const std::vector<double>& samples_s, double wall_s) const {
  const auto count = samples_s.size();
  if (options_.iterations) {
    return count >= std::size_t(std::max(*options_.iterations, 0)) ? "iterations" : "";
  }
  if (count >= std::size_t(std::max(options_.max_samples, 0))) return "max_samples";
  if (wall_s >= options_.max_time_s && count >= 1) return "max_time";
  if (count >= std::size_t(std::max(options_.min_samples, 0)) &&
      sum_of(samples_s) >= options_.min_time_s &&
      relative_noise(samples_s) <= options_.max_noise) {
    return "noise";
  }
  return "";  // not done yet (empty rather than null, so a caller can print it safely)
}

bool StoppingRule::done(const std::vector<double>& samples_s, double wall_s) const {
  return *reason(samples_s, wall_s) != '\0';
}

}  // namespace aisp::harness
