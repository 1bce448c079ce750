// ch14:fused_elementwise and its kernels (src/kernels/elementwise/layernorm_gelu.cu) against a CPU
// float64 reference, at small awkward shapes: both row paths (16-byte vectors when cols % 8 == 0,
// scalar otherwise), blocks of 32..1024 threads, 1..16 chunks per thread, element-wise tails and
// unaligned pointers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "core/gpu.h"
#include "kernels/elementwise/layernorm_gelu.cuh"

namespace aisp::test {
namespace {

using harness::Tolerance;
using harness::tolerance_for;

constexpr float kEps = 1e-5f;  // what the example uses

// ---- CPU references (float64) -------------------------------------------------------------------

struct Inputs {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::uint16_t> x, weight, bias;  // bf16 bits
  std::vector<std::uint8_t> mask;
};

Inputs make_inputs(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  Inputs in;
  in.rows = rows;
  in.cols = cols;
  in.x = normal_bf16_bits(seed, rows * cols);
  in.weight = normal_bf16_bits(seed + 1, cols);
  in.bias = normal_bf16_bits(seed + 2, cols);
  in.mask = bernoulli_u8(seed + 3, rows, 0.9);
  return in;
}

double gelu(double y) { return 0.5 * y * (1.0 + std::erf(y / std::sqrt(2.0))); }

// y[r, c] = (x - mean) * rstd * w + b per row; what layernorm_bf16 computes before rounding.
std::vector<double> layernorm_cpu(const std::vector<double>& x, const std::vector<double>& w,
                                  const std::vector<double>& b, std::int64_t rows, std::int64_t cols) {
  std::vector<double> y(x.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* xr = &x[std::size_t(r * cols)];
    double sum = 0;
    for (std::int64_t c = 0; c < cols; ++c) sum += xr[c];
    const double mean = sum / double(cols);
    double squares = 0;
    for (std::int64_t c = 0; c < cols; ++c) squares += (xr[c] - mean) * (xr[c] - mean);
    const double rstd = 1.0 / std::sqrt(squares / double(cols) + double(kEps));
    for (std::int64_t c = 0; c < cols; ++c)
      y[std::size_t(r * cols + c)] = (xr[c] - mean) * rstd * w[std::size_t(c)] + b[std::size_t(c)];
  }
  return y;
}

// The whole function: out = x + mask * gelu(layernorm(x)).
std::vector<double> reference_cpu(const Inputs& in) {
  const std::vector<double> x = bf16_bits_to_double(in.x);
  const std::vector<double> y = layernorm_cpu(x, bf16_bits_to_double(in.weight),
                                              bf16_bits_to_double(in.bias), in.rows, in.cols);
  std::vector<double> out(x.size());
  for (std::int64_t r = 0; r < in.rows; ++r)
    for (std::int64_t c = 0; c < in.cols; ++c) {
      const std::size_t i = std::size_t(r * in.cols + c);
      out[i] = x[i] + double(in.mask[std::size_t(r)]) * gelu(y[i]);
    }
  return out;
}

// One bf16 rounding of an fp32 result: at most half an ulp, 2^-8 relative (plus fp32 noise).
const Tolerance kOneBf16Rounding{4e-3, 1e-4, 4e-3};

// ---- Device inputs ------------------------------------------------------------------------------

struct DeviceInputs {
  explicit DeviceInputs(const Inputs& in)
      : x(DType::bf16, {in.rows, in.cols}),
        weight(DType::bf16, {in.cols}),
        bias(DType::bf16, {in.cols}),
        mask(DType::u8, {in.rows}) {
    x.upload(in.x);
    weight.upload(in.weight);
    bias.upload(in.bias);
    mask.upload(in.mask);
  }
  std::vector<harness::Tensor> tensors() const {
    return {x.tensor(), weight.tensor(), bias.tensor(), mask.tensor()};
  }
  kernels::LayerNormGeluArgs args(std::int64_t rows, std::int64_t cols) const {
    kernels::LayerNormGeluArgs a;
    a.x = x.data<const kernels::bf16>();
    a.weight = weight.data<const kernels::bf16>();
    a.bias = bias.data<const kernels::bf16>();
    a.row_mask = mask.data<const std::uint8_t>();
    a.rows = rows;
    a.cols = cols;
    a.eps = kEps;
    return a;
  }
  DeviceTensor x, weight, bias, mask;
};

struct Shape {
  std::int64_t rows, cols;
};
std::string shape_name(const ::testing::TestParamInfo<Shape>& info) {
  return std::to_string(info.param.rows) + "x" + std::to_string(info.param.cols);
}

// rows x cols, and what each exercises (see kernels::plan_row):
const Shape kShapes[] = {
    {37, 1000},   // vectorized, 125 chunks: 2 per thread, 64 threads, the last one's second idle
    {37, 4096},   // vectorized, the default's row: 8 chunks per thread, 64 threads
    {7, 1536},    // vectorized, 192 chunks: 4 per thread, 64 threads with 16 idle
    {17, 769},    // scalar (769 % 8 != 0): 16 per thread, 64 threads with 15 idle
    {9, 300},     // scalar (300 % 8 = 4): 8 per thread, 64 threads with 26 idle
    {3, 8},       // one vector
    {5, 1},       // one element: variance 0, y = bias
    {4, 7},       // scalar, less than one vector
    {2, 20000},   // vectorized, 8 chunks per thread, 320 threads (> 256)
    {3, 9999},    // scalar, 16 per thread, 640 threads
    {1, 65536},   // vectorized, the largest row: 8 chunks per thread, 1024 threads
};

class FusedElementwise : public ::testing::TestWithParam<Shape> {};

// Every registered variant, through the Variant interface, as the harness runs it.
TEST_P(FusedElementwise, EveryVariantMatchesCpuReference) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const harness::Example* example = find_example("ch14:fused_elementwise");
  ASSERT_NE(example, nullptr);
  const Shape s = GetParam();
  const Inputs in = make_inputs(s.rows, s.cols, 1234);
  const DeviceInputs dev(in);
  const std::vector<double> ref = reference_cpu(in);
  TestStream stream;
  for (const harness::VariantInfo& info : example->variants) {
    DeviceTensor out(DType::bf16, {s.rows, s.cols});
    run_variant(info, dev.tensors(), out, stream);
    EXPECT_TRUE(all_close(bf16_bits_to_double(out.download<std::uint16_t>()), ref,
                          tolerance_for(DType::bf16), info.name));
  }
}

// The example's reference (fp64 on the GPU, written as f32) is what the harness trusts.
TEST_P(FusedElementwise, GpuReferenceMatchesCpuReference) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const harness::Example* example = find_example("ch14:fused_elementwise");
  ASSERT_NE(example, nullptr);
  const Shape s = GetParam();
  const Inputs in = make_inputs(s.rows, s.cols, 77);
  const DeviceInputs dev(in);
  TestStream stream;
  DeviceTensor ref(DType::f32, {s.rows, s.cols});
  ref.poison();
  example->reference(dev.tensors(), ref.tensor(), stream.get());
  stream.sync();
  EXPECT_TRUE(all_close(to_double(ref.download<float>()), reference_cpu(in),
                        tolerance_for(DType::f32), "gpu reference"));
}

