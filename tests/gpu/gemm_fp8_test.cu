// The fp8 GEMM pieces of src/kernels/gemm:
//   * the quantizers (per tensor, 1x128, 128x128) against a CPU computation of the same scales and
//     codes, on ragged shapes, plus e4m3's error bound;
//   * the float64 references against a CPU loop;
//   * the sm90 kernel, per tensor and block-scaled, over awkward shapes (M, N of 1..127, tails, K a
//     multiple of 16 but not of the 128-wide k-slot, K shorter than one slot, fewer k-slots than ring
//     stages) and configurations, against the float64 product of the dequantized codes (its own
//     error) and of the unquantized operands (the fp8 error bound);
//   * cuBLASLt's fp8 path against the same reference;
//   * what the kernel refuses, with the reason;
//   * the stream-K schedule on shapes where tiles really are split over CTAs (checked with the
//     schedule's own index math), two launches on one workspace (its flags back at 0), one tile
//     split over many CTAs, fewer k-slots than pieces, its refusals and `auto`;
//   * the ch14:fp8_gemm variants through the Variant interface, including the re-quantization after
//     the harness refills the inputs.
// Inputs are seeded unit normals generated on the device, regenerated bit-identically on the host.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "ch14_example_test_util.h"
#include "core/cuda/device_memory.h"
#include "core/error.h"
#include "core/gpu.h"
#include "kernels/gemm/cublaslt_gemm.h"
#include "kernels/gemm/fp8_quantize.h"
#include "kernels/gemm/gemm_fp8.h"
#include "kernels/gemm/gemm_fp8_reference.h"
#include "kernels/gemm/gemm_reference.h"
#include "kernels/gemm/gemm_sm90_stream_k_schedule.cuh"

