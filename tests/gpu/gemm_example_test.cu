// The GEMM examples (ch14/gemm.cu) and their wrappers against a float64 CPU reference at small
// awkward shapes: the eager bias + GELU kernel (vector and scalar paths, in place, unaligned), the
// cuBLASLt wrapper (none, bias, GELU_BIAS), the CUTLASS sm90 kernels (cooperative and ping-pong;
// none, bias + GELU), every
// registered variant of ch14:gemm, gemm_mlp, gemm_only and gemm_gelu_tanh through the Variant
// interface, the examples' on-GPU reference, and the bf16 tolerance at the examples' K = 8192.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numbers>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "core/gpu.h"
#include "kernels/gemm/bias_gelu.cuh"
#include "kernels/gemm/cublaslt_gemm.h"
#include "kernels/gemm/cutlass_gemm_sm90.h"
#include "kernels/gemm/gemm_bf16.h"

namespace aisp::test {
namespace {

namespace g = kernels::gemm;
using harness::Tolerance;
using harness::tolerance_for;

// One bf16 rounding of an fp32 result (half an ulp, 2^-9 relative), plus fp32 accumulation noise.
const Tolerance kOneBf16Rounding{4e-3, 1e-4, 4e-3};
// An fp32 result with fp32 accumulation over K <= 8192 terms of size ~1/sqrt(K).
const Tolerance kFp32Accumulation{1e-5, 1e-4, 1e-4};

// ---- Inputs and the float64 reference -----------------------------------------------------------

enum class Post { none, bias, gelu_erf, gelu_tanh };  // what follows the GEMM

double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

struct Problem {
  int m = 0, n = 0, k = 0;
  std::vector<std::uint16_t> a, b, bias;  // bf16 bits, the examples' scales
};

Problem make_problem(int m, int n, int k, std::uint64_t seed, double bias_scale = 1.0) {
  Problem p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.a = normal_bf16_bits(seed, std::int64_t(m) * k);
  p.b = normal_bf16_bits(seed + 1, std::int64_t(n) * k, 1.0 / std::sqrt(double(k)));
  p.bias = normal_bf16_bits(seed + 2, n, bias_scale);
  return p;
}

std::vector<double> reference_cpu(const Problem& p, Post post) {
  const std::vector<double> a = bf16_bits_to_double(p.a), b = bf16_bits_to_double(p.b),
                            bias = bf16_bits_to_double(p.bias);
  std::vector<double> d(std::size_t(p.m) * std::size_t(p.n));
  for (int m = 0; m < p.m; ++m)
    for (int n = 0; n < p.n; ++n) {
      double acc = 0;
      const double* ar = &a[std::size_t(m) * std::size_t(p.k)];
      const double* br = &b[std::size_t(n) * std::size_t(p.k)];
      for (int k = 0; k < p.k; ++k) acc += ar[k] * br[k];
      if (post != Post::none) acc += bias[std::size_t(n)];
      if (post == Post::gelu_erf) acc = gelu_erf(acc);
      if (post == Post::gelu_tanh) acc = gelu_tanh(acc);
      d[std::size_t(m) * std::size_t(p.n) + std::size_t(n)] = acc;
    }
  return d;
}

struct DeviceProblem {
  explicit DeviceProblem(const Problem& p)
      : a(DType::bf16, {p.m, p.k}), b(DType::bf16, {p.n, p.k}), bias(DType::bf16, {p.n}),
        d(DType::bf16, {p.m, p.n}) {
    a.upload(p.a);
    b.upload(p.b);
    bias.upload(p.bias);
    d.poison();
  }
  g::GemmBf16Args args(const Problem& p, g::Epilogue e) const {
    g::GemmBf16Args x;
    x.a = a.data<const g::bf16>();
    x.b = b.data<const g::bf16>();
    x.bias = bias.data<const g::bf16>();
    x.d = d.data<g::bf16>();
    x.m = p.m;
    x.n = p.n;
    x.k = p.k;
    x.epilogue = e;
    return x;
  }
  g::CublasLtGemmArgs lt(const Problem& p, g::LtEpilogue e) const {
    g::CublasLtGemmArgs x;
    x.a = a.data<const void>();
    x.b = b.data<const void>();
    x.bias = bias.data<const void>();
    x.d = d.data<void>();
    x.m = p.m;
    x.n = p.n;
    x.k = p.k;
    x.epilogue = e;
    return x;
  }
  std::vector<double> result() const { return bf16_bits_to_double(d.download<std::uint16_t>()); }
  DeviceTensor a, b, bias, d;
};

struct Dims {
  int m, n, k;
};
std::string dims_name(const ::testing::TestParamInfo<Dims>& info) {
  return std::to_string(info.param.m) + "x" + std::to_string(info.param.n) + "x" +
         std::to_string(info.param.k);
}

// M x N x K, all with K % 8 == 0 and N % 8 == 0 (what the TMA kernels need; cuBLASLt does not):
const Dims kDims[] = {
    {100, 136, 72},   // nothing a multiple of a tile; K < one 64-wide k-block + a partial one
    {1, 8, 8},        // the smallest
    {257, 264, 1000}, // one row past two 128-row tiles, 8 columns past a 256-wide tile, K % 64 = 40
    {128, 256, 64},   // exactly one CUTLASS tile
    {300, 520, 136},  // several tiles in M and N, partial tiles on both
};

// ---- The eager bias + GELU kernel ---------------------------------------------------------------

TEST(GemmExampleKernels, BiasGeluMatchesCpu) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  TestStream stream;
  struct Case {
    std::int64_t rows, cols, offset;
    bool in_place;
  };
  // vectorized (cols % 8 == 0, aligned), scalar (cols % 8 != 0), scalar (unaligned), in place,
  // and more rows than one grid pass covers with few columns.
  const Case cases[] = {{37, 1000, 0, false}, {5, 136, 0, true},  {3, 13, 0, false},
                        {7, 64, 1, false},    {1, 8, 0, false},   {2100000, 8, 0, true}};
  for (const Case& c : cases) {
    for (const g::GeluForm form : {g::GeluForm::erf, g::GeluForm::tanh}) {
      const std::string what = std::string("bias_gelu ") + g::name_of(form) + " " +
                               std::to_string(c.rows) + "x" + std::to_string(c.cols) + " offset " +
                               std::to_string(c.offset) + (c.in_place ? " in place" : "");
      const std::int64_t n = c.rows * c.cols;
      const std::vector<std::uint16_t> y_bits = normal_bf16_bits(31, n, 2.0);
      const std::vector<std::uint16_t> bias_bits = normal_bf16_bits(32, c.cols);
      DeviceTensor y(DType::bf16, {c.rows, c.cols}, c.offset), bias(DType::bf16, {c.cols}),
          d(DType::bf16, {c.rows, c.cols}, c.offset);
      y.upload(y_bits);
      bias.upload(bias_bits);
      d.poison();
      g::bf16* out = c.in_place ? y.data<g::bf16>() : d.data<g::bf16>();
      g::bias_gelu_bf16(y.data<const g::bf16>(), bias.data<const g::bf16>(), out, c.rows, c.cols,
                        stream.get(), form);
      stream.sync();
      const std::vector<double> yv = bf16_bits_to_double(y_bits), bv = bf16_bits_to_double(bias_bits);
      std::vector<double> ref(yv.size());
      for (std::int64_t i = 0; i < n; ++i) {
        const double x = yv[std::size_t(i)] + bv[std::size_t(i % c.cols)];
        ref[std::size_t(i)] = form == g::GeluForm::erf ? gelu_erf(x) : gelu_tanh(x);
      }
      const DeviceTensor& result = c.in_place ? y : d;
      EXPECT_TRUE(all_close(bf16_bits_to_double(result.download<std::uint16_t>()), ref,
                            kOneBf16Rounding, what));
    }
  }
}

TEST(GemmExampleKernels, GeluTanhF32InPlace) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  TestStream stream;
  const std::int64_t n = 10007;
  const std::vector<float> x = normal_f32(41, n, 3.0);
  DeviceTensor t(DType::f32, {n});
  t.upload(x);
  g::gelu_tanh_f32_inplace(t.data<float>(), n, stream.get());
  stream.sync();
  std::vector<double> ref(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) ref[i] = gelu_tanh(double(x[i]));
  EXPECT_TRUE(all_close(to_double(t.download<float>()), ref, Tolerance{1e-6, 1e-6, 1e-6}, "gelu_tanh_f32"));
}

