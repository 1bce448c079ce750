// The skinny bf16 GEMM (src/kernels/gemm/gemm_bf16_skinny.cu):
//   * M of 1..64 (every n8 tile count, ragged), N not a multiple of the 64-column block, K of one
//     piece to 4096, x every epilogue (none, bias, bias + GELU, residual, bias + residual) x every
//     legal split count, against a float64 CPU reference of the same bf16 inputs;
//   * padded row strides (lda, ldb, ldd): D sits in a poisoned buffer whose padding must stay untouched;
//   * the split-count rules and the refusals, with their reasons.
// Inputs are seeded unit normals generated on the host (the device holds the exact same values).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "ch14_example_test_util.h"
#include "core/error.h"
#include "core/gpu.h"
#include "kernels/gemm/gemm_bf16_skinny.h"
#include "kernels/gemm/gemm_reference_host.h"

namespace aisp::test {
namespace {

namespace kg = kernels::gemm;
using kg::bf16;

// As the sm90 GEMM's tests: the kernel rounds once (rtol 2^-8); fp32 sums in another order move a
// unit-normal product by ~K * 6e-8 (atol 2e-3 + 5e-7 K).
harness::Tolerance skinny_tolerance(int k) { return {4e-3, 2e-3 + 5e-7 * double(k), 1.0 / 256.0}; }

#define AISP_REQUIRE_SM90_OR_LATER()                                                          \
  do {                                                                                        \
    const GpuProbe probe_ = probe_gpus();                                                     \
    if (!probe_.available) GTEST_SKIP() << probe_.reason;                                     \
    const int cc_ = gpu_properties(0).compute_capability;                                     \
    if (cc_ < 90) GTEST_SKIP() << "the skinny GEMM needs sm_90 or later; this GPU is sm_" << cc_; \
  } while (0)

double gelu_tanh_f64(double y) { return 0.5 * y * (1.0 + std::tanh(0.7978845608028654 * (y + 0.044715 * y * y * y))); }

enum class Epi { none, bias, bias_gelu, residual, bias_residual };
const char* name_of(Epi e) {
  switch (e) {
    case Epi::none: return "none";
    case Epi::bias: return "bias";
    case Epi::bias_gelu: return "bias+gelu";
    case Epi::residual: return "residual";
    case Epi::bias_residual: return "bias+residual";
  }
  return "?";
}
bool has_bias(Epi e) { return e == Epi::bias || e == Epi::bias_gelu || e == Epi::bias_residual; }
bool has_residual(Epi e) { return e == Epi::residual || e == Epi::bias_residual; }

// One problem with row strides lda, ldb (inputs) and ldd (D and the residual), on the host and the
// device. Padding elements hold values too (they must not be read into the product).
struct Problem {
  int m, n, k;
  std::int64_t lda, ldb, ldd;
  std::vector<std::uint16_t> a, b, bias, residual;  // bits, strided as on the device
  DeviceTensor da, db, dbias, dres, dd;
  Problem(int m_, int n_, int k_, std::int64_t lda_, std::int64_t ldb_, std::int64_t ldd_)
      : m(m_), n(n_), k(k_), lda(lda_), ldb(ldb_), ldd(ldd_),
        a(normal_bf16_bits(301, m_ * lda_)), b(normal_bf16_bits(302, n_ * ldb_)), bias(normal_bf16_bits(303, n_)),
        residual(normal_bf16_bits(304, m_ * ldd_)),
        da(DType::bf16, {m_ * lda_}), db(DType::bf16, {n_ * ldb_}), dbias(DType::bf16, {n_}),
        dres(DType::bf16, {m_ * ldd_}), dd(DType::bf16, {m_ * ldd_}) {
    da.upload(a);
    db.upload(b);
    dbias.upload(bias);
    dres.upload(residual);
  }
  std::vector<double> product() const {  // (m, n), packed
    std::vector<double> out(std::size_t(m) * n);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double acc = 0;
        for (int kk = 0; kk < k; ++kk)
          acc += kg::bf16_bits_to_double(a[std::size_t(i * lda + kk)]) * kg::bf16_bits_to_double(b[std::size_t(j * ldb + kk)]);
        out[std::size_t(i) * n + j] = acc;
      }
    return out;
  }
  std::vector<double> expected(const std::vector<double>& prod, Epi e) const {
    std::vector<double> out = prod;
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double& y = out[std::size_t(i) * n + j];
        if (has_bias(e)) y += kg::bf16_bits_to_double(bias[std::size_t(j)]);
        if (has_residual(e)) y += kg::bf16_bits_to_double(residual[std::size_t(i * ldd + j)]);
        if (e == Epi::bias_gelu) y = gelu_tanh_f64(y);
      }
    return out;
  }
  kg::SkinnyGemmArgs args(Epi e) const {
    kg::SkinnyGemmArgs x;
    x.a = da.data<bf16>();
    x.lda = lda;
    x.b = db.data<bf16>();
    x.ldb = ldb;
    x.bias = has_bias(e) ? dbias.data<bf16>() : nullptr;
    x.residual = has_residual(e) ? dres.data<bf16>() : nullptr;
    x.d = dd.data<bf16>();
    x.ldd = ldd;
    x.m = m;
    x.n = n;
    x.k = k;
    x.gelu_tanh = e == Epi::bias_gelu;
    return x;
  }
};