namespace aisp::test {
namespace {

namespace g = kernels::gemm;
namespace sm90 = kernels::gemm::sm90;

constexpr std::uint64_t kSeedA = 201, kSeedB = 202;

#define AISP_REQUIRE_SM90()                                                                      \
  do {                                                                                           \
    const GpuProbe probe_ = probe_gpus();                                                        \
    if (!probe_.available) GTEST_SKIP() << probe_.reason;                                        \
    const int cc_ = gpu_properties(0).compute_capability;                                        \
    if (cc_ != 90) GTEST_SKIP() << "the sm90 fp8 GEMM needs an sm_90 GPU; this one is sm_" << cc_; \
  } while (0)

#define AISP_REQUIRE_GPU()                                          \
  do {                                                              \
    if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason; \
  } while (0)

template <class T>
std::vector<T> download(const void* p, std::size_t count) {
  std::vector<T> v(count);
  if (count) AISP_CUDA_CHECK(cudaMemcpy(v.data(), p, count * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

// bf16 operands A (m x k), B (n x k) on the device, unit normals; their host copies as floats.
struct Bf16Operands {
  int m, n, k;
  cuda::DeviceMemory a, b;
  Bf16Operands(int m_, int n_, int k_, cudaStream_t stream, std::uint64_t seed_shift = 0) : m(m_), n(n_), k(k_) {
    a = cuda::device_alloc(std::size_t(m) * k * sizeof(g::bf16));
    b = cuda::device_alloc(std::size_t(n) * k * sizeof(g::bf16));
    g::fill_normal_bf16(A(), std::size_t(m) * k, kSeedA + seed_shift, stream);
    g::fill_normal_bf16(B(), std::size_t(n) * k, kSeedB + seed_shift, stream);
  }
  g::bf16* A() const { return static_cast<g::bf16*>(a.get()); }
  g::bf16* B() const { return static_cast<g::bf16*>(b.get()); }
  static std::vector<float> host(std::uint64_t seed, std::int64_t count) {
    const std::vector<std::uint16_t> bits = normal_bf16_bits(seed, count);
    std::vector<float> v(bits.size());
    for (std::size_t i = 0; i < bits.size(); ++i) v[i] = bf16_bits_to_float(bits[i]);
    return v;
  }
};

float host_scale(float amax) { return amax > 0.0f ? amax / g::kE4m3Max : 1.0f; }

// e4m3 rounds to 3 mantissa bits: |value - code * scale| <= 2^-4 |value| in the normal range, and
// at most half the subnormal spacing (2^-10 scale) below it.
::testing::AssertionResult within_e4m3_rounding(float value, float code, float scale) {
  const double err = std::fabs(double(value) - double(code) * double(scale));
  if (err <= std::ldexp(1.0, -4) * std::fabs(value) + std::ldexp(1.0, -10) * scale * 1.0001)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "value " << value << " code " << code << " scale " << scale;
}

// ---- quantizers ----------------------------------------------------------------------------------

TEST(Fp8Quantize, PerTensorMatchesCpu) {
  AISP_REQUIRE_GPU();
  TestStream stream;
  const int m = 37, k = 272;
  Bf16Operands ops(m, 1, k, stream.get());
  cuda::DeviceMemory q = cuda::device_alloc(std::size_t(m) * k);
  cuda::DeviceMemory s = cuda::device_alloc(sizeof(float));
  g::quantize_fp8_per_tensor(ops.A(), std::size_t(m) * k, static_cast<g::fp8*>(q.get()),
                             static_cast<float*>(s.get()), stream.get());
  stream.sync();
  const std::vector<float> x = Bf16Operands::host(kSeedA, std::int64_t(m) * k);
  float amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  const float scale = download<float>(s.get(), 1)[0];
  EXPECT_EQ(scale, host_scale(amax));
  const std::vector<g::fp8> codes = download<g::fp8>(q.get(), x.size());
  int mismatches = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const g::fp8 expected(x[i] / scale);
    if (codes[i].__x != expected.__x && mismatches++ < 5) ADD_FAILURE() << "code " << i << " of " << x[i];
    EXPECT_TRUE(within_e4m3_rounding(x[i], float(codes[i]), scale)) << i;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Fp8Quantize, BlocksMatchCpu) {
  AISP_REQUIRE_GPU();
  TestStream stream;
  for (const auto& [rows, k] : std::vector<std::pair<int, int>>{{130, 272}, {1, 16}, {257, 128}, {5, 400}}) {
    Bf16Operands ops(rows, rows, k, stream.get());
    g::Fp8GemmOperands fp8(rows, rows, k, g::Fp8Scaling::block);
    fp8.quantize(ops.A(), ops.B(), stream.get());
    stream.sync();
    const int kb_count = (k + 127) / 128, rb_count = (rows + 127) / 128;
    const std::vector<float> a = Bf16Operands::host(kSeedA, std::int64_t(rows) * k);
    const std::vector<float> b = Bf16Operands::host(kSeedB, std::int64_t(rows) * k);
    const auto sa = download<float>(fp8.scales_a(), std::size_t(kb_count) * rows);
    const auto sb = download<float>(fp8.scales_b(), std::size_t(kb_count) * rb_count);
    const auto qa = download<g::fp8>(fp8.codes_a(), a.size());
    const auto qb = download<g::fp8>(fp8.codes_b(), b.size());
    int bad = 0;
    for (int r = 0; r < rows; ++r)
      for (int kb = 0; kb < kb_count; ++kb) {
        float amax = 0;
        for (int c = kb * 128; c < std::min(k, kb * 128 + 128); ++c) amax = std::max(amax, std::fabs(a[r * k + c]));
        const float s = sa[std::size_t(kb) * rows + r];
        if (s != host_scale(amax) && bad++ < 5) ADD_FAILURE() << "A scale row " << r << " block " << kb;
        for (int c = kb * 128; c < std::min(k, kb * 128 + 128); ++c)
          if (qa[r * k + c].__x != g::fp8(a[r * k + c] / s).__x && bad++ < 5) ADD_FAILURE() << "A code " << r << "," << c;
      }
    for (int rb = 0; rb < rb_count; ++rb)
      for (int kb = 0; kb < kb_count; ++kb) {
        float amax = 0;
        for (int r = rb * 128; r < std::min(rows, rb * 128 + 128); ++r)
          for (int c = kb * 128; c < std::min(k, kb * 128 + 128); ++c) amax = std::max(amax, std::fabs(b[r * k + c]));
        const float s = sb[std::size_t(rb) * kb_count + kb];
        if (s != host_scale(amax) && bad++ < 5) ADD_FAILURE() << "B scale block " << rb << "," << kb;
        for (int r = rb * 128; r < std::min(rows, rb * 128 + 128); ++r)
          for (int c = kb * 128; c < std::min(k, kb * 128 + 128); ++c) {
            if (qb[r * k + c].__x != g::fp8(b[r * k + c] / s).__x && bad++ < 5) ADD_FAILURE() << "B code " << r << "," << c;
            EXPECT_TRUE(within_e4m3_rounding(b[r * k + c], float(qb[r * k + c]), s));
          }
      }
    EXPECT_EQ(bad, 0) << rows << "x" << k;
  }
}

TEST(Fp8Quantize, AllZeroGroupGetsScaleOne) {
  AISP_REQUIRE_GPU();
  TestStream stream;
  cuda::DeviceMemory x = cuda::device_alloc(64 * sizeof(float));
  AISP_CUDA_CHECK(cudaMemset(x.get(), 0, 64 * sizeof(float)));
  cuda::DeviceMemory q = cuda::device_alloc(64);
  cuda::DeviceMemory s = cuda::device_alloc(sizeof(float));
  g::quantize_fp8_per_tensor(static_cast<const float*>(x.get()), 64, static_cast<g::fp8*>(q.get()),
                             static_cast<float*>(s.get()), stream.get());
  stream.sync();
  EXPECT_EQ(download<float>(s.get(), 1)[0], 1.0f);
  for (const g::fp8 c : download<g::fp8>(q.get(), 64)) EXPECT_EQ(float(c), 0.0f);
}

// ---- references ----------------------------------------------------------------------------------

TEST(Fp8Reference, MatchesCpuFloat64) {
  AISP_REQUIRE_GPU();
  TestStream stream;
  const int m = 70, n = 133, k = 400;
  Bf16Operands ops(m, n, k, stream.get());
  cuda::DeviceMemory ref = cuda::device_alloc(std::size_t(m) * n * sizeof(double));
  for (g::Fp8Scaling scaling : {g::Fp8Scaling::per_tensor, g::Fp8Scaling::block}) {
    g::Fp8GemmOperands fp8(m, n, k, scaling);
    fp8.quantize(ops.A(), ops.B(), stream.get());
    const g::GemmFp8Args args = fp8.args(nullptr);
    g::gemm_fp8_reference_f64(args, static_cast<double*>(ref.get()), stream.get());
    stream.sync();
    const auto qa = download<g::fp8>(fp8.codes_a(), std::size_t(m) * k);
    const auto qb = download<g::fp8>(fp8.codes_b(), std::size_t(n) * k);
    const auto sa = download<float>(fp8.scales_a(), g::fp8_a_scale_count(scaling, m, k));
    const auto sb = download<float>(fp8.scales_b(), g::fp8_b_scale_count(scaling, n, k));
    std::vector<double> expected(std::size_t(m) * n);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double acc = 0;
        for (int kk = 0; kk < k; ++kk)
          acc += g::fp8_dequantized_a(args, qa.data(), sa.data(), i, kk) *
                 g::fp8_dequantized_b(args, qb.data(), sb.data(), j, kk);
        expected[std::size_t(i) * n + j] = acc;
      }
    EXPECT_TRUE(all_close(download<double>(ref.get(), expected.size()), expected, {1e-13, 1e-12, 1e-12},
                          g::name_of(scaling)));
  }
  // The bf16 one.
  g::gemm_bf16_reference_f64(ops.A(), ops.B(), m, n, k, static_cast<double*>(ref.get()), stream.get());
  stream.sync();
  const std::vector<float> a = Bf16Operands::host(kSeedA, std::int64_t(m) * k);
  const std::vector<float> b = Bf16Operands::host(kSeedB, std::int64_t(n) * k);
  std::vector<double> expected(std::size_t(m) * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int kk = 0; kk < k; ++kk) acc += double(a[i * k + kk]) * double(b[j * k + kk]);
      expected[std::size_t(i) * n + j] = acc;
    }
  EXPECT_TRUE(all_close(download<double>(ref.get(), expected.size()), expected, {1e-13, 1e-12, 1e-12}, "bf16"));
}

// ---- the kernel ----------------------------------------------------------------------------------

struct Shape {
  int m, n, k;
};

// Output tiles of the cooperative kernel (128 rows x tile_n).
int sm90_tiles(const Shape& s, int tile_n) { return ((s.m + 127) / 128) * ((s.n + tile_n - 1) / tile_n); }

// Stream-K scratch as a caller keeps it: allocated and zero-filled once, reused by every launch.
struct Workspace {
  cuda::DeviceMemory memory;
  std::size_t bytes = 0;
  explicit Workspace(std::size_t size) : bytes(size) {
    if (bytes == 0) return;
    memory = cuda::device_alloc(bytes);
    AISP_CUDA_CHECK(cudaMemset(memory.get(), 0, bytes));
  }
};

// Runs the kernel on one shape and scaling and checks both error bounds. The launch gets a
// workspace of the size the configuration asks for (`shared`: that one, else a fresh one), so
// `auto` runs stream-K where it pays, as for a caller that follows the contract.
void expect_kernel_matches(const Shape& s, g::Fp8Scaling scaling, const g::GemmFp8Config& config,
                           TestStream& stream, Workspace* shared = nullptr, std::uint64_t seed_shift = 0) {
  const std::string what = fmt::format("{}x{}x{} {} [{}]", s.m, s.n, s.k, g::name_of(scaling), config.describe());
  Bf16Operands ops(s.m, s.n, s.k, stream.get(), seed_shift);
  g::Fp8GemmOperands fp8(s.m, s.n, s.k, scaling);
  fp8.quantize(ops.A(), ops.B(), stream.get());
  const std::size_t mn = std::size_t(s.m) * s.n;
  cuda::DeviceMemory d = cuda::device_alloc(mn * sizeof(g::bf16));
  cuda::DeviceMemory ref_q = cuda::device_alloc(mn * sizeof(double));
  cuda::DeviceMemory ref_bf16 = cuda::device_alloc(mn * sizeof(double));
  g::GemmFp8Args args = fp8.args(static_cast<g::bf16*>(d.get()));
  Workspace own_workspace(shared ? 0 : g::gemm_fp8_sm90_workspace_size(args, config));
  Workspace& workspace = shared ? *shared : own_workspace;
  args.workspace = workspace.memory.get();
  args.workspace_bytes = workspace.bytes;
  ASSERT_LE(g::gemm_fp8_sm90_workspace_size(args, config), workspace.bytes) << what;
  ASSERT_EQ(g::gemm_fp8_sm90_unsupported(args, config), "") << what;
  g::gemm_fp8_reference_f64(args, static_cast<double*>(ref_q.get()), stream.get());
  g::gemm_bf16_reference_f64(ops.A(), ops.B(), s.m, s.n, s.k, static_cast<double*>(ref_bf16.get()), stream.get());
  AISP_CUDA_CHECK(cudaMemsetAsync(d.get(), 0xFF, mn * sizeof(g::bf16), stream.get()));
  g::gemm_fp8_sm90(args, stream.get(), config);
  stream.sync();
  const double rms = std::sqrt(double(s.k));
  const g::Fp8Tolerance own = g::fp8_kernel_tolerance(rms, s.k, scaling),
                         e2e = g::fp8_end_to_end_tolerance(rms, s.k, scaling);
  const g::CompareResult q = g::compare_bf16_f64(args.d, static_cast<const double*>(ref_q.get()), mn, own.atol,
                                                 own.rtol, stream.get());
  const g::CompareResult e = g::compare_bf16_f64(args.d, static_cast<const double*>(ref_bf16.get()), mn, e2e.atol,
                                                 e2e.rtol, stream.get());
  EXPECT_EQ(q.bad, 0) << what << " vs dequantized: max |err| " << q.max_abs << ", rel L2 " << q.rel_l2;
  EXPECT_LE(q.rel_l2, own.max_rel_l2) << what;
  EXPECT_EQ(e.bad, 0) << what << " vs bf16: max |err| " << e.max_abs << ", rel L2 " << e.rel_l2;
  EXPECT_LE(e.rel_l2, e2e.max_rel_l2) << what;
}

g::GemmFp8Config config(int tile_n, int stages, int group = 8, bool persistent = true, bool tma_store = true,
                        int cluster_m = 1) {
  g::GemmFp8Config c;
  c.cluster_m = cluster_m;
  c.tile_n = tile_n;
  c.stages = stages;
  c.raster_group = group;
  c.persistent = persistent;
  c.tma_store = tma_store;
  return c;
}

// The same configuration on the ping-pong schedule (64 x tile_n tiles, one per consumer warpgroup).
g::GemmFp8Config pingpong(g::GemmFp8Config c) {
  c.schedule = g::Fp8Schedule::pingpong;
  return c;
}

// M, N of 1..127 and just past a tile; K = 16 (shorter than one 128-wide slot), 16 x odd, not a
// multiple of 128, and more / fewer k-slots than ring stages.
const std::vector<Shape> kSmallShapes = {{1, 1, 16},     {1, 256, 128},  {127, 1, 48},    {5, 300, 32},
                                         {64, 200, 272}, {128, 256, 128}, {130, 257, 144}, {255, 129, 528},
                                         {100, 17, 16},  {129, 383, 1008}, {200, 511, 80}};

TEST(Fp8Gemm, PerTensorSmallShapesMatchFloat64) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (const Shape& s : kSmallShapes)
    for (const g::GemmFp8Config& c :
         {g::GemmFp8Config{},  // the default: CTA pairs
          config(0, 0), config(128, 2), config(256, 3, 1), config(128, 5, 2, false), config(256, 4, 8, true, false),
          // CTA pairs sharing B (odd tile-row counts leave the second CTA past M): both epilogues,
          // persistent and one cluster per tile
          config(256, 3, 8, true, true, 2), config(128, 2, 1, true, false, 2), config(128, 4, 8, false, true, 2),
          // ping-pong: default depth, a 2-slot ring (a warpgroup skips the other's slots across
          // phase flips), the direct epilogue, one CTA per tile (warpgroup 1 idle)
          pingpong(config(256, 0)), pingpong(config(128, 0, 3)), pingpong(config(256, 2, 1)),
          pingpong(config(128, 3, 8, true, false)), pingpong(config(256, 4, 8, false))})
      expect_kernel_matches(s, g::Fp8Scaling::per_tensor, c, stream);
}

TEST(Fp8Gemm, BlockScaledSmallShapesMatchFloat64) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (const Shape& s : kSmallShapes)
    for (const g::GemmFp8Config& c :
         {config(0, 0), config(128, 2), config(128, 3, 1, false), config(128, 6, 8, true, false),
          pingpong(config(0, 0)), pingpong(config(128, 2, 1)), pingpong(config(128, 5, 8, true, false)),
          pingpong(config(128, 3, 8, false))})
      expect_kernel_matches(s, g::Fp8Scaling::block, c, stream);
}

// Many tiles per persistent CTA (ragged raster bands), and a shape with K = 16384.
TEST(Fp8Gemm, LargerShapesMatchFloat64) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (g::Fp8Scaling scaling : {g::Fp8Scaling::per_tensor, g::Fp8Scaling::block}) {
    expect_kernel_matches({1000, 3000, 1040}, scaling, config(0, 0, 3), stream);
    expect_kernel_matches({1000, 3001, 1040}, scaling, config(0, 0, 3), stream);  // odd N: direct stores
    expect_kernel_matches({2200, 2500, 512}, scaling, config(128, 4, 16), stream);
    expect_kernel_matches({256, 384, 16384}, scaling, {}, stream);
  }
  // Clusters of 2 on many tiles per cluster: 8 (even) and 9 (odd) tile rows, ragged raster bands,
  // TMA-store (staging reused across a CTA's tiles) and odd N (direct stores).
  for (const Shape& s : std::vector<Shape>{{1000, 3000, 1040}, {1100, 3001, 512}, {2200, 2500, 512}}) {
    expect_kernel_matches(s, g::Fp8Scaling::per_tensor, config(256, 3, 3, true, true, 2), stream);
    expect_kernel_matches(s, g::Fp8Scaling::per_tensor, config(128, 6, 5, true, true, 2), stream);
  }
}