// ---- cuBLASLt and CUTLASS wrappers --------------------------------------------------------------

class GemmExampleWrappers : public ::testing::TestWithParam<Dims> {};

TEST_P(GemmExampleWrappers, CublasLtMatchesCpu) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Dims s = GetParam();
  const Problem p = make_problem(s.m, s.n, s.k, 7);
  TestStream stream;
  const std::pair<g::LtEpilogue, Post> cases[] = {{g::LtEpilogue::none, Post::none},
                                                  {g::LtEpilogue::bias, Post::bias},
                                                  {g::LtEpilogue::bias_gelu_tanh, Post::gelu_tanh}};
  for (const auto& [epilogue, post] : cases) {
    DeviceProblem dev(p);
    g::CublasLtGemm gemm(dev.lt(p, epilogue));
    gemm.run(stream.get());
    stream.sync();
    EXPECT_TRUE(all_close(dev.result(), reference_cpu(p, post), kOneBf16Rounding, gemm.describe()));
  }
}

TEST_P(GemmExampleWrappers, CutlassMatchesCpu) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Dims s = GetParam();
  const Problem p = make_problem(s.m, s.n, s.k, 8);
  TestStream stream;
  for (const auto schedule : {g::CutlassSchedule::cooperative, g::CutlassSchedule::pingpong})
  for (const auto& [epilogue, post] : {std::pair{g::Epilogue::none, Post::none},
                                       std::pair{g::Epilogue::bias_gelu, Post::gelu_erf}}) {
    DeviceProblem dev(p);
    const g::GemmBf16Args args = dev.args(p, epilogue);
    const std::string why = g::cutlass_gemm_sm90_unsupported(args);
    if (!why.empty()) GTEST_SKIP() << why;
    g::CutlassGemmSm90 gemm(args, schedule);
    gemm.run(stream.get());
    stream.sync();
    // Twice on the same object: the bound arguments stay valid across calls.
    dev.d.poison();
    gemm.run(stream.get());
    stream.sync();
    EXPECT_TRUE(all_close(dev.result(), reference_cpu(p, post), kOneBf16Rounding, gemm.describe()));
  }
}