// The four eager kernels one at a time, each fed the previous kernel's actual bf16 output, so each
// is held to one bf16 rounding of its own result.
TEST_P(FusedElementwise, EagerKernelsEachRoundOnce) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Shape s = GetParam();
  const Inputs in = make_inputs(s.rows, s.cols, 99);
  const DeviceInputs dev(in);
  TestStream stream;
  const std::int64_t n = s.rows * s.cols;
  DeviceTensor y1(DType::bf16, {n}), y2(DType::bf16, {n}), y3(DType::bf16, {n}), out(DType::bf16, {n});
  for (DeviceTensor* t : {&y1, &y2, &y3, &out}) t->poison();
  const kernels::LayerNormGeluArgs args = dev.args(s.rows, s.cols);

  kernels::layernorm_bf16(args, y1.data<kernels::bf16>(), stream.get());
  kernels::gelu_erf_bf16(y1.data<kernels::bf16>(), y2.data<kernels::bf16>(), n, stream.get());
  kernels::row_scale_bf16(y2.data<kernels::bf16>(), args.row_mask, y3.data<kernels::bf16>(), s.rows,
                          s.cols, stream.get());
  kernels::add_bf16(args.x, y3.data<kernels::bf16>(), out.data<kernels::bf16>(), n, stream.get());
  stream.sync();

  const std::vector<double> x = bf16_bits_to_double(in.x);
  const std::vector<double> y1_out = bf16_bits_to_double(y1.download<std::uint16_t>());
  const std::vector<double> y2_out = bf16_bits_to_double(y2.download<std::uint16_t>());
  const std::vector<double> y3_out = bf16_bits_to_double(y3.download<std::uint16_t>());
  const std::vector<double> out_out = bf16_bits_to_double(out.download<std::uint16_t>());

  const std::vector<double> y1_ref = layernorm_cpu(x, bf16_bits_to_double(in.weight),
                                                   bf16_bits_to_double(in.bias), s.rows, s.cols);
  const std::size_t count = static_cast<std::size_t>(n);
  std::vector<double> y2_ref(count), y3_ref(count), out_ref(count);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::size_t k = std::size_t(i);
    y2_ref[k] = gelu(y1_out[k]);
    y3_ref[k] = y2_out[k] * double(in.mask[std::size_t(i / s.cols)]);
    out_ref[k] = x[k] + y3_out[k];
  }
  EXPECT_TRUE(all_close(y1_out, y1_ref, kOneBf16Rounding, "layernorm_bf16"));
  EXPECT_TRUE(all_close(y2_out, y2_ref, kOneBf16Rounding, "gelu_erf_bf16"));
  EXPECT_TRUE(all_close(y3_out, y3_ref, Tolerance{0, 0, 0}, "row_scale_bf16 (mask 0/1: exact)"));
  EXPECT_TRUE(all_close(out_out, out_ref, kOneBf16Rounding, "add_bf16"));
}