// Ping-pong on many tiles per CTA: 64-row tiles, so 2200 rows are 35 tile rows (the last one 24
// rows); with 20 or 10 tile columns the CTAs get 2..6 tiles, odd counts included (warpgroup 0 takes
// one tile more), ragged raster bands, both epilogues, K = 16384.
TEST(Fp8Gemm, PingPongLargerShapesMatchFloat64) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (g::Fp8Scaling scaling : {g::Fp8Scaling::per_tensor, g::Fp8Scaling::block}) {
    const int wide = scaling == g::Fp8Scaling::per_tensor ? 256 : 128;
    expect_kernel_matches({2200, 2500, 512}, scaling, pingpong(config(128, 0, 16)), stream);
    expect_kernel_matches({2200, 2500, 528}, scaling, pingpong(config(wide, 3, 3)), stream);  // K % 128 != 0
    expect_kernel_matches({1000, 3001, 1040}, scaling, pingpong(config(wide, 0, 8)), stream);  // odd N: direct
    expect_kernel_matches({4100, 4100, 256}, scaling, pingpong(config(0, 0)), stream);
    expect_kernel_matches({256, 384, 16384}, scaling, pingpong(config(0, 0)), stream);
  }
}

// Small tail shapes for compute-sanitizer (memcheck, racecheck): both scalings, both epilogues
// (N % 8 == 0 takes TMA stores), a short ring, and more tiles than SMs (a CTA's second tile reuses
// the staging buffer: 1100 x 2200 for 128-wide tiles, 1100 x 4400 -- 162 tiles of 128 x 256 --
// for the per-tensor default's).
TEST(Fp8Gemm, SanitizerShapes) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (const Shape& s : std::vector<Shape>{
           {5, 300, 32}, {130, 264, 400}, {255, 129, 528}, {200, 136, 1008}, {1100, 2200, 64}, {1100, 4400, 64}}) {
    expect_kernel_matches(s, g::Fp8Scaling::per_tensor, config(256, 2), stream);
    expect_kernel_matches(s, g::Fp8Scaling::per_tensor, config(128, 2, 8, true, false), stream);
    expect_kernel_matches(s, g::Fp8Scaling::block, config(128, 2), stream);
    expect_kernel_matches(s, g::Fp8Scaling::per_tensor, config(256, 2, 8, true, true, 2), stream);
  }
}