INSTANTIATE_TEST_SUITE_P(GemmExample, GemmExampleWrappers, ::testing::ValuesIn(kDims), dims_name);

// cuBLASLt's GELU epilogue is the tanh approximation (the header does not say which). With an fp32
// output and K = 64 the GEMM's own error (~1e-6) is far below the gap between the two forms (up to
// 4.7e-4 near |x| = 2.7), so the output tells them apart.
TEST(GemmExampleWrappersFacts, CublasLtGeluIsTheTanhForm) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Problem p = make_problem(256, 256, 64, 77, /*bias_scale=*/2.0);
  DeviceTensor a(DType::bf16, {p.m, p.k}), b(DType::bf16, {p.n, p.k}), bias(DType::f32, {p.n}),
      d(DType::f32, {p.m, p.n});
  a.upload(p.a);
  b.upload(p.b);
  std::vector<float> bias_f32(p.bias.size());
  for (std::size_t i = 0; i < p.bias.size(); ++i) bias_f32[i] = bf16_bits_to_float(p.bias[i]);
  bias.upload(bias_f32);
  d.poison();
  g::CublasLtGemmArgs args;
  args.a = a.data<const void>();
  args.b = b.data<const void>();
  args.bias = bias.data<const void>();
  args.d = d.data<void>();
  args.m = p.m;
  args.n = p.n;
  args.k = p.k;
  args.d_dtype = DType::f32;
  args.epilogue = g::LtEpilogue::bias_gelu_tanh;
  TestStream stream;
  g::CublasLtGemm gemm(args);
  gemm.run(stream.get());
  stream.sync();
  const std::vector<double> out = to_double(d.download<float>());
  const std::vector<double> ref_tanh = reference_cpu(p, Post::gelu_tanh);
  const std::vector<double> ref_erf = reference_cpu(p, Post::gelu_erf);
  double sq_tanh = 0, sq_erf = 0, max_tanh = 0, max_erf = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    sq_tanh += (out[i] - ref_tanh[i]) * (out[i] - ref_tanh[i]);
    sq_erf += (out[i] - ref_erf[i]) * (out[i] - ref_erf[i]);
    max_tanh = std::max(max_tanh, std::fabs(out[i] - ref_tanh[i]));
    max_erf = std::max(max_erf, std::fabs(out[i] - ref_erf[i]));
  }
  const double rms_tanh = std::sqrt(sq_tanh / double(out.size()));
  const double rms_erf = std::sqrt(sq_erf / double(out.size()));
  std::printf("cuBLASLt GELU_BIAS (fp32 out) vs tanh GELU: rms %.3g max %.3g; vs erf GELU: rms %.3g max %.3g\n",
              rms_tanh, max_tanh, rms_erf, max_erf);
  EXPECT_LT(rms_tanh, 0.25 * rms_erf) << "cuBLASLt's GELU is not (close to) the tanh form";
  EXPECT_LT(max_tanh, 1e-4);
}