// The fused kernel rounds once, at the end: it must be much closer to the reference than the
// bf16 tolerance (which allows for the eager pipeline's four roundings).
TEST_P(FusedElementwise, FusedKernelRoundsOnce) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Shape s = GetParam();
  const Inputs in = make_inputs(s.rows, s.cols, 5);
  const DeviceInputs dev(in);
  TestStream stream;
  DeviceTensor out(DType::bf16, {s.rows, s.cols});
  out.poison();
  kernels::layernorm_gelu_mask_residual_bf16(dev.args(s.rows, s.cols), out.data<kernels::bf16>(),
                                             stream.get());
  stream.sync();
  EXPECT_TRUE(all_close(bf16_bits_to_double(out.download<std::uint16_t>()), reference_cpu(in),
                        kOneBf16Rounding, "layernorm_gelu_mask_residual_bf16"));
}

INSTANTIATE_TEST_SUITE_P(Shapes, FusedElementwise, ::testing::ValuesIn(kShapes), shape_name);

// Element-wise kernels: a tail of < 8 elements after the vectors, and pointers that are not
// 16-byte aligned (everything through the scalar loop).
TEST(FusedElementwiseKernels, ElementwiseTailsAndUnalignedPointers) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  TestStream stream;
  for (const std::int64_t offset : {0, 1, 3}) {
    for (const std::int64_t n : {1, 7, 8, 1003, 4096 + 5, 70001}) {
      const std::string what = "n " + std::to_string(n) + " offset " + std::to_string(offset);
      const std::vector<std::uint16_t> a_bits = normal_bf16_bits(11, n);
      const std::vector<std::uint16_t> b_bits = normal_bf16_bits(12, n);
      DeviceTensor a(DType::bf16, {n}, offset), b(DType::bf16, {n}, offset);
      DeviceTensor gelu_out(DType::bf16, {n}, offset), sum_out(DType::bf16, {n}, offset);
      a.upload(a_bits);
      b.upload(b_bits);
      gelu_out.poison();
      sum_out.poison();
      kernels::gelu_erf_bf16(a.data<kernels::bf16>(), gelu_out.data<kernels::bf16>(), n, stream.get());
      kernels::add_bf16(a.data<kernels::bf16>(), b.data<kernels::bf16>(), sum_out.data<kernels::bf16>(),
                        n, stream.get());
      stream.sync();
      const std::vector<double> av = bf16_bits_to_double(a_bits), bv = bf16_bits_to_double(b_bits);
      std::vector<double> gelu_ref(av.size()), sum_ref(av.size());
      for (std::size_t i = 0; i < av.size(); ++i) {
        gelu_ref[i] = gelu(av[i]);
        sum_ref[i] = av[i] + bv[i];
      }
      EXPECT_TRUE(all_close(bf16_bits_to_double(gelu_out.download<std::uint16_t>()), gelu_ref,
                            kOneBf16Rounding, "gelu " + what));
      EXPECT_TRUE(all_close(bf16_bits_to_double(sum_out.download<std::uint16_t>()), sum_ref,
                            kOneBf16Rounding, "add " + what));
    }
  }
}