struct Shape {
  int m, n, k;
  int pad_a = 0, pad_b = 0, pad_d = 0;
};

// Runs every epilogue x every legal split count (and the automatic one) of each shape: D inside
// the poisoned rows must match float64, D's padding must keep the poison.
void expect_shapes_match_f64(const std::vector<Shape>& shapes) {
  TestStream stream;
  const Epi epilogues[] = {Epi::none, Epi::bias, Epi::bias_gelu, Epi::residual, Epi::bias_residual};
  for (const Shape& s : shapes) {
    const Problem p(s.m, s.n, s.k, s.k + s.pad_a, s.k + s.pad_b, s.n + s.pad_d);
    const std::vector<double> prod = p.product();
    std::vector<int> splits = kg::skinny_split_candidates(s.k);
    splits.push_back(0);  // automatic
    for (Epi e : epilogues) {
      const std::vector<double> want = p.expected(prod, e);
      for (int sp : splits) {
        const std::string what = fmt::format("{}x{}x{} (lda {}, ldb {}, ldd {}) {} splits {}", s.m, s.n, s.k, p.lda,
                                             p.ldb, p.ldd, name_of(e), sp == 0 ? std::string("auto") : std::to_string(sp));
        const kg::SkinnyConfig config{sp};
        ASSERT_EQ(kg::gemm_bf16_skinny_unsupported(p.args(e), config), "") << what;
        AISP_CUDA_CHECK(cudaMemsetAsync(p.dd.data<bf16>(), 0xFF, std::size_t(s.m) * p.ldd * sizeof(bf16), stream.get()));
        kg::gemm_bf16_skinny(p.args(e), stream.get(), config);
        stream.sync();
        const std::vector<std::uint16_t> bits = p.dd.download<std::uint16_t>();
        std::vector<double> got;
        std::size_t touched = 0;
        for (int i = 0; i < s.m; ++i)
          for (std::int64_t j = 0; j < p.ldd; ++j) {
            const std::uint16_t v = bits[std::size_t(i * p.ldd + j)];
            if (j < s.n) got.push_back(kg::bf16_bits_to_double(v));
            else touched += v != 0xFFFF;
          }
        EXPECT_EQ(touched, 0u) << what << ": D's row padding was written";
        EXPECT_TRUE(all_close(got, want, skinny_tolerance(s.k), what));
      }
    }
  }
}

TEST(GemmSkinny, ShapesMatchFloat64) {
  AISP_REQUIRE_SM90_OR_LATER();
  // Every n8 tile count (M 1..8, 9..16, 17..32, 33..64), N below, at and past 64-column blocks,
  // K of one 16-byte piece, not a multiple of 64, and at the 8 x 512 limit.
  expect_shapes_match_f64({{1, 1, 8},      {1, 64, 64},     {3, 70, 200},   {8, 65, 520},   {9, 130, 1000},
                           {16, 100, 64},  {17, 257, 136},  {31, 64, 72},   {33, 200, 1024}, {64, 64, 4096},
                           {64, 129, 2048}, {50, 96, 4096}, {64, 1000, 1024}});
}

