// The child path on the GPU end to end (run_variant with the CUDA backend): an honest variant
// verifies on both seeds; a wrong one, one that leaves the output unwritten and one that replays a
// result cached across calls are failed rows, the last caught by the second seed.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/cuda/check.h"
#include "core/gpu.h"
#include "harness/child_runner.h"

namespace aisp::harness {
namespace {

constexpr std::int64_t kN = 40'009;  // not a multiple of any vector width

__global__ void scale_kernel(const float* x, float* out, std::int64_t n, float wrong_at) {
  const std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 2.0f * x[i] + (i == std::int64_t(wrong_at) ? 1.0f : 0.0f);
}

__global__ void reference_kernel(const float* x, float* ref, std::int64_t n) {
  const std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) ref[i] = float(2.0 * double(x[i]));
}

class Scale : public Variant {
 public:
  explicit Scale(float wrong_at = -1) : wrong_at_(wrong_at) {}
  void setup(const std::vector<Tensor>& in, const Tensor& out, StreamHandle) override {
    x_ = in[0].as<float>();
    out_ = out.as<float>();
  }
  void run(StreamHandle stream) override {
    scale_kernel<<<unsigned((kN + 255) / 256), 256, 0, stream>>>(x_, out_, kN, wrong_at_);
    AISP_CUDA_CHECK_LAUNCH();
  }

 protected:
  const float* x_ = nullptr;
  float* out_ = nullptr;
  float wrong_at_;
};

// Computes once into a private buffer, then only copies that buffer: a result cached across calls.
class CachedScale : public Scale {
 public:
  void setup(const std::vector<Tensor>& in, const Tensor& out, StreamHandle s) override {
    Scale::setup(in, out, s);
    AISP_CUDA_CHECK(cudaMalloc(&cache_, kN * sizeof(float)));
  }
  void run(StreamHandle stream) override {
    if (!filled_) {
      scale_kernel<<<unsigned((kN + 255) / 256), 256, 0, stream>>>(x_, cache_, kN, -1);
      AISP_CUDA_CHECK_LAUNCH();
      filled_ = true;
    }
    AISP_CUDA_CHECK(cudaMemcpyAsync(out_, cache_, kN * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  }
  void teardown() override { cudaFree(cache_); }

 private:
  float* cache_ = nullptr;
  bool filled_ = false;
};

class Nothing : public Scale {
 public:
  void run(StreamHandle) override {}
};

Example scale_example() {
  Example e;
  e.chapter = "test";
  e.name = "scale";
  e.workload.inputs = {{"x", DType::f32, {kN}, Init::normal()}};
  e.workload.output = {"out", DType::f32, {kN}, Init::normal()};
  e.workload.bytes = 8.0 * kN;
  e.workload.tolerance = tolerance_for(DType::f32);
  e.reference_dtype = DType::f32;
  e.reference = [](const std::vector<Tensor>& in, const Tensor& ref, StreamHandle stream) {
    reference_kernel<<<unsigned((kN + 255) / 256), 256, 0, stream>>>(in[0].as<float>(), ref.as<float>(), kN);
    AISP_CUDA_CHECK_LAUNCH();
  };
  e.variants = {{"baseline", "", [] { return std::make_unique<Scale>(); }},
                {"optimized:wrong", "", [] { return std::make_unique<Scale>(float(kN / 2)); }},
                {"optimized:cached", "", [] { return std::make_unique<CachedScale>(); }},
                {"optimized:nothing", "", [] { return std::make_unique<Nothing>(); }}};
  return e;
}

VariantResult run_one(const Example& e, const std::string& variant) {
  ChildRequest request;
  request.example = e.target();
  request.variant = variant;
  request.timing.stopping.iterations = 3;
  request.timing.warmup = 1;
  return run_variant(e, *e.find_variant(variant), request);
}

TEST(GpuVerification, HonestVariantPassesBothSeedsAndIsTimed) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  const Example e = scale_example();
  const VariantResult r = run_one(e, "baseline");
  ASSERT_EQ(r.status, Status::passed) << r.reason;
  ASSERT_EQ(r.verification.size(), 2u);
  EXPECT_TRUE(r.verification[0].passed && r.verification[1].passed);
  ASSERT_EQ(r.modes.size(), 1u);
  EXPECT_EQ(r.modes[0].samples_s.size(), 3u);
  ASSERT_TRUE(r.launches_per_call.has_value()) << r.launches_note;
  EXPECT_EQ(*r.launches_per_call, 1);
  ASSERT_TRUE(r.modes[0].clocks.has_value());  // read from the start of sampling: at least once
  EXPECT_GE(r.modes[0].clocks->readings, 1) << r.modes[0].clocks->note;
  EXPECT_GT(r.modes[0].clocks->sm_mhz_mean, 0);
  ASSERT_TRUE(r.kernels.has_value()) << r.launches_note;
  EXPECT_EQ(r.kernels->launches, 1);
  ASSERT_EQ(r.kernels->groups.size(), 1u);
  EXPECT_GT(r.kernels->kernel_s, 0);
}

TEST(GpuVerification, WrongOutputFails) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  const VariantResult r = run_one(scale_example(), "optimized:wrong");
  EXPECT_EQ(r.status, Status::failed);
  ASSERT_FALSE(r.verification.empty());
  EXPECT_EQ(r.verification[0].out_of_tolerance, 1);
  EXPECT_TRUE(r.modes.empty());  // never timed, never a speedup
}

TEST(GpuVerification, ResultCachedAcrossCallsFailsOnTheSecondSeed) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  const VariantResult r = run_one(scale_example(), "optimized:cached");
  EXPECT_EQ(r.status, Status::failed);
  ASSERT_EQ(r.verification.size(), 2u);
  EXPECT_TRUE(r.verification[0].passed);
  EXPECT_FALSE(r.verification[1].passed);
}

TEST(GpuVerification, UnwrittenOutputIsCaughtByThePoison) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  const VariantResult r = run_one(scale_example(), "optimized:nothing");
  EXPECT_EQ(r.status, Status::failed);
  ASSERT_FALSE(r.verification.empty());
  EXPECT_EQ(r.verification[0].nan_count, kN);
}

}  // namespace
}  // namespace aisp::harness