// The same shapes on the ping-pong schedule (a test of its own so that racecheck can look at the
// new schedule alone): the turn barriers, a warpgroup skipping the other's slots in a 2-slot ring,
// both staging halves in use at once, more 64-row tiles than SMs.
TEST(Fp8Gemm, SanitizerShapesPingPong) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (const Shape& s :
       std::vector<Shape>{{5, 300, 32}, {130, 264, 400}, {255, 129, 528}, {200, 136, 1008}, {1100, 2200, 64}}) {
    expect_kernel_matches(s, g::Fp8Scaling::per_tensor, pingpong(config(256, 2)), stream);
    expect_kernel_matches(s, g::Fp8Scaling::per_tensor, pingpong(config(128, 2, 8, true, false)), stream);
    expect_kernel_matches(s, g::Fp8Scaling::block, pingpong(config(128, 2)), stream);
  }
}

TEST(Fp8Gemm, RefusesWhatItCannotRun) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (int k : {24, 100, 8, 1}) {
    g::Fp8GemmOperands fp8(64, 64, k, g::Fp8Scaling::per_tensor);
    cuda::DeviceMemory d = cuda::device_alloc(64 * 64 * sizeof(g::bf16));
    const g::GemmFp8Args args = fp8.args(static_cast<g::bf16*>(d.get()));
    const std::string why = g::gemm_fp8_sm90_unsupported(args);
    EXPECT_NE(why.find("K must be a multiple of 16"), std::string::npos) << k << ": " << why;
    EXPECT_THROW(g::gemm_fp8_sm90(args, stream.get()), Error) << k;
  }
  g::Fp8GemmOperands fp8(64, 64, 128, g::Fp8Scaling::block);
  cuda::DeviceMemory d = cuda::device_alloc(64 * 64 * sizeof(g::bf16));
  g::GemmFp8Args args = fp8.args(static_cast<g::bf16*>(d.get()));
  EXPECT_EQ(g::gemm_fp8_sm90_unsupported(args), "");
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args, config(256, 0)).find("block scaling needs tile_n 128"),
            std::string::npos);
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args, config(128, 20)).find("shared memory"), std::string::npos);
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args, config(192, 0)), "");
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args, config(128, 0, 8, true, true, 2)).find("per-tensor scaling only"),
            std::string::npos);
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args, config(128, 0, 8, true, true, 3)).find("cluster_m must be 1 or 2"),
            std::string::npos);
  g::Fp8GemmOperands fp8_pt(64, 64, 128, g::Fp8Scaling::per_tensor);
  const g::GemmFp8Args pt = fp8_pt.args(static_cast<g::bf16*>(d.get()));
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(pt, pingpong(config(256, 0, 8, true, true, 2))).find("ping-pong"),
            std::string::npos);
  // 5 ping-pong slots of 64 x 256 (40 KB each) and the 64 KB staging buffer exceed 227 KB.
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(pt, pingpong(config(256, 5))).find("5 stages of 64x256x128"),
            std::string::npos);
  EXPECT_EQ(g::gemm_fp8_sm90_unsupported(pt, pingpong(config(256, 4))), "");
  // cluster_m 0 (the default) takes pairs only where they are built: every schedule and scaling runs.
  g::GemmFp8Config by_default;
  EXPECT_EQ(by_default.cluster_m, 0);
  EXPECT_EQ(g::gemm_fp8_sm90_unsupported(pt, by_default), "");
  EXPECT_EQ(g::gemm_fp8_sm90_unsupported(args, by_default), "");  // block scaling: single CTAs
  by_default.schedule = g::Fp8Schedule::pingpong;
  EXPECT_EQ(g::gemm_fp8_sm90_unsupported(pt, by_default), "");
  EXPECT_EQ(g::gemm_fp8_sm90_unsupported(args, by_default), "");
  by_default.schedule = g::Fp8Schedule::cooperative;
  by_default.stream_k = g::Fp8StreamK::on;  // stream-K is built for single CTAs
  EXPECT_GT(g::gemm_fp8_sm90_workspace_size(pt, by_default), 0u);
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(pt, by_default).find("needs a workspace"), std::string::npos);
  args.b_scale = nullptr;
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args).find("scale"), std::string::npos);
  EXPECT_THROW(g::gemm_fp8_sm90(args, stream.get()), Error);
}