TEST(GemmSkinny, PaddedRowStrides) {
  AISP_REQUIRE_SM90_OR_LATER();
  expect_shapes_match_f64({{5, 70, 136, 8, 16, 3}, {40, 200, 512, 64, 8, 1}, {64, 65, 1000, 24, 40, 63}});
}

// A few seconds under compute-sanitizer (memcheck, racecheck): one shape per n8 tile count, clusters
// of 1 to 8.
TEST(GemmSkinny, SanitizerShapes) {
  AISP_REQUIRE_SM90_OR_LATER();
  expect_shapes_match_f64({{1, 70, 200}, {12, 64, 520}, {20, 100, 72, 8, 0, 5}, {64, 130, 1024}});
}

TEST(GemmSkinny, SplitCountsAndAutomaticChoice) {
  EXPECT_EQ(kg::skinny_split_candidates(8), (std::vector<int>{1}));
  EXPECT_EQ(kg::skinny_split_candidates(200), (std::vector<int>{1, 2, 4}));  // 8 slices of 64 would leave 4 empty
  EXPECT_EQ(kg::skinny_split_candidates(1024), (std::vector<int>{2, 4, 8}));  // one slice of 1024 is over 512
  EXPECT_EQ(kg::skinny_split_candidates(4096), (std::vector<int>{8}));
  EXPECT_TRUE(kg::skinny_split_candidates(4104).empty());
  EXPECT_EQ(kg::skinny_auto_splits(3072, 1024, 132), 4);  // 48 blocks: 4 slices give 192 CTAs
  EXPECT_EQ(kg::skinny_auto_splits(4096, 1024, 132), 4);  // 64 blocks: 2 would give 128
  EXPECT_EQ(kg::skinny_auto_splits(1024, 1024, 132), 8);  // 16 blocks: the most there is
  EXPECT_EQ(kg::skinny_auto_splits(32000, 1024, 132), 2);
}

TEST(GemmSkinny, RefusesWithTheReason) {
  AISP_REQUIRE_SM90_OR_LATER();
  const Problem p(4, 64, 64, 64, 64, 64);
  auto why = [&](auto&& change, kg::SkinnyConfig config = {}) {
    kg::SkinnyGemmArgs x = p.args(Epi::bias);
    change(x);
    return kg::gemm_bf16_skinny_unsupported(x, config);
  };
  EXPECT_NE(why([](kg::SkinnyGemmArgs& x) { x.m = 65; }).find("M = 65"), std::string::npos);
  EXPECT_NE(why([](kg::SkinnyGemmArgs& x) { x.k = 60; }).find("multiple of 8"), std::string::npos);
  EXPECT_NE(why([](kg::SkinnyGemmArgs& x) { x.lda = 60; }).find("row strides"), std::string::npos);
  EXPECT_NE(why([](kg::SkinnyGemmArgs& x) { x.a += 1; }).find("16-byte aligned"), std::string::npos);
  EXPECT_NE(why([](kg::SkinnyGemmArgs& x) { x.residual = x.d, x.gelu_tanh = true; }).find("GELU with a residual"),
            std::string::npos);
  EXPECT_NE(why([](kg::SkinnyGemmArgs&) {}, kg::SkinnyConfig{3}).find("splits = 3"), std::string::npos);
  EXPECT_NE(why([](kg::SkinnyGemmArgs& x) { x.k = 8 * 513, x.lda = x.ldb = 8 * 513; }).find("no split count"),
            std::string::npos);
  kg::SkinnyGemmArgs bad = p.args(Epi::none);
  bad.m = 0;
  EXPECT_THROW(kg::gemm_bf16_skinny(bad, nullptr), Error);
}

}  // namespace
}  // namespace aisp::test