TEST(GemmExampleWrappersFacts, CutlassRefusesWhatItCannotRun) {
  g::GemmBf16Args a;
  const std::uint64_t fake = 1u << 20;  // 16-byte aligned, never dereferenced
  a.a = reinterpret_cast<const g::bf16*>(fake);
  a.b = reinterpret_cast<const g::bf16*>(fake);
  a.bias = reinterpret_cast<const g::bf16*>(fake);
  a.d = reinterpret_cast<g::bf16*>(fake);
  a.m = 64;
  a.n = 100;  // not a multiple of 8
  a.k = 64;
  a.epilogue = g::Epilogue::bias_gelu;
  EXPECT_NE(g::cutlass_gemm_sm90_unsupported(a), "");
  a.n = 128;
  a.k = 60;  // not a multiple of 8
  EXPECT_NE(g::cutlass_gemm_sm90_unsupported(a), "");
  a.k = 64;
  a.epilogue = g::Epilogue::bias;  // not instantiated
  EXPECT_NE(g::cutlass_gemm_sm90_unsupported(a), "");
  a.epilogue = g::Epilogue::bias_gelu;
  a.d = reinterpret_cast<g::bf16*>(fake + 2);  // misaligned
  EXPECT_NE(g::cutlass_gemm_sm90_unsupported(a), "");
  EXPECT_THROW(g::CutlassGemmSm90{a}, aisp::Error);
}

// ---- The examples' variants and reference ------------------------------------------------------

struct ExampleCase {
  const char* target;
  Post post;
};
const ExampleCase kExamples[] = {{"ch14:gemm", Post::gelu_erf},
                                 {"ch14:gemm_mlp", Post::gelu_erf},
                                 {"ch14:gemm_only", Post::none},
                                 {"ch14:gemm_gelu_tanh", Post::gelu_tanh}};

std::vector<harness::Tensor> example_inputs(const DeviceProblem& dev, Post post) {
  if (post == Post::none) return {dev.a.tensor(), dev.b.tensor()};
  return {dev.a.tensor(), dev.b.tensor(), dev.bias.tensor()};
}

class GemmExampleVariants : public ::testing::TestWithParam<Dims> {};

