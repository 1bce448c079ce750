// The GPU fill, poison and compare: seeded fills are deterministic and match the host generator
// bit for bit; compare() counts exactly the wrong and the NaN elements.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/dtype.h"
#include "core/gpu.h"
#include "core/random.h"
#include "harness/backend.h"
#include "harness/verification.h"

namespace aisp::harness {
namespace {

// A tensor released when the test ends, however it ends.
struct Owned {
  DeviceBackend* backend;
  Tensor tensor;
  Owned(DeviceBackend& b, const std::string& name, DType dtype, std::int64_t n)
      : backend(&b), tensor(b.allocate(TensorSpec{name, dtype, {n}, Init::normal()})) {}
  ~Owned() {
    try {
      backend->release(tensor);
    } catch (...) {
    }
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
};

template <class T>
std::vector<T> to_host(DeviceBackend& backend, const Tensor& t) {
  backend.synchronize();
  std::vector<T> host(std::size_t(t.numel()));
  AISP_CUDA_CHECK(cudaMemcpy(host.data(), t.data, t.bytes(), cudaMemcpyDeviceToHost));
  return host;
}

template <class T>
void set_element(DeviceBackend& backend, const Tensor& t, std::int64_t index, T value) {
  backend.synchronize();
  AISP_CUDA_CHECK(cudaMemcpy(static_cast<T*>(t.data) + index, &value, sizeof(T), cudaMemcpyHostToDevice));
}

// Tolerances for a bf16 result (relative rounding error 2^-9), written out so that this test does
// not depend on tolerance_for's choice.
constexpr Tolerance kBf16Tolerance{1e-2, 1e-2, 1e-2};

// An odd size that is no multiple of the block size and needs many blocks.
constexpr std::int64_t kN = 3'000'017;

class CompareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const GpuProbe probe = probe_gpus();
    if (!probe.available) GTEST_SKIP() << probe.reason;
    std::string why;
    backend_ = make_cuda_backend(0, &why);
    ASSERT_NE(backend_, nullptr) << why;
  }
  std::unique_ptr<DeviceBackend> backend_;
};

TEST_F(CompareTest, CorrectBf16OutputPasses) {
  Owned ref(*backend_, "ref", DType::f32, kN), out(*backend_, "out", DType::bf16, kN);
  backend_->fill(ref.tensor, Init::normal(), 11);
  backend_->fill(out.tensor, Init::normal(), 11);  // the same values, rounded to bf16
  const ErrorStats stats = backend_->compare(out.tensor, ref.tensor, kBf16Tolerance);
  EXPECT_EQ(stats.count, kN);
  EXPECT_EQ(stats.nan_count, 0);
  EXPECT_EQ(stats.out_of_tolerance, 0);
  EXPECT_GT(stats.sum_sq_ref, 0.5 * double(kN));  // unit variance
  EXPECT_GT(stats.max_abs, 0.0);                  // bf16 rounding is there...
  EXPECT_LE(stats.max_abs, 3.5 / 256);            // ...and no more (|x| < 3.47, 8 bits of mantissa)
  const VerifyResult verdict = judge(stats, kBf16Tolerance);
  EXPECT_TRUE(verdict.passed) << verdict.message;
}

TEST_F(CompareTest, OneWrongElementFails) {
  Owned ref(*backend_, "ref", DType::f32, kN), out(*backend_, "out", DType::bf16, kN);
  backend_->fill(ref.tensor, Init::normal(), 11);
  backend_->fill(out.tensor, Init::normal(), 11);
  const std::int64_t index = kN / 3;
  const std::uint16_t old_bits = to_host<std::uint16_t>(*backend_, out.tensor)[std::size_t(index)];
  set_element(*backend_, out.tensor, index, float_to_bf16_bits(bf16_bits_to_float(old_bits) + 1.0f));
  const ErrorStats stats = backend_->compare(out.tensor, ref.tensor, kBf16Tolerance);
  EXPECT_EQ(stats.nan_count, 0);
  EXPECT_EQ(stats.out_of_tolerance, 1);
  EXPECT_NEAR(stats.max_abs, 1.0, 0.05);
  EXPECT_FALSE(judge(stats, kBf16Tolerance).passed);
}

TEST_F(CompareTest, OneNanFails) {
  Owned ref(*backend_, "ref", DType::f32, kN), out(*backend_, "out", DType::bf16, kN);
  backend_->fill(ref.tensor, Init::normal(), 11);
  backend_->fill(out.tensor, Init::normal(), 11);
  set_element(*backend_, out.tensor, kN - 1, std::uint16_t(0x7FC0));
  const ErrorStats stats = backend_->compare(out.tensor, ref.tensor, kBf16Tolerance);
  EXPECT_EQ(stats.nan_count, 1);
  EXPECT_EQ(stats.out_of_tolerance, 1);
  EXPECT_FALSE(judge(stats, kBf16Tolerance).passed);
}

TEST_F(CompareTest, PoisonedOutputIsAllNan) {
  Owned ref(*backend_, "ref", DType::f64, kN);
  backend_->fill(ref.tensor, Init::normal(), 3);
  for (DType dtype : {DType::bf16, DType::f16, DType::f32, DType::f64}) {
    Owned out(*backend_, "out", dtype, kN);
    backend_->fill(out.tensor, Init::normal(), 3);
    backend_->poison(out.tensor);
    const ErrorStats stats = backend_->compare(out.tensor, ref.tensor, kBf16Tolerance);
    EXPECT_EQ(stats.nan_count, kN) << name_of(dtype);
    EXPECT_EQ(stats.out_of_tolerance, kN) << name_of(dtype);
    EXPECT_FALSE(judge(stats, kBf16Tolerance).passed) << name_of(dtype);
  }
}

TEST_F(CompareTest, PoisonOfIntegersIsAllOnes) {
  Owned bytes(*backend_, "bytes", DType::u8, 1001);
  backend_->fill(bytes.tensor, Init::bernoulli(0.5), 1);
  backend_->poison(bytes.tensor);
  for (std::uint8_t b : to_host<std::uint8_t>(*backend_, bytes.tensor)) ASSERT_EQ(b, 0xFF);
}

TEST_F(CompareTest, FillIsDeterministicPerSeedAndDiffersAcrossSeeds) {
  Owned t(*backend_, "t", DType::f32, kN);
  backend_->fill(t.tensor, Init::normal(2.0), 5);
  const std::vector<float> first = to_host<float>(*backend_, t.tensor);
  backend_->fill(t.tensor, Init::normal(2.0), 5);
  const std::vector<float> again = to_host<float>(*backend_, t.tensor);
  backend_->fill(t.tensor, Init::normal(2.0), 6);
  const std::vector<float> other = to_host<float>(*backend_, t.tensor);
  EXPECT_EQ(std::memcmp(first.data(), again.data(), first.size() * sizeof(float)), 0);
  std::int64_t same = 0;
  for (std::size_t i = 0; i < first.size(); ++i) same += first[i] == other[i];
  EXPECT_LT(same, kN / 100);  // ~2^-16 of the values coincide by chance
}

TEST_F(CompareTest, DeviceFillMatchesHostGeneratorBitExactly) {
  constexpr std::int64_t n = 4099;
  constexpr std::uint64_t seed = 42;
  Owned f32(*backend_, "f32", DType::f32, n), bf16(*backend_, "bf16", DType::bf16, n);
  Owned u8(*backend_, "u8", DType::u8, n), i32(*backend_, "i32", DType::i32, n);
  backend_->fill(f32.tensor, Init::normal(), seed);
  backend_->fill(bf16.tensor, Init::normal(), seed);
  backend_->fill(u8.tensor, Init::bernoulli(0.3), seed);
  backend_->fill(i32.tensor, Init::uniform_int(1000), seed);
  const auto f32_host = to_host<float>(*backend_, f32.tensor);
  const auto bf16_host = to_host<std::uint16_t>(*backend_, bf16.tensor);
  const auto u8_host = to_host<std::uint8_t>(*backend_, u8.tensor);
  const auto i32_host = to_host<std::int32_t>(*backend_, i32.tensor);
  std::int64_t ones = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto k = std::uint64_t(i);
    const float expected = rng::normal_at(seed, k);
    std::uint32_t got_bits, expected_bits;
    std::memcpy(&got_bits, &f32_host[std::size_t(i)], 4);
    std::memcpy(&expected_bits, &expected, 4);
    ASSERT_EQ(got_bits, expected_bits) << "f32 element " << i;
    ASSERT_EQ(bf16_host[std::size_t(i)], float_to_bf16_bits(expected)) << "bf16 element " << i;
    ASSERT_EQ(u8_host[std::size_t(i)], double(rng::uniform_at(seed, k)) < 0.3 ? 1 : 0) << "u8 element " << i;
    ASSERT_EQ(i32_host[std::size_t(i)], std::int32_t(rng::bits_at(seed, k) % 1000)) << "i32 element " << i;
    ones += u8_host[std::size_t(i)];
  }
  EXPECT_NEAR(double(ones) / n, 0.3, 0.05);
}

}  // namespace
}  // namespace aisp::harness