// One shape's quantized operands, D, and the float64 product of the dequantized codes (the bound of
// fp8_kernel_tolerance applies against it), for the cuBLASLt tests below.
struct QuantizedCase {
  Shape s;
  g::Fp8Scaling scaling;
  Bf16Operands ops;
  g::Fp8GemmOperands fp8;
  std::size_t mn;
  cuda::DeviceMemory d, ref;
  g::GemmFp8Args args;
  QuantizedCase(const Shape& shape, g::Fp8Scaling sc, TestStream& stream)
      : s(shape), scaling(sc), ops(s.m, s.n, s.k, stream.get()), fp8(s.m, s.n, s.k, sc),
        mn(std::size_t(s.m) * s.n) {
    fp8.quantize(ops.A(), ops.B(), stream.get());
    d = cuda::device_alloc(mn * sizeof(g::bf16));
    ref = cuda::device_alloc(mn * sizeof(double));
    args = fp8.args(static_cast<g::bf16*>(d.get()));
    g::gemm_fp8_reference_f64(args, static_cast<double*>(ref.get()), stream.get());
  }
};

// Runs `gemm` (bound to c's operands) into a poisoned D and checks it against c's reference.
void expect_within_kernel_bound(g::CublasLtGemm& gemm, const QuantizedCase& c, TestStream& stream) {
  AISP_CUDA_CHECK(cudaMemsetAsync(c.d.get(), 0xFF, c.mn * sizeof(g::bf16), stream.get()));
  gemm.run(stream.get());
  const g::Fp8Tolerance own = g::fp8_kernel_tolerance(std::sqrt(double(c.s.k)), c.s.k, c.scaling);
  const g::CompareResult r = g::compare_bf16_f64(c.args.d, static_cast<const double*>(c.ref.get()), c.mn, own.atol,
                                                 own.rtol, stream.get());
  EXPECT_EQ(r.bad, 0) << c.s.m << "x" << c.s.n << "x" << c.s.k << " " << gemm.describe() << ": max |err| "
                      << r.max_abs << ", rel L2 " << r.rel_l2;
  EXPECT_LE(r.rel_l2, own.max_rel_l2) << gemm.describe();
}

