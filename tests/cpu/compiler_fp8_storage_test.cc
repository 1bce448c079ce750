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
#include <cstring>
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
#include <cuda_fp8.h>

#include "compiler/compile_cuda.h"
#endif

namespace aisp::compiler {
namespace {
namespace fs = std::filesystem;

struct Fp8Format {
  const char* name;
  DType dtype;
  std::uint8_t (*encode)(float);
  float (*decode)(std::uint8_t);
  float max_finite;
  std::uint8_t max_code;  // the code of +max_finite
};
const Fp8Format kE4m3{"e4m3", DType::e4m3, float_to_e4m3_bits, e4m3_bits_to_float, 448.0f, 0x7e};
const Fp8Format kE5m2{"e5m2", DType::e5m2, float_to_e5m2_bits, e5m2_bits_to_float, 57344.0f, 0x7b};

// The nearest finite code to x by searching all of them; a tie goes to the even code (mantissa LSB
// 0); beyond the largest finite value, +-max (saturation). NaN is left to the caller.
std::uint8_t nearest_code(const Fp8Format& f, double x) {
  if (x > f.max_finite) return f.max_code;
  if (x < -f.max_finite) return std::uint8_t(0x80 | f.max_code);
  std::uint8_t best = 0;
  double best_err = std::numeric_limits<double>::infinity();
  for (int c = 0; c < 256; ++c) {
    const float v = f.decode(std::uint8_t(c));
    if (!std::isfinite(v)) continue;
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
  for (const Fp8Format& f : {kE4m3, kE5m2}) {
    for (int c = 0; c < 256; ++c) {
      const float v = f.decode(std::uint8_t(c));
      if (std::isnan(v)) {
        EXPECT_EQ(f.encode(v), 0x7f) << f.name << " code " << c << ": every NaN is the code 0x7f";
      } else if (std::isinf(v)) {
        EXPECT_EQ(f.encode(v), std::uint8_t((c & 0x80) | f.max_code)) << f.name << ": infinity saturates";
      } else {
        EXPECT_EQ(f.encode(v), std::uint8_t(c)) << f.name << " code " << c << " = " << v;
      }
    }
    EXPECT_EQ(f.decode(f.max_code), f.max_finite) << f.name;
  }
  EXPECT_EQ(e4m3_bits_to_float(0x38), 1.0f);
  EXPECT_EQ(e4m3_bits_to_float(0x01), std::ldexp(1.0f, -9));  // the smallest subnormals
  EXPECT_EQ(e5m2_bits_to_float(0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(e4m3_bits_to_float(0x08), std::ldexp(1.0f, -6));  // the smallest normals
  EXPECT_EQ(e5m2_bits_to_float(0x04), std::ldexp(1.0f, -14));
  EXPECT_EQ(e5m2_bits_to_float(0x3c), 1.0f);
  EXPECT_TRUE(std::isnan(e4m3_bits_to_float(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3_bits_to_float(0xff)));
  EXPECT_TRUE(std::isinf(e5m2_bits_to_float(0x7c)));  // e5m2 has infinities
  EXPECT_TRUE(std::isnan(e5m2_bits_to_float(0x7d)));
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
  EXPECT_EQ(float_to_e4m3_bits(std::numeric_limits<float>::quiet_NaN()), 0x7f);
  EXPECT_EQ(float_to_e4m3_bits(-std::numeric_limits<float>::quiet_NaN()), 0x7f);
  EXPECT_EQ(float_to_e4m3_bits(std::numeric_limits<float>::denorm_min()), 0x00);
  EXPECT_EQ(float_to_e4m3_bits(-0.0f), 0x80);

  EXPECT_EQ(float_to_e5m2_bits(1.0f + 1.0f / 8), 0x3c);  // between 1 and 1.25: to the even 1
  EXPECT_EQ(float_to_e5m2_bits(61440.0f), 0x7b);        // between 57344 and 65536 (infinity): saturate
  EXPECT_EQ(float_to_e5m2_bits(-std::numeric_limits<float>::infinity()), 0xfb);

  // Every midpoint between neighbouring finite codes, just below and above it, and random floats over
  // the whole range (log-uniform magnitudes, both signs): the search agrees.
  for (const Fp8Format& f : {kE4m3, kE5m2}) {
    std::vector<float> xs;
    for (int c = 0; c < f.max_code; ++c) {
      const float lo = f.decode(std::uint8_t(c)), hi = f.decode(std::uint8_t(c + 1));
      const float mid = float((double(lo) + double(hi)) / 2);
      for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)}) {
        xs.push_back(x);
        xs.push_back(-x);
      }
    }
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> exponent(-20, 18);
    for (int i = 0; i < 200000; ++i) xs.push_back(float((i % 2 ? -1 : 1) * std::exp2(exponent(rng))));
    int mismatches = 0;
    for (float x : xs) {
      const std::uint8_t got = f.encode(x), want = nearest_code(f, x);
      if (got != want && ++mismatches <= 5)
        ADD_FAILURE() << fmt::format("{} {:a}: code {:#x}, nearest {:#x}", f.name, x, got, want);
    }
    EXPECT_EQ(mismatches, 0) << f.name;
  }
}

#if AISP_WITH_CUDA
// The device converts with cvt.rn.satfinite (cuda_fp8.h's __nv_cvt_float_to_fp8 with __NV_SATFINITE);
// cuda_fp8.h's host-side version of it agrees with ours on every 9973rd float bit pattern (NaN and
// infinity patterns included) and on every code read back.
TEST(Fp8Storage, ConversionsEqualCudaFp8s) {
  int mismatches = 0;
  std::int64_t checked = 0;
  for (std::uint64_t u = 0; u < (std::uint64_t(1) << 32); u += 9973, ++checked) {
    const std::uint32_t bits = std::uint32_t(u);
    float x;
    std::memcpy(&x, &bits, 4);
    const std::uint8_t cuda4 = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
    const std::uint8_t cuda5 = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E5M2);
    if ((cuda4 != float_to_e4m3_bits(x) || cuda5 != float_to_e5m2_bits(x)) && ++mismatches <= 5)
      ADD_FAILURE() << fmt::format("{:a}: cuda {:#x} / {:#x}, ours {:#x} / {:#x}", x, cuda4, cuda5,
                                   float_to_e4m3_bits(x), float_to_e5m2_bits(x));
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(checked, 430660);  // ceil(2^32 / 9973) patterns
  for (int c = 0; c < 256; ++c) {
    const float cuda4 = __half2float(__half(__nv_cvt_fp8_to_halfraw(std::uint8_t(c), __NV_E4M3)));
    const float cuda5 = __half2float(__half(__nv_cvt_fp8_to_halfraw(std::uint8_t(c), __NV_E5M2)));
    const float ours4 = e4m3_bits_to_float(std::uint8_t(c)), ours5 = e5m2_bits_to_float(std::uint8_t(c));
    EXPECT_TRUE(cuda4 == ours4 || (std::isnan(cuda4) && std::isnan(ours4))) << "e4m3 code " << c;
    EXPECT_TRUE(cuda5 == ours5 || (std::isnan(cuda5) && std::isnan(ours5))) << "e5m2 code " << c;
  }
}
#endif

std::vector<double> values_of(const HostTensor& t) {
  std::vector<double> v;
  for (std::int64_t i = 0; i < t.numel(); ++i) v.push_back(t.at(i));
  return v;
}

// x f32 scaled past each format's largest value (so some saturate) -> e4m3 and e5m2 outputs, and fp8
// inputs read back as f32 and scaled: the generated C++ kernels round exactly as the interpreter does.
TEST(Fp8Storage, CpuBackendStoresAndLoadsFp8BitForBitWithTheInterpreter) {
  Graph g;
  const Tensor x = g.input("x", {7, 333}, DType::f32);
  const Tensor q4 = g.input("q4", {7, 333}, DType::e4m3);
  const Tensor q5 = g.input("q5", {7, 333}, DType::e5m2);
  g.output(cast(x * 250.0, DType::e4m3));
  g.output(cast(x * 30000.0, DType::e5m2));
  g.output(cast(q4, DType::f32) * 0.5 + cast(q5, DType::f32));
  std::vector<HostTensor> inputs = random_inputs(g, 11);
  const std::vector<std::vector<double>> ref = interpret(g, inputs);
  CompiledGraph cg = compile_cpu(g, CompileOptions{});
  const std::vector<HostTensor> out = cg.run(inputs);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].dtype, DType::e4m3);
  EXPECT_EQ(out[1].dtype, DType::e5m2);
  for (std::size_t k = 0; k < 3; ++k) EXPECT_EQ(values_of(out[k]), ref[k]) << "output " << k;
  int saturated4 = 0, saturated5 = 0;
  for (double v : ref[0]) saturated4 += std::abs(v) == 448.0;
  for (double v : ref[1]) saturated5 += std::abs(v) == 57344.0;
  EXPECT_GT(saturated4, 100) << "the inputs should reach past 448 so that saturation is exercised";
  EXPECT_GT(saturated5, 100) << "the inputs should reach past 57344 so that saturation is exercised";
}

double rel_l2(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return std::sqrt(num / den);
}

// GELU -> (optionally) fp8 storage -> LayerNorm, bf16 in and out.
Graph gelu_layernorm(bool through_fp8, DType fp8 = DType::e4m3) {
  Graph g;
  const Tensor x = g.input("x", {9, 256}, DType::bf16);
  const Tensor w = g.input("w", {256}, DType::f32);
  const Tensor b = g.input("b", {256}, DType::f32);
  Tensor h = gelu(cast(x, DType::f32));
  if (through_fp8) h = cast(cast(h, fp8), DType::f32);
  g.output(cast(layer_norm(h, w, b, 1e-5), DType::bf16));
  return g;
}

// An fp8 intermediate inside a fused kernel and in the eager plan: both within the format's tolerance
// of the interpreter (validate_cpu), and much closer to it than to the same graph without the fp8
// rounding, so the rounding really happens in the generated code.
TEST(Fp8Storage, Fp8IntermediatesInFusedAndEagerPlans) {
  for (DType fp8 : {DType::e4m3, DType::e5m2}) {
    const Graph g = gelu_layernorm(true, fp8);
    const std::vector<HostTensor> inputs = random_inputs(g, 5);
    const ValidationReport report = validate_cpu(g, inputs, CompileOptions{});
    EXPECT_TRUE(report.ok()) << name_of(fp8) << ": " << report.to_string();
    const std::vector<double> ref = interpret(g, inputs)[0];
    const std::vector<double> without = interpret(gelu_layernorm(false), inputs)[0];
    CompiledGraph cg = compile_cpu(g, CompileOptions{});
    const std::vector<double> fused = values_of(cg.run(inputs)[0]);
    const std::vector<double> eager = values_of(EagerExecutor(g).run(inputs)[0]);
    const double rounding = rel_l2(without, ref);  // what fp8 storage does to the result
    EXPECT_GT(rounding, 1e-2) << name_of(fp8);
    EXPECT_LT(rel_l2(fused, ref), 0.1 * rounding) << name_of(fp8) << " fused vs rounding " << rounding;
    EXPECT_LT(rel_l2(eager, ref), 0.1 * rounding) << name_of(fp8) << " eager vs rounding " << rounding;
  }
}

// Only kernels that touch fp8 carry its conversions: every other kernel's source (and so its cache
// key and binary) is what it was before fp8 storage existed.
TEST(Fp8Storage, OnlyFp8KernelsCarryItsConversions) {
  const CompiledGraph plain = compile_cpu(gelu_layernorm(false), CompileOptions{});
  ASSERT_FALSE(plain.kernels().empty());
  for (const KernelSource& k : plain.kernels()) {
    EXPECT_EQ(k.source.find("e4m3"), std::string::npos) << k.source;
    EXPECT_EQ(k.source.find("e5m2"), std::string::npos) << k.source;
  }
  for (DType t : {DType::e4m3, DType::e5m2}) {
    const CompiledGraph fp8 = compile_cpu(gelu_layernorm(true, t), CompileOptions{});
    bool any = false;
    for (const KernelSource& k : fp8.kernels())
      any |= k.source.find(fmt::format("to_{}(", name_of(t))) != std::string::npos;
    EXPECT_TRUE(any) << name_of(t);
  }
}

TEST(Fp8Storage, MatmulInFp8IsRefusedWithTheWayOut) {
  Graph g;
  const Tensor a = g.input("a", {4, 8}, DType::e4m3);
  const Tensor b = g.input("b", {8, 4}, DType::e4m3);
  try {
    g.output(matmul(a, b));
    compile_cpu(g, CompileOptions{});
    FAIL() << "an e4m3 matmul was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("fp8 storage"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cast its operands to bf16"), std::string::npos) << msg;
  }
}