// Every registered variant through the Variant interface, as the harness runs it. The fused
// variants round once; the baseline (D in bf16, then the epilogue) is held to the examples'
// tolerance. A variant whose kernel cannot run on this GPU must say why in setup: it is skipped
// here only when its own `unsupported` function gives that reason.
TEST_P(GemmExampleVariants, EveryVariantMatchesCpuReference) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Dims s = GetParam();
  TestStream stream;
  for (const ExampleCase& ex : kExamples) {
    const harness::Example* example = find_example(ex.target);
    ASSERT_NE(example, nullptr) << ex.target;
    const Problem p = make_problem(s.m, s.n, s.k, 100 + std::uint64_t(s.k));
    const std::vector<double> ref = reference_cpu(p, ex.post);
    for (const harness::VariantInfo& info : example->variants) {
      const std::string what = std::string(ex.target) + " " + info.name;
      DeviceProblem dev(p);
      const g::Epilogue epilogue = ex.post == Post::none ? g::Epilogue::none : g::Epilogue::bias_gelu;
      std::string why;
      if (info.name.starts_with("optimized:cutlass"))
        why = g::cutlass_gemm_sm90_unsupported(dev.args(p, epilogue));
      if (info.name == "optimized:aisp") why = g::gemm_bf16_sm90_unsupported(dev.args(p, epilogue));
      if (!why.empty()) {
        std::printf("[ note ] %s not run here: %s\n", what.c_str(), why.c_str());
        EXPECT_THROW(run_variant(info, example_inputs(dev, ex.post), dev.d, stream), aisp::Error) << what;
        continue;
      }
      run_variant(info, example_inputs(dev, ex.post), dev.d, stream);
      const std::vector<double> out = dev.result();
      EXPECT_TRUE(all_close(out, ref, example->workload.tolerance, what));
      if (info.name != "baseline") EXPECT_TRUE(all_close(out, ref, kOneBf16Rounding, what + " (one rounding)"));
    }
    // The example's own reference (gemm_bf16_reference, fp32) against float64.
    DeviceProblem dev(p);
    DeviceTensor reference(DType::f32, {p.m, p.n});
    reference.poison();
    example->reference(example_inputs(dev, ex.post), reference.tensor(), stream.get());
    stream.sync();
    EXPECT_TRUE(all_close(to_double(reference.download<float>()), ref, kFp32Accumulation,
                          std::string(ex.target) + " reference"));
  }
}

INSTANTIATE_TEST_SUITE_P(GemmExample, GemmExampleVariants,
                         ::testing::Values(Dims{100, 136, 72}, Dims{257, 264, 1000}, Dims{8, 16, 8}),
                         dims_name);

// The examples' K: 8192 terms per output. The reference (fp32 fmas in k order) stays within
// kFp32Accumulation of float64, and the eager baseline's two roundings and the fused kernels' one
// stay within tolerance_for(bf16) -- printed as the fraction of the per-element bound used.
TEST(GemmExample, ToleranceHoldsAtK8192) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Problem p = make_problem(64, 256, 8192, 5);
  const std::vector<double> ref = reference_cpu(p, Post::gelu_erf);
  const Tolerance bf16 = tolerance_for(DType::bf16);
  TestStream stream;
  auto worst_fraction = [&](const std::vector<double>& out) {
    double worst = 0;
    for (std::size_t i = 0; i < out.size(); ++i)
      worst = std::max(worst, std::fabs(out[i] - ref[i]) / (bf16.atol + bf16.rtol * std::fabs(ref[i])));
    return worst;
  };

  DeviceProblem dev(p);
  DeviceTensor reference(DType::f32, {p.m, p.n});
  g::gemm_bf16_reference(dev.args(p, g::Epilogue::bias_gelu), reference.data<float>(), stream.get());
  stream.sync();
  const std::vector<double> gpu_ref = to_double(reference.download<float>());
  EXPECT_TRUE(all_close(gpu_ref, ref, kFp32Accumulation, "gemm_bf16_reference at K 8192"));
  std::printf("K 8192: gemm_bf16_reference uses %.2g of the bf16 bound\n", worst_fraction(gpu_ref));

  const harness::Example* example = find_example("ch14:gemm");
  ASSERT_NE(example, nullptr);
  for (const harness::VariantInfo& info : example->variants) {
    DeviceProblem d2(p);
    const g::GemmBf16Args args = d2.args(p, g::Epilogue::bias_gelu);
    if ((info.name.starts_with("optimized:cutlass") && !g::cutlass_gemm_sm90_unsupported(args).empty()) ||
        (info.name == "optimized:aisp" && !g::gemm_bf16_sm90_unsupported(args).empty()))
      continue;
    run_variant(info, example_inputs(d2, Post::gelu_erf), d2.d, stream);
    const std::vector<double> out = d2.result();
    EXPECT_TRUE(all_close(out, ref, bf16, info.name + " at K 8192"));
    std::printf("K 8192: %s uses %.2g of the bf16 bound\n", info.name.c_str(), worst_fraction(out));
  }
}

}  // namespace
}  // namespace aisp::test
