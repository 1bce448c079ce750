#include "harness/stopping_rule.h"

#include <cmath>
#include <string>

#include <gtest/gtest.h>

namespace aisp::harness {
namespace {

TEST(RelativeNoise, SampleStdOverMean) {
  // mean 2.5, squared deviations 5, sample variance 5/3.
  EXPECT_NEAR(relative_noise({1, 2, 3, 4}), std::sqrt(5.0 / 3.0) / 2.5, 1e-12);
  EXPECT_DOUBLE_EQ(relative_noise({3, 3, 3}), 0);
  EXPECT_TRUE(std::isinf(relative_noise({1})));
  EXPECT_TRUE(std::isinf(relative_noise({})));
}

TEST(StoppingRule, IterationsForceAnExactCount) {
  StoppingOptions o;
  o.iterations = 5;
  o.max_time_s = 0.001;  // ignored with --iterations
  o.max_samples = 2;     // ignored too
  const StoppingRule rule(o);
  const std::vector<double> four(4, 1e-3), five(5, 1e-3);
  EXPECT_FALSE(rule.done(four, 100.0));
  EXPECT_EQ(std::string(rule.reason(four, 100.0)), "");
  EXPECT_TRUE(rule.done(five, 0.0));
  EXPECT_EQ(std::string(rule.reason(five, 0.0)), "iterations");
}

TEST(StoppingRule, MaxSamples) {
  StoppingOptions o;
  o.max_samples = 3;
  o.max_noise = 0;  // never quiet enough
  const StoppingRule rule(o);
  EXPECT_FALSE(rule.done({1e-3, 2e-3}, 0.1));
  EXPECT_EQ(std::string(rule.reason({1e-3, 2e-3, 3e-3}, 0.1)), "max_samples");
}

TEST(StoppingRule, MaxTimeNeedsAtLeastOneSample) {
  StoppingOptions o;
  o.max_time_s = 2;
  const StoppingRule rule(o);
  EXPECT_FALSE(rule.done({}, 10));  // a sample that takes longer than max_time must still be taken
  EXPECT_FALSE(rule.done({0.5}, 1.9));
  EXPECT_EQ(std::string(rule.reason({0.5}, 2.0)), "max_time");
}

TEST(StoppingRule, NoiseNeedsMinSamplesMinTimeAndLowNoise) {
  StoppingOptions o;
  o.min_samples = 10;
  o.max_noise = 0.01;
  o.min_time_s = 0.05;
  o.max_time_s = 100;
  const StoppingRule rule(o);

  std::vector<double> quiet;
  for (int i = 0; i < 10; ++i) quiet.push_back(i % 2 ? 10.05e-3 : 9.95e-3);  // 0.5% noise
  EXPECT_EQ(std::string(rule.reason(quiet, 1)), "noise");  // 10 samples, 0.1 s timed

  const std::vector<double> nine(quiet.begin(), quiet.begin() + 9);
  EXPECT_FALSE(rule.done(nine, 1));  // below min_samples

  std::vector<double> short_quiet = quiet;
  for (double& x : short_quiet) x /= 100;  // 1 ms timed in total
  EXPECT_FALSE(rule.done(short_quiet, 1));  // below min_time

  std::vector<double> noisy;
  for (int i = 0; i < 20; ++i) noisy.push_back(i % 2 ? 12e-3 : 8e-3);  // ~20% noise
  EXPECT_FALSE(rule.done(noisy, 1));
  EXPECT_EQ(std::string(rule.reason(noisy, 100)), "max_time");
}

}  // namespace
}  // namespace aisp::harness