// The row kernels with unaligned pointers (cols % 8 == 0, but x is not 16-byte aligned): the
// scalar path must take over.
TEST(FusedElementwiseKernels, RowKernelsWithUnalignedRows) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const std::int64_t rows = 6, cols = 1024;
  const Inputs in = make_inputs(rows, cols, 21);
  DeviceTensor x(DType::bf16, {rows, cols}, /*offset=*/1), weight(DType::bf16, {cols}),
      bias(DType::bf16, {cols}), mask(DType::u8, {rows}), out(DType::bf16, {rows, cols}, 1);
  x.upload(in.x);
  weight.upload(in.weight);
  bias.upload(in.bias);
  mask.upload(in.mask);
  out.poison();
  kernels::LayerNormGeluArgs a;
  a.x = x.data<const kernels::bf16>();
  a.weight = weight.data<const kernels::bf16>();
  a.bias = bias.data<const kernels::bf16>();
  a.row_mask = mask.data<const std::uint8_t>();
  a.rows = rows;
  a.cols = cols;
  a.eps = kEps;
  TestStream stream;
  kernels::layernorm_gelu_mask_residual_bf16(a, out.data<kernels::bf16>(), stream.get());
  stream.sync();
  EXPECT_TRUE(all_close(bf16_bits_to_double(out.download<std::uint16_t>()), reference_cpu(in),
                        kOneBf16Rounding, "fused, unaligned"));
}

// The launch plan is a pure host function: no GPU needed.
TEST(FusedElementwiseKernels, RowPlan) {
  const kernels::RowPlan p4096 = kernels::plan_row(4096, true);
  EXPECT_EQ(p4096.vec, 8);
  EXPECT_EQ(p4096.chunks_per_thread, 8);
  EXPECT_EQ(p4096.threads, 64);
  const kernels::RowPlan p1536 = kernels::plan_row(1536, true);
  EXPECT_EQ(p1536.chunks_per_thread, 4);
  EXPECT_EQ(p1536.threads, 64);
  const kernels::RowPlan p769 = kernels::plan_row(769, false);
  EXPECT_EQ(p769.vec, 1);
  EXPECT_EQ(p769.chunks_per_thread, 16);
  EXPECT_EQ(p769.threads, 64);
  const kernels::RowPlan p65536 = kernels::plan_row(65536, true);
  EXPECT_EQ(p65536.chunks_per_thread, 8);
  EXPECT_EQ(p65536.threads, 1024);
  for (std::int64_t cols = 1; cols <= kernels::max_layernorm_cols(false); cols += 97) {
    const kernels::RowPlan p = kernels::plan_row(cols, false);
    EXPECT_GE(std::int64_t(p.threads) * p.chunks_per_thread, cols) << cols;
    EXPECT_EQ(p.threads % 32, 0) << cols;
    EXPECT_LE(p.threads, 1024) << cols;
  }
  EXPECT_THROW(kernels::plan_row(65536 + 8, true), aisp::Error);
  EXPECT_THROW(kernels::plan_row(1001, true), aisp::Error);
}

}  // namespace
}  // namespace aisp::test
