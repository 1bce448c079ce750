// Graph mode: a capturable run() is captured once and replayed; a run() that cannot be captured
// (here: it synchronizes) is reported as not measured, and the backend stays usable.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/gpu.h"
#include "spin_kernel.cuh"
#include "harness/backend.h"
#include "harness/stats.h"

namespace aisp::harness {
namespace {

// Two kernels per call, so the graph has more than one node.
class SpinVariant : public Variant {
 public:
  void setup(const std::vector<Tensor>&, const Tensor&, StreamHandle) override {}
  void run(StreamHandle stream) override {
    for (int i = 0; i < 2; ++i) {
      spin_kernel<<<1, 1, 0, stream>>>(50'000);  // 50 us
      AISP_CUDA_CHECK_LAUNCH();
    }
  }
};

// Breaks the contract: synchronizes inside run(), which a capture cannot contain. It ignores the
// error the way careless code would, so the capture fails at its end.
class SynchronizingVariant : public SpinVariant {
 public:
  void run(StreamHandle stream) override {
    SpinVariant::run(stream);
    (void)cudaStreamSynchronize(stream);
  }
};

class NotCapturableVariant : public SpinVariant {
 public:
  bool graph_capturable() const override { return false; }
};

double median(const std::vector<double>& v) { return summarize(v).median; }

class GraphTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const GpuProbe probe = probe_gpus();
    if (!probe.available) GTEST_SKIP() << probe.reason;
    std::string why;
    backend_ = make_cuda_backend(0, &why);
    ASSERT_NE(backend_, nullptr) << why;
    options_.stopping.iterations = 20;
  }
  std::unique_ptr<DeviceBackend> backend_;
  TimingOptions options_;
};

TEST_F(GraphTest, MeasuresACapturableVariant) {
  SpinVariant variant;
  variant.run(backend_->stream());
  backend_->synchronize();
  const TimedSamples result = backend_->time(variant, Mode::graph, options_);
  ASSERT_TRUE(result.measured) << result.note;
  EXPECT_EQ(result.mode, Mode::graph);
  ASSERT_EQ(result.samples_s.size(), 20u);
  EXPECT_GE(result.calls_per_sample, 1);
  const double got = median(result.samples_s);
  EXPECT_NEAR(got, 100e-6, 0.03 * 100e-6 + 5e-6) << "median " << got * 1e6 << " us per replay of 2 x 50 us";
}

TEST_F(GraphTest, SynchronizingVariantIsNotMeasured) {
  SynchronizingVariant variant;
  const TimedSamples result = backend_->time(variant, Mode::graph, options_);
  EXPECT_FALSE(result.measured);
  EXPECT_TRUE(result.samples_s.empty());
  EXPECT_FALSE(result.note.empty());
  // The stream left capture mode and the backend still works.
  EXPECT_NO_THROW(backend_->synchronize());
  SpinVariant good;
  const TimedSamples after = backend_->time(good, Mode::graph, options_);
  EXPECT_TRUE(after.measured) << after.note;
  EXPECT_NO_THROW(backend_->synchronize());
}

TEST_F(GraphTest, VariantThatSaysNotCapturableIsNotMeasured) {
  NotCapturableVariant variant;
  const TimedSamples result = backend_->time(variant, Mode::graph, options_);
  EXPECT_FALSE(result.measured);
  EXPECT_FALSE(result.note.empty());
}

}  // namespace
}  // namespace aisp::harness
