// Summary statistics and the bootstrap speedup interval.
//
// The median is the primary statistic: GPU timings have a hard floor and a long right tail
// (clock ramps, preemption, a stray context switch), so the mean and the minimum are both poor
// summaries — the mean follows the tail, the minimum rewards a lucky sample.
#include "harness/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"

namespace aisp::harness {
namespace {

// Percentile of already sorted samples, linear interpolation between order statistics
// (the "type 7" definition of Hyndman & Fan, also NumPy's default): rank = p/100 * (n - 1).
double percentile_of_sorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) throw Error("percentile of an empty sample set");
  const double clamped = std::clamp(p, 0.0, 100.0);
  const double rank = clamped / 100.0 * double(sorted.size() - 1);
  const auto below = std::size_t(std::floor(rank));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = rank - double(below);
  return sorted[below] + fraction * (sorted[above] - sorted[below]);
}

// Median of pool.size() values drawn with replacement from `pool`, using `scratch` as storage.
double resampled_median(const std::vector<double>& pool, std::mt19937_64& rng,
                        std::vector<double>& scratch) {
  std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
  scratch.resize(pool.size());
  for (double& x : scratch) x = pool[pick(rng)];
  // nth_element twice is enough for the median of an even count: O(n) instead of a sort.
  const std::size_t n = scratch.size();
  const std::size_t mid = n / 2;
  std::nth_element(scratch.begin(), scratch.begin() + std::ptrdiff_t(mid), scratch.end());
  const double upper = scratch[mid];
  if (n % 2 == 1) return upper;
  const double lower = *std::max_element(scratch.begin(), scratch.begin() + std::ptrdiff_t(mid));
  return 0.5 * (lower + upper);
}

}  // namespace

double percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  return percentile_of_sorted(samples, p);
}

Summary summarize(const std::vector<double>& samples) {
  if (samples.empty()) throw Error("summary of an empty sample set: no timing samples were taken");
  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());

  Summary s;
  s.count = int(sorted.size());
  s.min = sorted.front();
  s.max = sorted.back();
  s.median = percentile_of_sorted(sorted, 50);
  s.p10 = percentile_of_sorted(sorted, 10);
  s.p90 = percentile_of_sorted(sorted, 90);
  s.p99 = percentile_of_sorted(sorted, 99);
  s.mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / double(sorted.size());
  // Sample standard deviation (n - 1): the samples estimate a distribution, they are not all of it.
  if (sorted.size() > 1) {
    double sum_sq = 0;
    for (double x : sorted) sum_sq += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(sum_sq / double(sorted.size() - 1));
  }
  s.relative_noise = s.mean != 0 ? s.stddev / s.mean : 0;
  return s;
}

Speedup speedup_of(const std::vector<double>& baseline, const std::vector<double>& variant,
                   int resamples, std::uint64_t seed) {
  if (baseline.empty() || variant.empty()) {
    throw Error("speedup needs samples on both sides (baseline and variant)");
  }
  Speedup result;
  result.ratio = percentile(baseline, 50) / percentile(variant, 50);
  if (resamples <= 0) {
    result.ci_low = result.ci_high = result.ratio;
    return result;
  }

  // Percentile bootstrap: resample each side independently (the two runs are independent), take
  // the ratio of the resampled medians, and read the 2.5% and 97.5% points of those ratios.
  std::mt19937_64 rng(seed);
  std::vector<double> ratios(static_cast<std::size_t>(resamples));
  std::vector<double> scratch;
  for (double& r : ratios) {
    const double b = resampled_median(baseline, rng, scratch);
    const double v = resampled_median(variant, rng, scratch);
    r = b / v;
  }
  std::sort(ratios.begin(), ratios.end());
  result.ci_low = percentile_of_sorted(ratios, 2.5);
  result.ci_high = percentile_of_sorted(ratios, 97.5);
  return result;
}

}  // namespace aisp::harness
