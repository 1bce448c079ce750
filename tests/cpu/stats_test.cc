#include "harness/stats.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"

namespace aisp::harness {
namespace {

TEST(Percentile, InterpolatesBetweenOrderStatistics) {
  // Sorted: 1 2 3 4 5; rank = p/100 * 4.
  const std::vector<double> odd = {4, 1, 3, 5, 2};
  EXPECT_DOUBLE_EQ(percentile(odd, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(odd, 100), 5);
  EXPECT_DOUBLE_EQ(percentile(odd, 50), 3);
  EXPECT_DOUBLE_EQ(percentile(odd, 25), 2);
  EXPECT_DOUBLE_EQ(percentile(odd, 10), 1.4);   // rank 0.4
  EXPECT_DOUBLE_EQ(percentile(odd, 90), 4.6);   // rank 3.6
  // Sorted: 10 20 30 40; rank = p/100 * 3.
  const std::vector<double> even = {40, 10, 30, 20};
  EXPECT_DOUBLE_EQ(percentile(even, 50), 25);
  EXPECT_DOUBLE_EQ(percentile(even, 10), 13);   // rank 0.3
  EXPECT_DOUBLE_EQ(percentile(even, 99), 39.7); // rank 2.97
  EXPECT_DOUBLE_EQ(percentile({7}, 37), 7);
  EXPECT_THROW(percentile({}, 50), Error);
}

TEST(Summarize, HandComputedValues) {
  const Summary s = summarize({9, 2, 4, 4, 5, 4, 7, 5});
  EXPECT_EQ(s.count, 8);
  EXPECT_DOUBLE_EQ(s.min, 2);
  EXPECT_DOUBLE_EQ(s.max, 9);
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_DOUBLE_EQ(s.median, 4.5);
  // Sum of squared deviations 32, sample std sqrt(32 / 7).
  EXPECT_NEAR(s.stddev, std::sqrt(32.0 / 7.0), 1e-12);
  EXPECT_NEAR(s.relative_noise, std::sqrt(32.0 / 7.0) / 5, 1e-12);
  EXPECT_DOUBLE_EQ(s.p10, 2 + 0.7 * 2);  // sorted 2 4 4 4 5 5 7 9, rank 0.7
  EXPECT_DOUBLE_EQ(s.p90, 7 + 0.3 * 2);  // rank 6.3
  EXPECT_THROW(summarize({}), Error);
}

// Log-normal timings around `median`: positive with a right tail, like GPU samples.
std::vector<double> timings(double median, int n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0, 0.05);
  std::vector<double> out(n);
  for (double& x : out) x = median * std::exp(z(rng));
  return out;
}

TEST(Speedup, IntervalContainsTrueRatioAndShrinksWithMoreSamples) {
  const double true_ratio = 3.0;
  const Speedup small = speedup_of(timings(3e-3, 20, 1), timings(1e-3, 20, 2));
  const Speedup large = speedup_of(timings(3e-3, 800, 3), timings(1e-3, 800, 4));
  for (const Speedup& s : {small, large}) {
    EXPECT_LE(s.ci_low, s.ratio);
    EXPECT_GE(s.ci_high, s.ratio);
    EXPECT_LT(s.ci_low, true_ratio);
    EXPECT_GT(s.ci_high, true_ratio);
    EXPECT_NEAR(s.ratio, true_ratio, 0.1);
  }
  // Width of a median's interval goes as 1/sqrt(n): 40x the samples, about 6x narrower.
  EXPECT_LT((large.ci_high - large.ci_low) * 3, small.ci_high - small.ci_low);
}

TEST(Speedup, RatioOfMediansAndReproducible) {
  const auto base = timings(2e-3, 51, 5), variant = timings(5e-4, 51, 6);
  const Speedup a = speedup_of(base, variant);
  const Speedup b = speedup_of(base, variant);
  EXPECT_DOUBLE_EQ(a.ratio, percentile(base, 50) / percentile(variant, 50));
  EXPECT_EQ(a.ci_low, b.ci_low);  // same seed, same interval: a report is reproducible
  EXPECT_EQ(a.ci_high, b.ci_high);
  const Speedup other_seed = speedup_of(base, variant, 2000, 99);
  EXPECT_NE(a.ci_low, other_seed.ci_low);
  EXPECT_THROW(speedup_of({}, variant), Error);
}

TEST(Speedup, NoNoiseGivesAPointInterval) {
  const Speedup s = speedup_of({4, 4, 4, 4}, {2, 2, 2});
  EXPECT_DOUBLE_EQ(s.ratio, 2);
  EXPECT_DOUBLE_EQ(s.ci_low, 2);
  EXPECT_DOUBLE_EQ(s.ci_high, 2);
}

}  // namespace
}  // namespace aisp::harness
