#include "harness/verification.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/random.h"

namespace aisp::harness {
namespace {

template <class T>
Tensor host_view(std::vector<T>& data, DType dtype) {
  return Tensor{data.data(), dtype, {std::int64_t(data.size())}, Backend::cpu};
}

std::vector<float> random_normal(int n, std::uint64_t seed) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = rng::normal_at(seed, i);
  return v;
}

TEST(ToleranceFor, ByDType) {
  EXPECT_EQ(tolerance_for(DType::f64).max_rel_l2, 1e-12);
  EXPECT_EQ(tolerance_for(DType::f32).atol, 1e-5);
  const Tolerance bf16 = tolerance_for(DType::bf16);
  EXPECT_EQ(bf16.max_rel_l2, 1e-2);
  EXPECT_EQ(bf16.atol, 2e-2);
  EXPECT_EQ(bf16.rtol, 2e-2);
  EXPECT_EQ(tolerance_for(DType::f16).rtol, 2e-3);
  EXPECT_EQ(tolerance_for(DType::u8).max_rel_l2, 0);
  EXPECT_EQ(tolerance_for(DType::i32).atol, 0);
}

TEST(CompareOnHost, ExactMatchPasses) {
  auto ref = random_normal(1000, 1);
  auto out = ref;
  const Tolerance t = tolerance_for(DType::f32);
  const VerifyResult v = judge(compare_on_host(host_view(out, DType::f32), host_view(ref, DType::f32), t), t);
  EXPECT_TRUE(v.passed) << v.message;
  EXPECT_EQ(v.rel_l2, 0);
  EXPECT_EQ(v.count, 1000);
}

TEST(CompareOnHost, Bf16RoundingPassesBf16ButNotF32Tolerance) {
  auto ref = random_normal(4096, 2);
  std::vector<std::uint16_t> out(ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) out[i] = float_to_bf16_bits(ref[i]);
  const Tensor o = host_view(out, DType::bf16), r = host_view(ref, DType::f32);

  const VerifyResult loose = judge(compare_on_host(o, r, tolerance_for(DType::bf16)), tolerance_for(DType::bf16));
  EXPECT_TRUE(loose.passed) << loose.message;
  // One rounding to 8 mantissa bits: relative error at most 2^-9, about 1e-3 in L2 on average.
  EXPECT_GT(loose.rel_l2, 1e-4);
  EXPECT_LT(loose.rel_l2, std::ldexp(1.0, -9));

  const VerifyResult strict = judge(compare_on_host(o, r, tolerance_for(DType::f32)), tolerance_for(DType::f32));
  EXPECT_FALSE(strict.passed);
  EXPECT_GT(strict.out_of_tolerance, 0);
  EXPECT_NE(strict.message.find("relative L2 error"), std::string::npos) << strict.message;
}

TEST(CompareOnHost, F16DecodingIsExact) {
  // 1, -2, largest finite 65504, smallest subnormal 2^-24, a subnormal 2^-15, nearest to 1/3.
  std::vector<std::uint16_t> out = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x0200, 0x3555, 0x8000};
  std::vector<double> ref = {1, -2, 65504, std::ldexp(1.0, -24), std::ldexp(1.0, -15), 0.333251953125, -0.0};
  const Tolerance exact{0, 0, 0};
  const VerifyResult v = judge(compare_on_host(host_view(out, DType::f16), host_view(ref, DType::f64), exact), exact);
  EXPECT_TRUE(v.passed) << v.message;
  EXPECT_EQ(v.max_abs, 0);
}

TEST(CompareOnHost, NonFiniteOutputsFail) {
  std::vector<std::uint16_t> out = {0x3c00, 0x7e00 /* NaN */, 0x7c00 /* +inf */, 0x4000};
  std::vector<float> ref = {1, 1, 1, 2};
  const Tolerance t = tolerance_for(DType::f16);
  const ErrorStats stats = compare_on_host(host_view(out, DType::f16), host_view(ref, DType::f32), t);
  EXPECT_EQ(stats.nan_count, 2);
  EXPECT_EQ(stats.out_of_tolerance, 2);
  EXPECT_EQ(stats.sum_sq_diff, 0);  // finite outputs are exact
  const VerifyResult v = judge(stats, t);
  EXPECT_FALSE(v.passed);
  EXPECT_NE(v.message.find("2 of 4 outputs are NaN"), std::string::npos) << v.message;
}

TEST(CompareOnHost, PoisonLeftInF32OutputFails) {
  auto ref = random_normal(256, 3);
  auto out = ref;
  out[17] = std::numeric_limits<float>::quiet_NaN();
  const Tolerance t = tolerance_for(DType::f32);
  const VerifyResult v = judge(compare_on_host(host_view(out, DType::f32), host_view(ref, DType::f32), t), t);
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.nan_count, 1);
  EXPECT_EQ(v.rel_l2, 0);  // the NaN is reported by count, not hidden in the norm
}

TEST(CompareOnHost, OneWrongElementIsOutOfTolerance) {
  auto ref = random_normal(10000, 4);
  auto out = ref;
  out[1234] += 0.01f;  // tiny in L2 over 10^4 elements, but far beyond atol + rtol |ref|
  const Tolerance t{1e-2, 1e-5, 1e-5};
  const VerifyResult v = judge(compare_on_host(host_view(out, DType::f32), host_view(ref, DType::f32), t), t);
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.out_of_tolerance, 1);
  EXPECT_LT(v.rel_l2, 1e-2);
  EXPECT_NEAR(v.max_abs, 0.01, 1e-6);
  EXPECT_NE(v.message.find("1 of 10000 elements exceed"), std::string::npos) << v.message;
}

TEST(CompareOnHost, RejectsMismatchedShapesAndDeviceTensors) {
  std::vector<float> a(4, 1), b(5, 1);
  const Tolerance t;
  EXPECT_THROW(compare_on_host(host_view(a, DType::f32), host_view(b, DType::f32), t), Error);
  Tensor device = host_view(a, DType::f32);
  device.where = Backend::cuda;
  EXPECT_THROW(compare_on_host(device, host_view(a, DType::f32), t), Error);
}

TEST(Judge, ZeroReference) {
  const Tolerance t = tolerance_for(DType::f32);
  ErrorStats exact{0, 0, 0, 0, 0, 8};
  EXPECT_TRUE(judge(exact, t).passed);
  EXPECT_EQ(judge(exact, t).rel_l2, 0);
  ErrorStats off{1e-6, 0, 1e-3, 0, 0, 8};
  const VerifyResult v = judge(off, t);
  EXPECT_FALSE(v.passed);
  EXPECT_TRUE(std::isinf(v.rel_l2));
}

TEST(Judge, RelativeL2FromSums) {
  const Tolerance t{1e-2, 1, 1};
  const VerifyResult v = judge(ErrorStats{4e-4, 4.0, 0.01, 0, 0, 100}, t);  // sqrt(1e-4) = 1e-2
  EXPECT_NEAR(v.rel_l2, 1e-2, 1e-15);
  const VerifyResult worse = judge(ErrorStats{9e-4, 4.0, 0.01, 0, 0, 100}, t);
  EXPECT_FALSE(worse.passed);
  EXPECT_NE(worse.message.find("1.500e-02 > 1.0e-02"), std::string::npos) << worse.message;
}

}  // namespace
}  // namespace aisp::harness
