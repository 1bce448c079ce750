// The sm90 bf16 GEMM (src/kernels/gemm/gemm_bf16_sm90.cu) and its GPU reference kernel:
//   * small awkward shapes (M, N of 1..127 and just past a tile, K = 8 x odd, K < 64) x the three
//     epilogues x several configurations (tile_n 128/256, ring depths, raster bands, persistent or
//     one CTA per tile) against a float64 CPU reference of the same bf16 inputs;
//   * many tiles per persistent CTA, and 8192^3, against the GPU reference kernel (on-device compare);
//   * the reference kernel itself against float64;
//   * shapes and configurations the kernel refuses, with the reason.
// Inputs are seeded unit normals (core/random.h), generated on the device and regenerated
// bit-identically on the host for the CPU reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "ch14_example_test_util.h"
#include "core/cuda/device_memory.h"
#include "core/error.h"
#include "core/gpu.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/gemm/gemm_reference.h"
#include "kernels/gemm/gemm_reference_host.h"

namespace aisp::test {
namespace {

using kernels::gemm::bf16;
using kernels::gemm::Epilogue;
using kernels::gemm::GemmBf16Args;
using kernels::gemm::GemmConfig;

constexpr std::uint64_t kSeedA = 101, kSeedB = 102, kSeedBias = 103;

// Tolerance of the kernel's bf16 output against a reference of the same inputs: one bf16 rounding
// is at most 2^-9 relative, so rtol 2^-8; fp32 accumulation in another order moves a result by
// ~K * 6e-8 for unit-normal inputs, so atol 2e-3 + 5e-7 K. Tighter than tolerance_for(bf16), which
// allows for the 3-4 roundings of an eager pipeline; this kernel rounds once.
harness::Tolerance gemm_tolerance(int k) { return {4e-3, 2e-3 + 5e-7 * double(k), 1.0 / 256.0}; }

// Skips unless an sm_90 GPU is here (the kernel is sm_90a-only; elsewhere it refuses).
#define AISP_REQUIRE_SM90()                                                                  \
  do {                                                                                       \
    const GpuProbe probe_ = probe_gpus();                                                    \
    if (!probe_.available) GTEST_SKIP() << probe_.reason;                                    \
    const int cc_ = gpu_properties(0).compute_capability;                                    \
    if (cc_ != 90) GTEST_SKIP() << "the sm90 GEMM needs an sm_90 GPU; this one is sm_" << cc_; \
  } while (0)

struct Problem {
  int m = 0, n = 0, k = 0;
  cuda::DeviceMemory a, b, bias, d;
  Problem(int m_, int n_, int k_, cudaStream_t stream) : m(m_), n(n_), k(k_) {
    a = cuda::device_alloc(std::size_t(m) * k * sizeof(bf16));
    b = cuda::device_alloc(std::size_t(n) * k * sizeof(bf16));
    bias = cuda::device_alloc(std::size_t(n) * sizeof(bf16));
    d = cuda::device_alloc(std::size_t(m) * n * sizeof(bf16));
    kernels::gemm::fill_normal_bf16(A(), std::size_t(m) * k, kSeedA, stream);
    kernels::gemm::fill_normal_bf16(B(), std::size_t(n) * k, kSeedB, stream);
    kernels::gemm::fill_normal_bf16(Bias(), std::size_t(n), kSeedBias, stream);
  }
  bf16* A() const { return static_cast<bf16*>(a.get()); }
  bf16* B() const { return static_cast<bf16*>(b.get()); }
  bf16* Bias() const { return static_cast<bf16*>(bias.get()); }
  bf16* D() const { return static_cast<bf16*>(d.get()); }
  GemmBf16Args args(Epilogue e) const { return GemmBf16Args{A(), B(), Bias(), D(), m, n, k, e}; }
  void poison_d(cudaStream_t stream) const {
    AISP_CUDA_CHECK(cudaMemsetAsync(D(), 0xFF, std::size_t(m) * n * sizeof(bf16), stream));
  }
  std::vector<double> download_d() const {
    std::vector<std::uint16_t> bits(std::size_t(m) * n);
    AISP_CUDA_CHECK(cudaMemcpy(bits.data(), D(), bits.size() * sizeof(bf16), cudaMemcpyDeviceToHost));
    return bf16_bits_to_double(bits);
  }
};

// The float64 product (no epilogue) of the problem's inputs, then the epilogue on the host.
std::vector<double> product_f64(int m, int n, int k) {
  return kernels::gemm::gemm_reference_f64(normal_bf16_bits(kSeedA, std::int64_t(m) * k),
                                           normal_bf16_bits(kSeedB, std::int64_t(n) * k), {}, false, m, n, k);
}
std::vector<double> with_epilogue(std::vector<double> d, int n, Epilogue e) {
  if (e == Epilogue::none) return d;
  const std::vector<double> bias = bf16_bits_to_double(normal_bf16_bits(kSeedBias, n));
  for (std::size_t i = 0; i < d.size(); ++i) {
    d[i] += bias[i % std::size_t(n)];
    if (e == Epilogue::bias_gelu) d[i] = kernels::gemm::gelu_erf_f64(d[i]);
  }
  return d;
}

GemmConfig make_config(int tile_n, int stages, int group, bool persistent, int cluster_m = 1, bool tma_store = true) {
  GemmConfig c;
  c.tma_store = tma_store;
  c.cluster_m = cluster_m;
  c.tile_n = tile_n;
  c.stages = stages;
  c.raster_group = group;
  c.persistent = persistent;
  return c;
}

struct Shape {
  int m, n, k;
};

void expect_small_shapes_match_f64(const std::vector<Shape>& shapes, const std::vector<GemmConfig>& configs) {
  TestStream stream;
  for (const Shape& s : shapes) {
    Problem p(s.m, s.n, s.k, stream.get());
    const std::vector<double> product = product_f64(s.m, s.n, s.k);
    for (Epilogue e : {Epilogue::none, Epilogue::bias, Epilogue::bias_gelu}) {
      const std::vector<double> ref = with_epilogue(product, s.n, e);
      for (const GemmConfig& c : configs) {
        ASSERT_EQ(kernels::gemm::gemm_bf16_sm90_unsupported(p.args(e), c), "");
        p.poison_d(stream.get());
        kernels::gemm::gemm_bf16_sm90(p.args(e), stream.get(), c);
        stream.sync();
        EXPECT_TRUE(all_close(p.download_d(), ref, gemm_tolerance(s.k),
                              fmt::format("{}x{}x{} {} [{}]", s.m, s.n, s.k, kernels::gemm::name_of(e), c.describe())));
      }
    }
  }
}

TEST(GemmKernel, SmallShapesMatchFloat64) {
  AISP_REQUIRE_SM90();
  expect_small_shapes_match_f64({{1, 1, 8},      {1, 256, 64},   {127, 1, 40},    {5, 300, 24},
                                 {64, 200, 264}, {128, 256, 64}, {130, 257, 136}, {255, 129, 520},
                                 {17, 100, 8},   {100, 17, 56},  {129, 383, 1000}, {200, 511, 72},
                                 {384, 640, 200}},
                                // TMA-store epilogue where N % 8 == 0 (64, 200, 256, 640 here), direct
                                // stores for the other N; then the direct epilogue everywhere.
                                {GemmConfig{}, make_config(128, 6, 8, true), make_config(256, 2, 1, false),
                                 make_config(128, 3, 1, true), make_config(256, 3, 2, true),
                                 make_config(256, 3, 8, true, 2), make_config(128, 4, 1, false, 2),
                                 make_config(256, 4, 8, true, 1, false), make_config(128, 5, 1, false, 1, false),
                                 make_config(256, 3, 2, true, 2, false)});
}

// The TMA-store epilogue's fallback: N % 8 != 0 (even and odd) and a D that is not 16-byte aligned
// (2- and 8-byte aligned) take the direct stores. D sits inside a larger poisoned buffer: the
// product must match float64 and every element around D must be untouched.
TEST(GemmKernel, TmaStoreFallsBackForRaggedNOrUnalignedD) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  struct Case {
    int m, n, k;
    int d_offset;  // elements
  };
  for (const Case& c : std::vector<Case>{{200, 130, 72, 0}, {130, 257, 136, 0}, {130, 256, 136, 1}, {300, 264, 64, 4}}) {
    Problem p(c.m, c.n, c.k, stream.get());
    const std::size_t mn = std::size_t(c.m) * c.n, guard = 64;
    cuda::DeviceMemory big = cuda::device_alloc((mn + 2 * guard) * sizeof(bf16));
    bf16* d = static_cast<bf16*>(big.get()) + guard + c.d_offset;
    const std::vector<double> product = product_f64(c.m, c.n, c.k);
    for (const GemmConfig& config : {GemmConfig{}, make_config(128, 4, 8, true, 2)}) {
      AISP_CUDA_CHECK(cudaMemsetAsync(big.get(), 0xFF, (mn + 2 * guard) * sizeof(bf16), stream.get()));
      GemmBf16Args args = p.args(Epilogue::bias_gelu);
      args.d = d;
      ASSERT_EQ(kernels::gemm::gemm_bf16_sm90_unsupported(args, config), "");
      kernels::gemm::gemm_bf16_sm90(args, stream.get(), config);
      stream.sync();
      std::vector<std::uint16_t> bits(mn + 2 * guard);
      AISP_CUDA_CHECK(cudaMemcpy(bits.data(), big.get(), bits.size() * sizeof(bf16), cudaMemcpyDeviceToHost));
      const std::size_t first = guard + std::size_t(c.d_offset);
      std::size_t touched = 0;
      for (std::size_t i = 0; i < bits.size(); ++i)
        if ((i < first || i >= first + mn) && bits[i] != 0xFFFF) ++touched;
      const std::string what = fmt::format("{}x{}x{} D + {} [{}]", c.m, c.n, c.k, c.d_offset, config.describe());
      EXPECT_EQ(touched, 0u) << what << ": elements outside D were written";
      const std::vector<std::uint16_t> inside(bits.begin() + std::ptrdiff_t(first),
                                              bits.begin() + std::ptrdiff_t(first + mn));
      EXPECT_TRUE(all_close(bf16_bits_to_double(inside), with_epilogue(product, c.n, Epilogue::bias_gelu),
                            gemm_tolerance(c.k), what));
    }
  }
}

// A few seconds under compute-sanitizer (memcheck, racecheck): tails in M, N and K, both tile
// widths, clusters of 1 and 2 (the odd tile-row count leaves the second CTA of a cluster past M).
TEST(GemmKernel, SanitizerShapes) {
  AISP_REQUIRE_SM90();
  // {300, 200, 24}: N % 8 == 0 (TMA stores) and 3 tile rows (odd: with clusters the last pair's
  // second CTA is past M). {1100, 2200, 16}: 9 x 18 tiles of 128 x 128 -- more than the GPU keeps
  // resident (as CTAs or pairs) -- so CTAs reuse their staging buffer for a second tile; {1100, 4400,
  // 16}: 162 tiles of 128 x 256, the same for the default tile.
  expect_small_shapes_match_f64({{1, 1, 8}, {130, 257, 136}, {300, 100, 24}, {300, 200, 24}, {1100, 2200, 16},
                                 {1100, 4400, 16}},
                                {GemmConfig{}, make_config(128, 3, 1, true, 2), make_config(256, 3, 8, false, 2),
                                 make_config(128, 4, 8, true), make_config(128, 2, 1, true, 1, false)});
}

TEST(GemmKernel, ReferenceKernelMatchesFloat64) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (const Shape& s : std::vector<Shape>{{3, 5, 7}, {70, 33, 129}, {128, 64, 300}}) {
    Problem p(s.m, s.n, s.k, stream.get());
    cuda::DeviceMemory out = cuda::device_alloc(std::size_t(s.m) * s.n * sizeof(float));
    const std::vector<double> product = product_f64(s.m, s.n, s.k);
    for (Epilogue e : {Epilogue::none, Epilogue::bias, Epilogue::bias_gelu}) {
      kernels::gemm::gemm_bf16_reference(p.args(e), static_cast<float*>(out.get()), stream.get());
      stream.sync();
      std::vector<float> host(std::size_t(s.m) * s.n);
      AISP_CUDA_CHECK(cudaMemcpy(host.data(), out.get(), host.size() * sizeof(float), cudaMemcpyDeviceToHost));
      // fp32 accumulation vs float64: K * 2^-24 * |partial sums| is below 1e-4 here.
      EXPECT_TRUE(all_close(to_double(host), with_epilogue(product, s.n, e), harness::Tolerance{1e-5, 1e-4, 1e-5},
                            fmt::format("reference {}x{}x{} {}", s.m, s.n, s.k, kernels::gemm::name_of(e))));
    }
  }
}

