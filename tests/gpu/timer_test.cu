// The timer measures what the GPU spent, not what the CPU spent enqueuing: a kernel that spins for
// a known time (read from %globaltimer) must time at that duration in cold, hot and burst mode (the
// idle time burst waits before each sample stays out of the samples).

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/gpu.h"
#include "spin_kernel.cuh"
#include "harness/backend.h"
#include "harness/stats.h"

namespace aisp::harness {
namespace {

class SpinVariant : public Variant {
 public:
  explicit SpinVariant(std::uint64_t duration_ns) : duration_ns_(duration_ns) {}
  void setup(const std::vector<Tensor>&, const Tensor&, StreamHandle) override {}
  void run(StreamHandle stream) override {
    spin_kernel<<<1, 1, 0, stream>>>(duration_ns_);
    AISP_CUDA_CHECK_LAUNCH();
  }

 private:
  std::uint64_t duration_ns_;
};

double median(const std::vector<double>& v) { return summarize(v).median; }

void expect_spin_time(Mode mode, double duration_s) {
  std::string why;
  auto backend = make_cuda_backend(0, &why);
  ASSERT_NE(backend, nullptr) << why;
  SpinVariant variant(std::uint64_t(duration_s * 1e9));
  for (int i = 0; i < 3; ++i) variant.run(backend->stream());  // warm-up (module load)
  backend->synchronize();

  TimingOptions options;
  options.stopping.iterations = 20;
  const TimedSamples result = backend->time(variant, mode, options);
  ASSERT_TRUE(result.measured) << result.note;
  EXPECT_TRUE(result.note.empty()) << result.note;
  ASSERT_EQ(result.samples_s.size(), 20u);
  if (mode == Mode::cold || mode == Mode::burst) EXPECT_EQ(result.calls_per_sample, 1);
  EXPECT_GE(result.calls_per_sample, 1);
  // 3% plus a few microseconds: event resolution (~0.5 us), the launch of one kernel after the start
  // event, and the globaltimer's update interval (up to ~1 us).
  const double got = median(result.samples_s);
  EXPECT_NEAR(got, duration_s, 0.03 * duration_s + 5e-6)
      << name_of(mode) << ": median " << got * 1e6 << " us for a " << duration_s * 1e6 << " us kernel, "
      << result.calls_per_sample << " calls per sample";
}

TEST(Timer, ColdMatchesKnownDuration200us) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  expect_spin_time(Mode::cold, 200e-6);
}

TEST(Timer, ColdMatchesKnownDuration2ms) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  expect_spin_time(Mode::cold, 2e-3);
}

TEST(Timer, HotMatchesKnownDuration200us) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  expect_spin_time(Mode::hot, 200e-6);
}

TEST(Timer, HotMatchesKnownDuration2ms) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  expect_spin_time(Mode::hot, 2e-3);
}

TEST(Timer, BurstMatchesKnownDuration2msAndIdlesBeforeEachSample) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  const auto begin = std::chrono::steady_clock::now();
  expect_spin_time(Mode::burst, 2e-3);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  EXPECT_GE(wall, 20 * kBurstIdleSeconds) << "20 burst samples must each wait kBurstIdleSeconds first";
}

}  // namespace
}  // namespace aisp::harness