// cuBLASLt's fp8 path (per tensor) on the same codes, against the same reference and bound.
TEST(Fp8Gemm, CublasLtFp8MatchesFloat64) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (const Shape& s : std::vector<Shape>{{256, 384, 512}, {130, 272, 1008}}) {
    const QuantizedCase c(s, g::Fp8Scaling::per_tensor, stream);
    for (bool fast : {true, false}) {
      g::CublasLtGemmArgs lt = g::cublaslt_fp8_args(c.args);
      EXPECT_TRUE(lt.fp8_fast_accum && !lt.fp8_block_scales);  // per tensor: fast accumulation by default
      lt.fp8_fast_accum = fast;
      g::CublasLtGemm gemm(lt);
      expect_within_kernel_bound(gemm, c, stream);
    }
  }
}

// cuBLASLt's block-scaled fp8 (VEC128 / BLK128x128 scale modes) on gemm_fp8.h's block layouts, against
// the same reference and the block bound: shapes with M and N tails and with K of 4 to 128 blocks;
// fast accumulation is refused (cuBLASLt promotes block-scaled sums in fp32 only).
// The wrapper refuses K that is not a multiple of 512 (cuBLASLt computed wrong sums at K = 272 and
// 640 from the unpadded scale layout) and cuBLASLt refuses M = 130: either refusal must say that the
// block scales are the cause, and every other shape must be right.
TEST(Fp8Gemm, CublasLtFp8BlockScalesMatchFloat64) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  const std::vector<Shape> shapes = {{256, 384, 512}, {1000, 3000, 1024}, {130, 272, 2048}, {384, 256, 16384},
                                     {200, 264, 272}, {256, 384, 640},    {128, 128, 1040}, {200, 264, 512}};
  for (const Shape& s : shapes) {
    const bool must_refuse = s.k % 512 != 0;
    const bool may_refuse = must_refuse || s.m % 8 != 0;
    const QuantizedCase c(s, g::Fp8Scaling::block, stream);
    g::CublasLtGemmArgs lt = g::cublaslt_fp8_args(c.args);
    EXPECT_TRUE(lt.fp8_block_scales && !lt.fp8_fast_accum);  // block: fp32 promotion
    lt.fp8_fast_accum = true;
    EXPECT_THROW(g::CublasLtGemm{lt}, Error);  // fast accumulation is refused with block scales
    lt.fp8_fast_accum = false;
    std::unique_ptr<g::CublasLtGemm> made;
    try {
      made = std::make_unique<g::CublasLtGemm>(lt);
    } catch (const Error& e) {
      const std::string why = e.what();
      EXPECT_TRUE(may_refuse) << s.m << "x" << s.n << "x" << s.k << ": " << why;
      EXPECT_NE(why.find("block scales"), std::string::npos) << why;
      if (must_refuse) EXPECT_NE(why.find("multiple of 512"), std::string::npos) << why;
      std::printf("cuBLASLt block scales refuse %dx%dx%d: %s\n", s.m, s.n, s.k, why.c_str());
      continue;
    }
    EXPECT_FALSE(must_refuse) << s.m << "x" << s.n << "x" << s.k;
    EXPECT_NE(made->describe().find("block scales"), std::string::npos) << made->describe();
    expect_within_kernel_bound(*made, c, stream);
  }
}

// ---- stream-K ------------------------------------------------------------------------------------

g::GemmFp8Config with_stream_k(g::GemmFp8Config c, g::Fp8StreamK mode = g::Fp8StreamK::on) {
  c.stream_k = mode;
  return c;
}

int sm_count() { return gpu_properties(0).sm_count; }

g::GemmFp8Config on_default() { return with_stream_k(config(0, 0)); }

// Whether the stream-K schedule of this launch splits at least one tile over several CTAs (the
// kernel's own index math, one CTA per SM): the tests below assert it, so they cannot quietly
// degrade into whole-tile runs.
bool splits_a_tile(const Shape& s, int tile_n) {
  const int tiles = sm90_tiles(s, tile_n);
  const sm90::StreamK sk = sm90::make_stream_k(tiles, (s.k + 127) / 128, sm_count());
  for (int cta = 0; cta < sk.grid; ++cta) {
    sm90::WorkCursor c = sm90::first_work(sk, cta);
    sm90::WorkPiece w;
    while (sm90::next_work(sk, c, w))
      if (w.role == sm90::kPieceFinisher) return true;
  }
  return false;
}