// Compares the kernel with the GPU reference kernel on the device.
void expect_matches_gpu_reference(const Problem& p, Epilogue e, const GemmConfig& c, cudaStream_t stream) {
  const std::size_t mn = std::size_t(p.m) * p.n;
  cuda::DeviceMemory ref = cuda::device_alloc(mn * sizeof(float));
  kernels::gemm::gemm_bf16_reference(p.args(e), static_cast<float*>(ref.get()), stream);
  p.poison_d(stream);
  kernels::gemm::gemm_bf16_sm90(p.args(e), stream, c);
  const harness::Tolerance tol = gemm_tolerance(p.k);
  const kernels::gemm::CompareResult r =
      kernels::gemm::compare_bf16_f32(p.D(), static_cast<const float*>(ref.get()), mn, tol.atol, tol.rtol, stream);
  EXPECT_EQ(r.bad, 0) << p.m << "x" << p.n << "x" << p.k << " " << kernels::gemm::name_of(e) << " [" << c.describe()
                      << "]: max |err| " << r.max_abs << ", rel L2 " << r.rel_l2;
  EXPECT_LE(r.rel_l2, tol.max_rel_l2);
}

TEST(GemmKernel, ManyTilesPerPersistentCtaMatchGpuReference) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  // 9 x 12 tiles of 128 x 256 (ragged last row and column; an odd number of tile rows leaves the
  // second CTA of the last clusters past M) on a grid of #SMs: CTAs take 0 or 1 tiles; at
  // 3000 x 5000, 24 x 20 = 480 tiles, 3-4 per CTA, and a raster band of 5 rows leaves a short last band.
  for (const Shape& s : std::vector<Shape>{{1100, 3000, 200}, {3000, 5000, 328}}) {
    Problem p(s.m, s.n, s.k, stream.get());
    for (const GemmConfig& c : {GemmConfig{}, make_config(256, 4, 5, true, 1, false), make_config(128, 4, 3, true),
                                make_config(256, 3, 8, true, 2), make_config(128, 5, 3, true, 2),
                                make_config(128, 6, 5, true, 2, false)})
      for (Epilogue e : {Epilogue::none, Epilogue::bias_gelu}) expect_matches_gpu_reference(p, e, c, stream.get());
  }
}

