// erf16 (kernels/common/erf16.h), the erf of GELU on 16-bit outputs: its error bound over a dense
// sweep against double erf (2^q by std::exp2 here; the device's ex2.approx is measured by
// tests/gpu/erf16_test.cu), its special values, the GELU built on it, and which erf nodes the CUDA
// code generator gives it (compiler/codegen/erf_precision.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "compiler/codegen/erf_precision.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/passes/pipeline.h"
#include "kernels/common/erf16.h"

namespace aisp::test {
namespace {

float exp2_host(float q) { return std::exp2(q); }
AISP_ERF16_DEFINITION(inline, exp2_host)  // defines erf16(float) here, from the same tokens

float float_of_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

// The bound erf16.h documents: the fit's error plus fp32 evaluation (6.7e-7 measured).
constexpr double kErf16MaxAbsError = 7e-7;

TEST(Erf16, AbsoluteErrorOverADenseSweepIsWithinTheDocumentedBound) {
  // Every 61st float in [0, 8] (~1.8e7 values: all binades down to subnormals, and beyond 8 erf is
  // 1 in float), negatives by symmetry (checked below).
  double worst = 0, worst_x = 0, worst_erff = 0;
  const std::uint32_t last = bits_of(8.0f);
  for (std::uint32_t b = 0; b <= last; b += 61) {
    const float x = float_of_bits(b);
    const double exact = std::erf(double(x));
    const double e = std::fabs(double(erf16(x)) - exact);
    if (e > worst) worst = e, worst_x = x;
    worst_erff = std::max(worst_erff, std::fabs(double(std::erf(x)) - exact));
  }
  RecordProperty("erf16_max_abs_error", std::to_string(worst));
  std::printf("erf16: max |erf16 - erf| = %.3g at x = %.6g (float erf: %.3g)\n", worst, worst_x, worst_erff);
  EXPECT_LE(worst, kErf16MaxAbsError) << "at x = " << worst_x;
  EXPECT_GT(worst, 1e-7) << "the sweep must see the fit's error (a test that cannot fail is a defect)";
}

TEST(Erf16, SpecialValuesAndSymmetry) {
  EXPECT_EQ(bits_of(erf16(0.0f)), bits_of(0.0f));
  EXPECT_EQ(bits_of(erf16(-0.0f)), bits_of(-0.0f));
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(erf16(inf), 1.0f);
  EXPECT_EQ(erf16(-inf), -1.0f);
  EXPECT_TRUE(std::isnan(erf16(std::numeric_limits<float>::quiet_NaN())));
  for (float x : {4.0f, 9.0f, 100.0f, 1e10f, 1e30f, std::numeric_limits<float>::max()}) {
    EXPECT_EQ(erf16(x), 1.0f) << x;  // q decreases on [0, inf): no clamp needed
    EXPECT_EQ(erf16(-x), -1.0f) << x;
  }
  for (float x = 1e-3f; x < 6.0f; x *= 1.01f) {
    EXPECT_EQ(erf16(-x), -erf16(x)) << x;
    EXPECT_GE(erf16(x), 0.0f) << x;
    EXPECT_LE(erf16(x), 1.0f) << x;
  }
}

TEST(Erf16, GeluOnItIsFarBelowABf16Rounding) {
  // The kernels' form: h + h erf16(y / sqrt 2), h = y / 2.
  double worst_scaled = 0, worst_y = 0;
  for (int i = -1200000; i <= 1200000; ++i) {
    const float y = float(i) * 1e-5f;
    const float h = 0.5f * y;
    const float g = std::fma(h, erf16(y * 0.707106781186547524f), h);
    const double exact = 0.5 * double(y) * (1.0 + std::erf(double(y) / std::sqrt(2.0)));
    // Error per unit of |y|: GELU's values are O(|y|), and a bf16 half-ulp of |y| is >= 2^-9 |y| / 2.
    const double scaled = std::fabs(double(g) - exact) / std::max(1.0, std::fabs(double(y)));
    if (scaled > worst_scaled) worst_scaled = scaled, worst_y = y;
  }
  std::printf("gelu on erf16: max |gelu - exact| / max(1, |y|) = %.3g at y = %.6g\n", worst_scaled, worst_y);
  EXPECT_LE(worst_scaled, 5e-7) << "at y = " << worst_y;
  EXPECT_LT(worst_scaled, std::ldexp(1.0, -9) / 1000) << "must be far below a bf16 rounding";
}

// ---- The code generator's choice ----------------------------------------------------------------

using compiler::Graph;
using compiler::OpKind;
using compiler::Tensor;

// (erf nodes given erf16, erf nodes) in the lowered graph the code generator sees.
std::pair<int, int> erf16_count(const Graph& g) {
  const compiler::Lowered l = compiler::lower(g);
  const std::vector<bool> chosen = compiler::erf16_nodes(l.graph);
  int with = 0, all = 0;
  for (std::size_t i = 0; i < l.graph.size(); ++i)
    if (l.graph.node(compiler::NodeId(i)).op == OpKind::erf) ++all, with += chosen[i] ? 1 : 0;
  return {with, all};
}

TEST(Erf16, CodegenUsesItForGeluRoundedTo16BitOnly) {
  {  // GELU of a bf16 tensor: its result is cast back to bf16
    Graph g;
    g.output(compiler::gelu(g.input("x", {4, 16}, DType::bf16)));
    EXPECT_EQ(erf16_count(g), std::make_pair(1, 1));
  }
  {  // ch14:fused_elementwise: the GELU goes through a mask multiply and a residual add to bf16
    Graph g;
    const Tensor x = g.input("x", {4, 16}, DType::bf16);
    const Tensor xf = compiler::cast(x, DType::f32);
    const Tensor m = compiler::reshape(compiler::cast(g.input("m", {4}, DType::u8), DType::f32), {4, 1});
    const Tensor y = compiler::layer_norm(xf, g.input("w", {16}), g.input("b", {16}), 1e-5);
    g.output(compiler::cast(xf + m * compiler::gelu(y), DType::bf16));
    EXPECT_EQ(erf16_count(g), std::make_pair(1, 1));
  }
  {  // f16 output too
    Graph g;
    g.output(compiler::gelu(g.input("x", {4, 16}, DType::f16)));
    EXPECT_EQ(erf16_count(g), std::make_pair(1, 1));
  }
  {  // fp32 GELU: erff
    Graph g;
    g.output(compiler::gelu(g.input("x", {4, 16}, DType::f32)));
    EXPECT_EQ(erf16_count(g), std::make_pair(0, 1));
  }
  {  // a bare erf rounded to bf16: relative accuracy near 0 matters, erff
    Graph g;
    g.output(compiler::cast(compiler::erf(compiler::cast(g.input("x", {4, 16}, DType::bf16), DType::f32)), DType::bf16));
    EXPECT_EQ(erf16_count(g), std::make_pair(0, 1));
  }
  {  // a bf16 GELU that also feeds an fp32 output: erff
    Graph g;
    const Tensor xf = compiler::cast(g.input("x", {4, 16}, DType::bf16), DType::f32);
    const Tensor y = compiler::gelu(xf);
    g.output(compiler::cast(y, DType::bf16));
    g.output(y);
    EXPECT_EQ(erf16_count(g), std::make_pair(0, 1));
  }
  {  // a GELU summed before its rounding (errors add up over the row): erff
    Graph g;
    const Tensor xf = compiler::cast(g.input("x", {4, 16}, DType::bf16), DType::f32);
    g.output(compiler::cast(compiler::sum(compiler::gelu(xf), {1}), DType::bf16));
    EXPECT_EQ(erf16_count(g), std::make_pair(0, 1));
  }
  {  // exp of a GELU (amplifies the error): erff
    Graph g;
    const Tensor xf = compiler::cast(g.input("x", {4, 16}, DType::bf16), DType::f32);
    g.output(compiler::cast(compiler::exp(compiler::gelu(xf)), DType::bf16));
    EXPECT_EQ(erf16_count(g), std::make_pair(0, 1));
  }
}

}  // namespace
}  // namespace aisp::test
