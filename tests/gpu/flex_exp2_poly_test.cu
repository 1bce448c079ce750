// flex_exp2_poly on the device (kernels/attention/flex_mods.h; soft-cap's exponentials on the FMA
// pipe): the same bits as on the host (tests/cpu/flex_mods_test.cc checks the host's accuracy), and
// the same accuracy as the MUFU's ex2.approx.ftz it stands in for, over a dense sweep against double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/device_memory.h"
#include "core/gpu.h"
#include "kernels/attention/flex_mods.h"

namespace aisp::test {
namespace {

// t = the float with bits first + i * stride; poly[i] = flex_exp2_poly(t), mufu[i] = ex2.approx.ftz(t).
__global__ void exp2_sweep_kernel(std::uint32_t first, std::uint32_t stride, std::int64_t n, float* poly,
                                  float* mufu) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const float t = __uint_as_float(first + std::uint32_t(i) * stride);
    poly[i] = kernels::flex::flex_exp2_poly(t);
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(t));
    mufu[i] = y;
  }
}

float float_of_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

TEST(FlexExp2Poly, DeviceEqualsHostAndMatchesEx2ApproxAccuracy) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  // Every 61st float from -2^-40 down to -130 (negative floats: the bits grow with |t|).
  const float from = -0x1p-40f, to = -130.0f;
  std::uint32_t first, last;
  std::memcpy(&first, &from, sizeof first);
  std::memcpy(&last, &to, sizeof last);
  const std::uint32_t stride = 61;
  const std::int64_t n = std::int64_t((last - first) / stride) + 1;
  auto poly_d = cuda::device_alloc(std::size_t(n) * sizeof(float));
  auto mufu_d = cuda::device_alloc(std::size_t(n) * sizeof(float));
  exp2_sweep_kernel<<<1024, 256>>>(first, stride, n, static_cast<float*>(poly_d.get()),
                                   static_cast<float*>(mufu_d.get()));
  AISP_CUDA_CHECK_LAUNCH();
  std::vector<float> poly(static_cast<std::size_t>(n)), mufu(static_cast<std::size_t>(n));
  AISP_CUDA_CHECK(cudaMemcpy(poly.data(), poly_d.get(), poly.size() * sizeof(float), cudaMemcpyDeviceToHost));
  AISP_CUDA_CHECK(cudaMemcpy(mufu.data(), mufu_d.get(), mufu.size() * sizeof(float), cudaMemcpyDeviceToHost));
  std::int64_t host_differs = 0, above_underflow = 0;
  double worst_poly = 0, worst_mufu = 0, worst_t = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::size_t k = std::size_t(i);
    const float t = float_of_bits(first + std::uint32_t(i) * stride);
    const float host = kernels::flex::flex_exp2_poly(t);
    host_differs += std::memcmp(&host, &poly[k], sizeof host) != 0 ? 1 : 0;
    if (t < -126.0f) {  // ex2.approx.ftz: 0; the polynomial: a denormal or 0
      above_underflow += poly[k] >= 0x1p-126f || poly[k] < 0.0f ? 1 : 0;
      continue;
    }
    const double want = std::exp2(double(t));
    const double e_poly = std::fabs(double(poly[k]) / want - 1), e_mufu = std::fabs(double(mufu[k]) / want - 1);
    if (e_poly > worst_poly) {
      worst_poly = e_poly;
      worst_t = t;
    }
    worst_mufu = std::max(worst_mufu, e_mufu);
  }
  std::printf("exp2 over %lld floats in [-126, 0]: flex_exp2_poly max rel error %.3g (2^%.2f), ex2.approx %.3g (2^%.2f)\n",
              static_cast<long long>(n), worst_poly, std::log2(worst_poly), worst_mufu, std::log2(worst_mufu));
  EXPECT_EQ(host_differs, 0) << "device and host flex_exp2_poly must compute the same bits";
  EXPECT_EQ(above_underflow, 0) << "below 2^-126 the polynomial must give a denormal or 0";
  EXPECT_LE(worst_poly, std::exp2(-22.0)) << "at t = " << worst_t;
  EXPECT_GT(worst_poly, std::exp2(-25.0)) << "the sweep must see the polynomial's error";
}

}  // namespace
}  // namespace aisp::test