TEST(GemmKernel, Size8192MatchesGpuReference) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  Problem p(8192, 8192, 8192, stream.get());
  expect_matches_gpu_reference(p, Epilogue::bias_gelu, GemmConfig{}, stream.get());
  expect_matches_gpu_reference(p, Epilogue::none, make_config(256, 3, 8, true, 2), stream.get());
  expect_matches_gpu_reference(p, Epilogue::bias, make_config(256, 4, 8, true, 1, false), stream.get());
}

TEST(GemmKernel, UnsupportedShapesAndConfigsSayWhy) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  Problem p(64, 64, 16, stream.get());
  GemmBf16Args k12 = p.args(Epilogue::none);
  k12.k = 12;
  EXPECT_NE(kernels::gemm::gemm_bf16_sm90_unsupported(k12).find("K must be a multiple of 8"), std::string::npos);
  EXPECT_THROW(kernels::gemm::gemm_bf16_sm90(k12, stream.get()), Error);

  GemmBf16Args misaligned = p.args(Epilogue::none);
  misaligned.a = p.A() + 1;
  misaligned.k = 8;
  EXPECT_NE(kernels::gemm::gemm_bf16_sm90_unsupported(misaligned).find("16-byte aligned"), std::string::npos);

  GemmBf16Args no_bias = p.args(Epilogue::bias);
  no_bias.bias = nullptr;
  EXPECT_NE(kernels::gemm::gemm_bf16_sm90_unsupported(no_bias).find("needs a bias"), std::string::npos);

  EXPECT_NE(kernels::gemm::gemm_bf16_sm90_unsupported(p.args(Epilogue::none), make_config(192, 4, 8, true))
                .find("tile_n"),
            std::string::npos);
  EXPECT_NE(kernels::gemm::gemm_bf16_sm90_unsupported(p.args(Epilogue::none), make_config(256, 8, 8, true))
                .find("shared memory"),
            std::string::npos);
  // 4 slots of 128 x 256 fit only without the 64 KB staging buffer.
  EXPECT_NE(kernels::gemm::gemm_bf16_sm90_unsupported(p.args(Epilogue::none), make_config(256, 4, 8, true))
                .find("tma_store = false"),
            std::string::npos);
  EXPECT_EQ(kernels::gemm::gemm_bf16_sm90_unsupported(p.args(Epilogue::none), make_config(256, 4, 8, true, 1, false)),
            "");
  GemmConfig cluster;
  cluster.cluster_m = 3;
  EXPECT_NE(kernels::gemm::gemm_bf16_sm90_unsupported(p.args(Epilogue::none), cluster).find("cluster"),
            std::string::npos);
  EXPECT_EQ(kernels::gemm::gemm_bf16_sm90_unsupported(p.args(Epilogue::none)), "");
}

}  // namespace
}  // namespace aisp::test