#if AISP_WITH_CUDA
// The CUDA side without a GPU: e4m3 loads and stores in the generated source (vector paths included)
// and NVRTC compiling it for sm_90a. Running it is the GPU test's job (tests/gpu/compiler_cuda_test.cu).
TEST(Fp8Storage, CudaKernelsWithFp8CompileWithNvrtc) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("aisp-fp8-storage-{}", ::getpid());
  fs::remove_all(dir);
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  Graph g;
  const Tensor x = g.input("x", {37, 1024}, DType::e4m3);
  const Tensor w = g.input("w", {1024}, DType::bf16);
  g.output(cast(cast(x, DType::f32) * cast(w, DType::f32) + 1.0, DType::e4m3));  // pointwise, 8-wide
  g.output(cast(softmax(cast(x, DType::f32), -1), DType::e5m2));                 // a row kernel
  CudaCompileOptions o;
  o.jit = &jit;
  o.load = false;
  const CudaCompiledGraph cg = compile_cuda(g, o);
  bool loads = false, stores = false, stores5 = false;
  for (const CudaKernelSource& k : cg.kernels()) {
    loads |= k.kernel.source.find("_e4m3(a") != std::string::npos;
    stores |= k.kernel.source.find("st8_e4m3(a") != std::string::npos || k.kernel.source.find("st_e4m3(a") != std::string::npos;
    stores5 |= k.kernel.source.find("st8_e5m2(a") != std::string::npos || k.kernel.source.find("st_e5m2(a") != std::string::npos;
    const NvrtcResult r = jit.compile(k.kernel.source);
    EXPECT_EQ(r.cubin.substr(0, 4), std::string("\x7f" "ELF", 4)) << "not a CUBIN";
  }
  EXPECT_TRUE(loads) << "no e4m3 load in the generated kernels";
  EXPECT_TRUE(stores) << "no e4m3 store in the generated kernels";
  EXPECT_TRUE(stores5) << "no e5m2 store in the generated kernels";
  // A graph without fp8: no cuda_fp8.h, no fp8 function in its kernels.
  Graph plain;
  plain.output(softmax(plain.input("x", {37, 1024}, DType::bf16), -1));
  for (const CudaKernelSource& k : compile_cuda(plain, o).kernels())
    EXPECT_EQ(k.kernel.source.find("cuda_fp8.h"), std::string::npos) << k.kernel.source;
  fs::remove_all(dir);
}
#endif

}  // namespace
}  // namespace aisp::compiler
