// Helpers for the GPU tests of the ch14 examples and their kernels: device tensors owned by a test,
// host-generated inputs (the harness's fill conventions, so a CPU reference sees the device's exact
// values), the per-element tolerance check, and running one registered variant end to end.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda/check.h"
#include "core/dtype.h"
#include "core/random.h"
#include "harness/example.h"
#include "harness/registry.h"
#include "harness/tensor.h"

namespace aisp::test {

// Device memory owned by a test, seen by the code under test as a harness::Tensor. An offset (in
// elements) shifts the view inside a larger allocation, to test unaligned pointers.
class DeviceTensor {
 public:
  DeviceTensor(DType dtype, std::vector<std::int64_t> shape, std::int64_t offset_elements = 0)
      : offset_bytes_(std::size_t(offset_elements) * size_of(dtype)) {
    tensor_.dtype = dtype;
    tensor_.shape = std::move(shape);
    tensor_.where = harness::Backend::cuda;
    const std::size_t bytes = tensor_.bytes() + offset_bytes_;
    if (bytes > 0) AISP_CUDA_CHECK(cudaMalloc(&base_, bytes));
    tensor_.data = static_cast<char*>(base_) + offset_bytes_;
  }
  ~DeviceTensor() {
    if (base_) cudaFree(base_);
  }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;

  const harness::Tensor& tensor() const { return tensor_; }
  template <class T>
  T* data() const {
    return tensor_.as<T>();
  }

  template <class T>
  void upload(const std::vector<T>& host) {
    ASSERT_EQ(host.size() * sizeof(T), tensor_.bytes()) << "upload: size mismatch";
    if (!host.empty())
      AISP_CUDA_CHECK(cudaMemcpy(tensor_.data, host.data(), tensor_.bytes(), cudaMemcpyHostToDevice));
  }
  template <class T>
  std::vector<T> download() const {
    std::vector<T> host(tensor_.bytes() / sizeof(T));
    if (!host.empty())
      AISP_CUDA_CHECK(cudaMemcpy(host.data(), tensor_.data, tensor_.bytes(), cudaMemcpyDeviceToHost));
    return host;
  }
  // 0xFF bytes: NaN in f32, f64, bf16 and f16, so an element the code under test leaves unwritten
  // fails the comparison.
  void poison() {
    if (tensor_.bytes() > 0) AISP_CUDA_CHECK(cudaMemset(tensor_.data, 0xFF, tensor_.bytes()));
  }

 private:
  harness::Tensor tensor_;
  void* base_ = nullptr;
  std::size_t offset_bytes_ = 0;
};

class TestStream {
 public:
  TestStream() { AISP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~TestStream() { cudaStreamDestroy(stream_); }
  TestStream(const TestStream&) = delete;
  TestStream& operator=(const TestStream&) = delete;
  cudaStream_t get() const { return stream_; }
  void sync() const { AISP_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

// ---- Inputs, as the harness fills them (src/harness/cuda/cuda_backend.cu) ----------------------

inline float normal_value(std::uint64_t seed, std::int64_t i, double scale = 1.0) {
  return float(double(rng::normal_at(seed, std::uint64_t(i))) * scale);
}
inline std::vector<std::uint16_t> normal_bf16_bits(std::uint64_t seed, std::int64_t n,
                                                   double scale = 1.0) {
  std::vector<std::uint16_t> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[std::size_t(i)] = float_to_bf16_bits(normal_value(seed, i, scale));
  return v;
}
inline std::vector<float> normal_f32(std::uint64_t seed, std::int64_t n, double scale = 1.0) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[std::size_t(i)] = normal_value(seed, i, scale);
  return v;
}
inline std::vector<std::uint8_t> bernoulli_u8(std::uint64_t seed, std::int64_t n, double p) {
  std::vector<std::uint8_t> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    v[std::size_t(i)] = double(rng::uniform_at(seed, std::uint64_t(i))) < p ? 1 : 0;
  return v;
}
inline std::vector<std::int32_t> uniform_int_i32(std::uint64_t seed, std::int64_t n,
                                                 std::int64_t high) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    v[std::size_t(i)] = std::int32_t(rng::bits_at(seed, std::uint64_t(i)) % std::uint64_t(high));
  return v;
}

inline std::vector<double> bf16_bits_to_double(const std::vector<std::uint16_t>& bits) {
  std::vector<double> v(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) v[i] = bf16_bits_to_float(bits[i]);
  return v;
}
template <class T>
std::vector<double> to_double(const std::vector<T>& values) {
  return std::vector<double>(values.begin(), values.end());
}

// ---- Comparison ---------------------------------------------------------------------------------

// Per element |out - ref| <= atol + rtol |ref| (a non-finite output never passes), and the relative
// L2 error ||out - ref|| / ||ref|| <= max_rel_l2. On failure: counts and the first few offenders.
inline ::testing::AssertionResult all_close(const std::vector<double>& out,
                                            const std::vector<double>& ref,
                                            const harness::Tolerance& tol, const std::string& what) {
  if (out.size() != ref.size())
    return ::testing::AssertionFailure()
           << what << ": " << out.size() << " outputs vs " << ref.size() << " reference values";
  std::int64_t bad = 0;
  double sum_sq_diff = 0, sum_sq_ref = 0, max_abs = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double d = std::fabs(out[i] - ref[i]);
    const bool ok = std::isfinite(out[i]) && d <= tol.atol + tol.rtol * std::fabs(ref[i]);
    if (std::isfinite(out[i])) {
      sum_sq_diff += d * d;
      max_abs = std::max(max_abs, d);
    }
    sum_sq_ref += ref[i] * ref[i];
    if (!ok && bad++ < 8) first << "\n  [" << i << "] out " << out[i] << " ref " << ref[i];
  }
  const double rel_l2 = sum_sq_ref > 0 ? std::sqrt(sum_sq_diff / sum_sq_ref) : std::sqrt(sum_sq_diff);
  if (bad == 0 && rel_l2 <= tol.max_rel_l2) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << bad << " of " << out.size() << " elements out of tolerance (atol "
         << tol.atol << ", rtol " << tol.rtol << "), rel L2 " << rel_l2 << " (max "
         << tol.max_rel_l2 << "), max |diff| " << max_abs << first.str();
}

// ---- Examples -----------------------------------------------------------------------------------

inline const harness::Example* find_example(const std::string& target) {
  return harness::Registry::global().find(target);
}

// One call of a registered variant, as the harness makes it: make, setup, poison the output, run,
// synchronize (raising any device error), teardown.
inline void run_variant(const harness::VariantInfo& info, const std::vector<harness::Tensor>& inputs,
                        DeviceTensor& output, const TestStream& stream) {
  std::unique_ptr<harness::Variant> variant = info.make();
  variant->setup(inputs, output.tensor(), stream.get());
  stream.sync();
  output.poison();
  variant->run(stream.get());
  stream.sync();
  AISP_CUDA_CHECK(cudaGetLastError());
  variant->teardown();
}

}  // namespace aisp::test