// Shapes whose tiles get split on a 132-SM GPU (and on any other, checked per shape): fewer tiles
// than CTAs (all split), data-parallel waves plus a split last wave (2200 x 2500: 360 tiles of 128 x
// 128, 96 split over 132 CTAs; 4100 x 4100: 561 tiles of 128 x 256 with 2 k-slots each, 33 split into
// single k-slots, most CTAs' ranges empty or one k-slot), one tile split
// over 32 CTAs (K 4096), K % 128 != 0, odd N (direct stores), M and N tails.
const std::vector<Shape> kStreamKShapes = {{128, 256, 4096}, {130, 257, 1008}, {1000, 3000, 1040},
                                           {1000, 3001, 1040}, {2200, 2500, 528}, {4100, 4100, 256}};

TEST(Fp8GemmStreamK, SplitTilesMatchFloat64) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (const Shape& s : kStreamKShapes)
    for (const g::GemmFp8Config& c : {with_stream_k(config(0, 0)), with_stream_k(config(128, 2)),
                                      with_stream_k(config(256, 4, 3, true, false)), with_stream_k(config(128, 6, 16))}) {
      EXPECT_TRUE(splits_a_tile(s, c.tile_n == 128 ? 128 : 256)) << s.m << "x" << s.n << "x" << s.k;
      expect_kernel_matches(s, g::Fp8Scaling::per_tensor, c, stream);
    }
  // auto where the last wave is short (2200 x 2500 in 128 x 128 tiles: 360 = 2 x 132 + 96 on 132 SMs).
  const Shape short_wave{2200, 2500, 528};
  if (sm90::stream_k_pays(sm90_tiles(short_wave, 128), sm_count())) {
    g::GemmFp8Args probe;
    probe.m = short_wave.m;
    probe.n = short_wave.n;
    probe.k = short_wave.k;
    const g::GemmFp8Config automatic = with_stream_k(config(128, 0), g::Fp8StreamK::automatic);
    EXPECT_GT(g::gemm_fp8_sm90_workspace_size(probe, automatic), 0u);
    expect_kernel_matches(short_wave, g::Fp8Scaling::per_tensor, automatic, stream);
  }
  // One tile of one k-slot (nothing to split: one CTA has it, the others none), and a tiny K.
  for (const Shape& s : std::vector<Shape>{{100, 200, 16}, {1, 1, 16}, {5, 300, 32}})
    expect_kernel_matches(s, g::Fp8Scaling::per_tensor, with_stream_k(config(0, 0)), stream);
}

// Two launches on one workspace with different operands, then a third of another shape: each is
// right, and each leaves every flag at 0 (the finishers reset them; no memset in between), while
// the partial tiles were really written.
TEST(Fp8GemmStreamK, ConsecutiveLaunchesShareAWorkspace) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  const int sms = sm_count();
  Workspace workspace(sm90::stream_k_workspace_bytes(sms, 256));
  const std::size_t flag_count = sm90::stream_k_flag_bytes(sms) / 4;
  auto expect_flags_clear = [&](const std::string& when) {
    const auto flags = download<std::uint32_t>(workspace.memory.get(), flag_count);
    int set = 0;
    for (std::uint32_t f : flags) set += f != 0;
    EXPECT_EQ(set, 0) << "flags left set " << when;
  };
  const g::GemmFp8Config c = with_stream_k(config(0, 0));
  expect_kernel_matches({2200, 2500, 528}, g::Fp8Scaling::per_tensor, c, stream, &workspace, 0);
  expect_flags_clear("after the first launch");
  expect_kernel_matches({2200, 2500, 528}, g::Fp8Scaling::per_tensor, c, stream, &workspace, 17);
  expect_flags_clear("after the second launch");
  expect_kernel_matches({1000, 3000, 1040}, g::Fp8Scaling::per_tensor, c, stream, &workspace, 33);
  expect_flags_clear("after the third launch");
  const auto partials = download<float>(static_cast<std::uint8_t*>(workspace.memory.get()) + flag_count * 4,
                                        std::size_t(sms) * 128 * 256);
  int written = 0;
  for (float v : partials) written += v != 0.0f;
  EXPECT_GT(written, 0) << "no contributor wrote a partial tile";
}

