// erf16 on the device (kernels/common/erf16.cuh), with its MUFU.EX2: the absolute error bound that
// erf16.h documents, over a dense sweep against double erf on the CPU (tests/cpu/erf16_test.cc checks
// the same tokens with an exact exp2).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/device_memory.h"
#include "core/gpu.h"
#include "kernels/common/erf16.cuh"

namespace aisp::test {
namespace {

// x = the float with bits first + i * stride; out[i] = erf16(x).
__global__ void erf16_sweep_kernel(std::uint32_t first, std::uint32_t stride, std::int64_t n, float* out) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    out[i] = kernels::erf16(__uint_as_float(first + std::uint32_t(i) * stride));
}

float float_of_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

TEST(ElementwiseErf16, DeviceAbsoluteErrorOverADenseSweepIsBelow1e6) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  // Every 61st float in [-8, 8] (negative floats have the sign bit set: two sweeps).
  double worst = 0, worst_x = 0;
  for (const std::uint32_t sign : {0u, 0x80000000u}) {
    std::uint32_t last;
    const float eight = 8.0f;
    std::memcpy(&last, &eight, sizeof last);
    const std::uint32_t stride = 61;
    const std::int64_t n = std::int64_t(last / stride) + 1;
    auto out = cuda::device_alloc(std::size_t(n) * sizeof(float));
    erf16_sweep_kernel<<<1024, 256>>>(sign, stride, n, static_cast<float*>(out.get()));
    AISP_CUDA_CHECK_LAUNCH();
    std::vector<float> got(static_cast<std::size_t>(n));
    AISP_CUDA_CHECK(cudaMemcpy(got.data(), out.get(), got.size() * sizeof(float), cudaMemcpyDeviceToHost));
    for (std::int64_t i = 0; i < n; ++i) {
      const float x = float_of_bits(sign + std::uint32_t(i) * stride);
      const double e = std::fabs(double(got[std::size_t(i)]) - std::erf(double(x)));
      if (e > worst) worst = e, worst_x = x;
    }
  }
  std::printf("erf16 on the device: max |erf16 - erf| = %.3g at x = %.6g\n", worst, worst_x);
  EXPECT_LE(worst, 1e-6) << "at x = " << worst_x;
  EXPECT_GT(worst, 1e-7) << "the sweep must see the fit's error";
}

}  // namespace
}  // namespace aisp::test
