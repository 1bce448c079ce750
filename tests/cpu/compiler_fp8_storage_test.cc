// fp8 (e4m3) storage in the compiler: the host conversion against a brute-force nearest-code search
// (round to nearest even, saturating to +-448), every code read back exactly; graphs that store in
// e4m3 on the CPU backend bit for bit against the float64 interpreter (explicit casts, saturation,
// an e4m3 input), e4m3 intermediates in fused and eager plans within e4m3's tolerance; the matmul and
// attention refusals; and, in CUDA builds, the generated CUDA kernels with e4m3 loads and stores
// compiled by NVRTC for sm_90a (no GPU needed).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "compiler/compile.h"
#include "compiler/interpret/interpreter.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/ir/dtype_util.h"
#include "compiler/runtime/eager.h"
#include "compiler/validate.h"
#include "core/dtype.h"
#include "core/error.h"
#if AISP_WITH_CUDA
#include "compiler/compile_cuda.h"
#endif

namespace aisp::compiler {
namespace {
namespace fs = std::filesystem;

// The nearest finite e4m3 code to x by searching all of them; a tie goes to the even code (mantissa
// LSB 0); beyond the largest finite value, +-448 (saturation). NaN is left to the caller.
std::uint8_t nearest_code(double x) {
  if (x > 448) return 0x7e;
  if (x < -448) return 0xfe;
  std::uint8_t best = 0;
  double best_err = std::numeric_limits<double>::infinity();
  for (int c = 0; c < 256; ++c) {
    const float v = e4m3_bits_to_float(std::uint8_t(c));
    if (std::isnan(v)) continue;
    const double err = std::abs(double(v) - x);
    const bool tie = err == best_err;
    if (err < best_err || (tie && (c & 1) == 0 && (best & 1) != 0)) {
      best = std::uint8_t(c);
      best_err = err;
    }
  }
  // +-0: keep the sign of x, as the conversion does.
  if ((best & 0x7f) == 0) best = std::signbit(x) ? 0x80 : 0x00;
  return best;
}

TEST(Fp8Storage, EveryCodeReadsBackToItself) {
  for (int c = 0; c < 256; ++c) {
    const float v = e4m3_bits_to_float(std::uint8_t(c));
    EXPECT_EQ(float_to_e4m3_bits(v), std::uint8_t(c)) << "code " << c << " = " << v;
  }
  EXPECT_EQ(e4m3_bits_to_float(0x38), 1.0f);
  EXPECT_EQ(e4m3_bits_to_float(0x7e), 448.0f);
  EXPECT_EQ(e4m3_bits_to_float(0x01), std::ldexp(1.0f, -9));  // the smallest subnormal
  EXPECT_EQ(e4m3_bits_to_float(0x08), std::ldexp(1.0f, -6));  // the smallest normal
  EXPECT_TRUE(std::isnan(e4m3_bits_to_float(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3_bits_to_float(0xff)));
}

TEST(Fp8Storage, RoundsToTheNearestCodeTiesToEvenAndSaturates) {
  // Hand-picked: ties between two codes, the subnormal range, saturation, infinities and NaN.
  EXPECT_EQ(float_to_e4m3_bits(1.0f + 1.0f / 16), 0x38);       // between 1 and 1.125: to the even 1
  EXPECT_EQ(float_to_e4m3_bits(1.0f + 3.0f / 16), 0x3a);       // between 1.125 and 1.25: to 1.25
  EXPECT_EQ(float_to_e4m3_bits(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal: to 0
  EXPECT_EQ(float_to_e4m3_bits(std::ldexp(3.0f, -10)), 0x02);  // 1.5 units: to 2 units
  EXPECT_EQ(float_to_e4m3_bits(std::ldexp(15.0f, -10)), 0x08);  // 7.5 units: to 2^-6, a normal
  EXPECT_EQ(float_to_e4m3_bits(464.0f), 0x7e);                 // between 448 and 480 (no such code)
  EXPECT_EQ(float_to_e4m3_bits(1e9f), 0x7e);
  EXPECT_EQ(float_to_e4m3_bits(-1e9f), 0xfe);
  EXPECT_EQ(float_to_e4m3_bits(std::numeric_limits<float>::infinity()), 0x7e);
  EXPECT_EQ(float_to_e4m3_bits(-std::numeric_limits<float>::infinity()), 0xfe);
  EXPECT_EQ(float_to_e4m3_bits(std::numeric_limits<float>::quiet_NaN()) & 0x7f, 0x7f);
  EXPECT_EQ(float_to_e4m3_bits(std::numeric_limits<float>::denorm_min()), 0x00);
  EXPECT_EQ(float_to_e4m3_bits(-0.0f), 0x80);

  // Every midpoint between neighbouring codes, just below and above it, and random floats over the
  // whole range (log-uniform magnitudes from 2^-14 to 2^10, both signs): the search agrees.
  std::vector<float> xs;
  for (int c = 0; c < 0x7e; ++c) {
    const float lo = e4m3_bits_to_float(std::uint8_t(c)), hi = e4m3_bits_to_float(std::uint8_t(c + 1));
    const float mid = float((double(lo) + double(hi)) / 2);
    for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      xs.push_back(x);
      xs.push_back(-x);
    }
  }
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-14, 10);
  for (int i = 0; i < 200000; ++i) xs.push_back(float((i % 2 ? -1 : 1) * std::exp2(exponent(rng))));
  int mismatches = 0;
  for (float x : xs) {
    const std::uint8_t got = float_to_e4m3_bits(x), want = nearest_code(x);
    if (got != want && ++mismatches <= 5) ADD_FAILURE() << fmt::format("{:a}: code {:#x}, nearest {:#x}", x, got, want);
  }
  EXPECT_EQ(mismatches, 0);
}

std::vector<double> values_of(const HostTensor& t) {
  std::vector<double> v;
  for (std::int64_t i = 0; i < t.numel(); ++i) v.push_back(t.at(i));
  return v;
}

// x f32 (values up to ~1000, so some saturate) -> e4m3 output, and an e4m3 input read back as f32 and
// scaled: the generated C++ kernels round exactly as the interpreter does.
TEST(Fp8Storage, CpuBackendStoresAndLoadsE4m3BitForBitWithTheInterpreter) {
  Graph g;
  const Tensor x = g.input("x", {7, 333}, DType::f32);
  const Tensor q = g.input("q", {7, 333}, DType::e4m3);
  g.output(cast(x * 250.0, DType::e4m3));
  g.output(cast(q, DType::f32) * 0.5 + 1.0);
  std::vector<HostTensor> inputs = random_inputs(g, 11);
  const std::vector<std::vector<double>> ref = interpret(g, inputs);
  CompiledGraph cg = compile_cpu(g, CompileOptions{});
  const std::vector<HostTensor> out = cg.run(inputs);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].dtype, DType::e4m3);
  EXPECT_EQ(values_of(out[0]), ref[0]);
  EXPECT_EQ(values_of(out[1]), ref[1]);
  int saturated = 0;
  for (double v : ref[0]) saturated += std::abs(v) == 448.0;
  EXPECT_GT(saturated, 100) << "the inputs should reach past 448 so that saturation is exercised";
}

double rel_l2(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return std::sqrt(num / den);
}

// GELU -> (optionally) e4m3 storage -> LayerNorm, bf16 in and out.
Graph gelu_layernorm(bool through_e4m3) {
  Graph g;
  const Tensor x = g.input("x", {9, 256}, DType::bf16);
  const Tensor w = g.input("w", {256}, DType::f32);
  const Tensor b = g.input("b", {256}, DType::f32);
  Tensor h = gelu(cast(x, DType::f32));
  if (through_e4m3) h = cast(cast(h, DType::e4m3), DType::f32);
  g.output(cast(layer_norm(h, w, b, 1e-5), DType::bf16));
  return g;
}

// An e4m3 intermediate inside a fused kernel and in the eager plan: both within e4m3's tolerance of
// the interpreter (validate_cpu), and much closer to it than to the same graph without the e4m3
// rounding, so the rounding really happens in the generated code.
TEST(Fp8Storage, E4m3IntermediatesInFusedAndEagerPlans) {
  const Graph g = gelu_layernorm(true);
  const std::vector<HostTensor> inputs = random_inputs(g, 5);
  const ValidationReport report = validate_cpu(g, inputs, CompileOptions{});
  EXPECT_TRUE(report.ok()) << report.to_string();
  const std::vector<double> ref = interpret(g, inputs)[0];
  const std::vector<double> without = interpret(gelu_layernorm(false), inputs)[0];
  CompiledGraph cg = compile_cpu(g, CompileOptions{});
  const std::vector<double> fused = values_of(cg.run(inputs)[0]);
  const std::vector<double> eager = values_of(EagerExecutor(g).run(inputs)[0]);
  const double rounding = rel_l2(without, ref);  // what e4m3 storage does to the result
  EXPECT_GT(rounding, 1e-2);
  EXPECT_LT(rel_l2(fused, ref), 0.1 * rounding) << "fused " << rel_l2(fused, ref) << " vs rounding " << rounding;
  EXPECT_LT(rel_l2(eager, ref), 0.1 * rounding) << "eager " << rel_l2(eager, ref) << " vs rounding " << rounding;
}

// Only kernels that touch e4m3 carry its conversions: every other kernel's source (and so its cache
// key and binary) is what it was before fp8 storage existed.
TEST(Fp8Storage, OnlyE4m3KernelsCarryItsConversions) {
  const CompiledGraph plain = compile_cpu(gelu_layernorm(false), CompileOptions{});
  const CompiledGraph fp8 = compile_cpu(gelu_layernorm(true), CompileOptions{});
  ASSERT_FALSE(plain.kernels().empty());
  for (const KernelSource& k : plain.kernels()) EXPECT_EQ(k.source.find("e4m3"), std::string::npos) << k.source;
  bool any = false;
  for (const KernelSource& k : fp8.kernels()) any |= k.source.find("inline std::uint8_t f32_to_e4m3") != std::string::npos;
  EXPECT_TRUE(any);
}

TEST(Fp8Storage, MatmulAndAttentionInE4m3AreRefusedWithTheWayOut) {
  Graph g;
  const Tensor a = g.input("a", {4, 8}, DType::e4m3);
  const Tensor b = g.input("b", {8, 4}, DType::e4m3);
  try {
    g.output(matmul(a, b));
    compile_cpu(g, CompileOptions{});
    FAIL() << "an e4m3 matmul was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("e4m3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cast its operands to bf16"), std::string::npos) << msg;
  }
}

#if AISP_WITH_CUDA
// The CUDA side without a GPU: e4m3 loads and stores in the generated source (vector paths included)
// and NVRTC compiling it for sm_90a. Running it is the GPU test's job (tests/gpu/compiler_cuda_test.cu).
TEST(Fp8Storage, CudaKernelsWithE4m3CompileWithNvrtc) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("aisp-fp8-storage-{}", ::getpid());
  fs::remove_all(dir);
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  Graph g;
  const Tensor x = g.input("x", {37, 1024}, DType::e4m3);
  const Tensor w = g.input("w", {1024}, DType::bf16);
  g.output(cast(cast(x, DType::f32) * cast(w, DType::f32) + 1.0, DType::e4m3));  // pointwise, 8-wide
  g.output(cast(softmax(cast(x, DType::f32), -1), DType::e4m3));                 // a row kernel
  CudaCompileOptions o;
  o.jit = &jit;
  o.load = false;
  const CudaCompiledGraph cg = compile_cuda(g, o);
  bool loads = false, stores = false;
  for (const CudaKernelSource& k : cg.kernels()) {
    loads |= k.kernel.source.find("_e4m3(a") != std::string::npos;
    stores |= k.kernel.source.find("st8_e4m3(") != std::string::npos || k.kernel.source.find("st_e4m3(") != std::string::npos;
    const NvrtcResult r = jit.compile(k.kernel.source);
    EXPECT_EQ(r.cubin.substr(0, 4), std::string("\x7f" "ELF", 4)) << "not a CUBIN";
  }
  EXPECT_TRUE(loads) << "no e4m3 load in the generated kernels";
  EXPECT_TRUE(stores) << "no e4m3 store in the generated kernels";
  // A graph without e4m3: no cuda_fp8.h, no e4m3 function in its kernels.
  Graph plain;
  plain.output(softmax(plain.input("x", {37, 1024}, DType::bf16), -1));
  for (const CudaKernelSource& k : compile_cuda(plain, o).kernels())
    EXPECT_EQ(k.kernel.source.find("e4m3"), std::string::npos) << k.kernel.source;
  fs::remove_all(dir);
}
#endif

}  // namespace
}  // namespace aisp::compiler