TEST(Fp8GemmStreamK, AutoWorkspaceAndRefusals) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  const int sms = sm_count();
  // The size query needs only the shape and the configuration.
  g::GemmFp8Args big;
  big.m = 8192;
  big.n = 8192;
  big.k = 4096;
  const g::GemmFp8Config automatic = with_stream_k(config(0, 0), g::Fp8StreamK::automatic);
  EXPECT_EQ(g::gemm_fp8_sm90_workspace_size(big), 0u);  // the default is off
  const bool pays = sm90::stream_k_pays(64 * 32, sms);
  EXPECT_EQ(g::gemm_fp8_sm90_workspace_size(big, automatic), pays ? sm90::stream_k_workspace_bytes(sms, 256) : 0u);
  EXPECT_EQ(g::gemm_fp8_sm90_workspace_size(big, with_stream_k(config(0, 0), g::Fp8StreamK::off)), 0u);
  EXPECT_EQ(g::gemm_fp8_sm90_workspace_size(big, with_stream_k(config(128, 0))), sm90::stream_k_workspace_bytes(sms, 128));
  EXPECT_EQ(g::gemm_fp8_sm90_workspace_size(big, with_stream_k(pingpong(config(0, 0)), g::Fp8StreamK::automatic)),
            0u);  // auto: not built there
  big.m = 128 * sms;
  big.n = 256;  // full waves: auto stays off
  EXPECT_EQ(g::gemm_fp8_sm90_workspace_size(big, automatic), 0u);
  EXPECT_EQ(g::gemm_fp8_sm90_workspace_size(big, on_default()), sm90::stream_k_workspace_bytes(sms, 256));
  big.scaling = g::Fp8Scaling::block;
  EXPECT_EQ(g::gemm_fp8_sm90_workspace_size(big, with_stream_k(config(0, 0), g::Fp8StreamK::automatic)), 0u);

  g::Fp8GemmOperands pt(600, 600, 256, g::Fp8Scaling::per_tensor);
  cuda::DeviceMemory d = cuda::device_alloc(600 * 600 * sizeof(g::bf16));
  g::GemmFp8Args args = pt.args(static_cast<g::bf16*>(d.get()));
  const g::GemmFp8Config on = with_stream_k(config(0, 0));
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args, on).find("needs a workspace of"), std::string::npos);
  EXPECT_THROW(g::gemm_fp8_sm90(args, stream.get(), on), Error);
  Workspace small(1024);
  args.workspace = small.memory.get();
  args.workspace_bytes = small.bytes;
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args, on).find("needs a workspace of"), std::string::npos);
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args, with_stream_k(config(0, 0, 8, true, true, 2))).find("stream_k on"),
            std::string::npos);
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args, with_stream_k(config(0, 0, 8, false))).find("stream_k on"),
            std::string::npos);
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(args, with_stream_k(pingpong(config(0, 0)))).find("stream_k on"),
            std::string::npos);
  // auto with too small a workspace runs whole tiles: accepted.
  EXPECT_EQ(g::gemm_fp8_sm90_unsupported(args, with_stream_k(config(0, 0), g::Fp8StreamK::automatic)), "");
  g::Fp8GemmOperands blk(600, 600, 256, g::Fp8Scaling::block);
  g::GemmFp8Args block_args = blk.args(static_cast<g::bf16*>(d.get()));
  EXPECT_NE(g::gemm_fp8_sm90_unsupported(block_args, on).find("per-tensor scaling"), std::string::npos);
}

// Small stream-K shapes for compute-sanitizer (memcheck, racecheck): split tiles with TMA-store and
// direct epilogues, a 2-slot ring, one tile over many CTAs.
TEST(Fp8Gemm, SanitizerShapesStreamK) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  for (const Shape& s : std::vector<Shape>{{130, 264, 400}, {255, 129, 528}, {128, 256, 2048}, {600, 1000, 256}}) {
    EXPECT_TRUE(splits_a_tile(s, 256)) << s.m << "x" << s.n << "x" << s.k;
    expect_kernel_matches(s, g::Fp8Scaling::per_tensor, with_stream_k(config(256, 2)), stream);
    expect_kernel_matches(s, g::Fp8Scaling::per_tensor, with_stream_k(config(128, 2, 8, true, false)), stream);
  }
}

// ---- the example ---------------------------------------------------------------------------------

// Every ch14:fp8_gemm variant as the harness runs it, at a small awkward shape, against the example's
// reference and tolerance; then the inputs are refilled in place and the variant, told so, must
// compute on the new values (its quantized copies are redone, not reused).
// Every variant of `example` at M x N x K against its reference, before and after the harness
// refills the inputs (the fp8 variants re-quantize in inputs_refilled).
void expect_every_variant_matches(const harness::Example& example, int m, int n, int k, TestStream& stream) {
  DeviceTensor a(DType::bf16, {m, k}), b(DType::bf16, {n, k}), d(DType::bf16, {m, n}), ref(DType::f64, {m, n});
  const std::vector<harness::Tensor> inputs = {a.tensor(), b.tensor()};
  auto fill = [&](std::uint64_t seed) {
    a.upload(normal_bf16_bits(seed, std::int64_t(m) * k));
    b.upload(normal_bf16_bits(seed + 1, std::int64_t(n) * k, 1.0 / std::sqrt(double(k))));
  };
  auto check = [&](const std::string& what) {
    example.reference(inputs, ref.tensor(), stream.get());
    stream.sync();
    EXPECT_TRUE(all_close(bf16_bits_to_double(d.download<std::uint16_t>()), ref.download<double>(),
                          example.workload.tolerance, fmt::format("{} at K {}", what, k)));
  };
  for (const harness::VariantInfo& info : example.variants) {
    fill(300);
    std::unique_ptr<harness::Variant> variant = info.make();
    if (info.name == "optimized:cublaslt_fp8_block" && k % 512 != 0) {
      // The wrapper refuses K that is not a multiple of 512 (CublasLtFp8BlockScalesMatchFloat64).
      EXPECT_THROW(variant->setup(inputs, d.tensor(), stream.get()), Error) << "K " << k;
      continue;
    }
    variant->setup(inputs, d.tensor(), stream.get());
    d.poison();
    variant->run(stream.get());
    stream.sync();
    check(info.name + " (first fill)");
    fill(400);
    variant->inputs_refilled(inputs, stream.get());
    d.poison();
    variant->run(stream.get());
    stream.sync();
    check(info.name + " (after the refill)");
    variant->teardown();
  }
}

TEST(Fp8GemmExample, EveryVariantMatchesReferenceAndFollowsRefills) {
  AISP_REQUIRE_SM90();
  TestStream stream;
  const harness::Example* example = find_example("ch14:fp8_gemm");
  ASSERT_NE(example, nullptr);
  ASSERT_NE(find_example("ch14:fp8_gemm_deepseek"), nullptr);
  // K = 272 (a partial 128-K block) and 512 (which cuBLASLt's block-scaled variant takes too).
  for (const int k : {272, 512}) expect_every_variant_matches(*example, 200, 264, k, stream);
}

}  // namespace
}  // namespace aisp::test
