// `aisp gemm validate` and `aisp gemm sweep`: the sm90 bf16 GEMM (src/kernels/gemm) against cuBLAS
// and a float64 CPU reference, and its configurations timed against cuBLAS; the fp8 kernel's rows
// and sweep (--fp8) are in gemm_fp8_command.cc.
//
//   validate  a fixed shape set -- tails and skinny shapes (M or N of 1..127, K not a multiple of the
//             64-wide k-slot, K < 64), mid-size and 8192^3 -- times the three epilogues. Per row:
//             max |error| and relative L2 error vs cuBLAS (cublasGemmEx bf16 x bf16, fp32 compute,
//             fp32 output, the epilogue applied in fp32 afterwards), vs float64 for small shapes,
//             and PASS / FAIL / UNSUPPORTED. Exit status 1 on any FAIL.
//   sweep     M = N = K in --sizes: every configuration is verified against cuBLAS, then timed with
//             CUDA events (median of 5 batches of --iters back-to-back calls), each right after a
//             cuBLAS timing (bf16 output) so that the ratio compares like clocks; the naive reference
//             kernel is timed up to 4096. Prints TFLOP/s; --out writes the best configuration per
//             size (and every timing) as JSON; a sweep without failures also writes it where the
//             compiler's max-autotune takes the best configs as extra candidates
//             (<kernel cache>/autotune/aisp_gemm_sweep.json).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cli/gemm_fp8_command.h"
#include "cli/tool_commands.h"
#include "core/error.h"

#if AISP_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "cli/gemm_timing.h"
#include "compiler/runtime/cpu_jit.h"
#include "compiler/runtime/cuda/aisp_gemm.h"
#include "compiler/runtime/cuda/nvrtc_jit.h"
#include "core/cuda/check.h"
#include "core/cuda/device_memory.h"
#include "core/dtype.h"
#include "core/gpu.h"
#include "core/random.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/gemm/gemm_reference.h"
#include "kernels/gemm/gemm_reference_host.h"
#endif

namespace aisp::cli {
namespace {

struct GemmOptions {
  // The kernel configuration under test (validate) -- defaults are GemmConfig's.
  int tile_n = 256;
  int stages = 3;
  int raster_group = 8;
  int cluster_m = 1;
  bool one_cta_per_tile = false;
  bool direct_store = false;  // epilogue without the shared-memory staging + TMA store
  bool quick = false;                       // validate: skip the 8192^3 rows (fp8: the two large shapes)
  bool fp8_only = false;                    // validate: only the fp8 rows
  bool skip_fp8 = false;                    // validate: only the bf16 rows
  bool fp8 = false;                         // sweep: the fp8 kernel at the ch14:fp8_gemm shapes instead
  std::vector<int> sizes = {2048, 4096, 8192};  // sweep
  int iters = 20;
  std::string out;
  std::string epilogue = "none";
};

#if AISP_WITH_CUDA

using kernels::gemm::bf16;
using kernels::gemm::CompareResult;
using kernels::gemm::Epilogue;
using kernels::gemm::GemmBf16Args;
using kernels::gemm::GemmConfig;

#define AISP_CUBLAS_CHECK(expr)                                                                            \
  do {                                                                                                     \
    const cublasStatus_t aisp_cublas_status_ = (expr);                                                     \
    if (aisp_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                      \
      throw Error(fmt::format("{} failed: {} ({})", #expr, cublasGetStatusName(aisp_cublas_status_),       \
                              cublasGetStatusString(aisp_cublas_status_)));                                \
  } while (0)

struct Cublas {
  cublasHandle_t handle = nullptr;
  explicit Cublas(cudaStream_t stream) {
    AISP_CUBLAS_CHECK(cublasCreate(&handle));
    AISP_CUBLAS_CHECK(cublasSetStream(handle, stream));
  }
  ~Cublas() { cublasDestroy(handle); }
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;

  // Row-major D (M, N) = A (M, K) . B (N, K)^T is column-major D^T (N, M) = B . A^T. cuBLAS (column
  // major) sees row-major B as a (K, N) matrix with ld K -- transposed with OP_T it is B -- and
  // row-major A as a (K, M) matrix with ld K, which is A^T as it stands (OP_N). `out_type`
  // CUDA_R_32F or CUDA_R_16BF; fp32 compute.
  void gemm(const bf16* a, const bf16* b, void* d, cudaDataType_t out_type, int m, int n, int k) {
    const float alpha = 1.0f, beta = 0.0f;
    AISP_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, b, CUDA_R_16BF, k, a,
                                   CUDA_R_16BF, k, &beta, d, out_type, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
};

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { AISP_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(s); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

// Tolerance of a bf16 GEMM output against an fp32 or float64 reference of the same inputs. The
// kernel rounds once to bf16 (at most 2^-9 relative); rtol 2^-8 leaves a factor 2. Accumulating in
// fp32 in another order moves a result by about K * 2^-24 * sqrt(K)/sqrt(K) ~ K * 6e-8 for
// unit-normal inputs (partial sums ~ sqrt(K), sqrt(K) random-walk steps); atol = 2e-3 + 5e-7 K is
// several times that. Much tighter than harness::tolerance_for(bf16), which is sized for eager
// pipelines that round 3-4 times.
struct GemmTolerance {
  double atol, rtol, max_rel_l2;
};
GemmTolerance gemm_tolerance(int k) { return {2e-3 + 5e-7 * double(k), 1.0 / 256.0, 4e-3}; }

struct Buffers {
  cuda::DeviceMemory a, b, bias, d, ref;
  Buffers(int m, int n, int k, cudaStream_t stream) {
    const std::size_t mk = std::size_t(m) * k, nk = std::size_t(n) * k, mn = std::size_t(m) * n;
    a = cuda::device_alloc(mk * sizeof(bf16));
    b = cuda::device_alloc(nk * sizeof(bf16));
    bias = cuda::device_alloc(std::size_t(n) * sizeof(bf16));
    d = cuda::device_alloc(mn * sizeof(bf16));
    ref = cuda::device_alloc(mn * sizeof(float));
    kernels::gemm::fill_normal_bf16(A(), mk, 11, stream);
    kernels::gemm::fill_normal_bf16(B(), nk, 12, stream);
    kernels::gemm::fill_normal_bf16(Bias(), std::size_t(n), 13, stream);
  }
  bf16* A() const { return static_cast<bf16*>(a.get()); }
  bf16* B() const { return static_cast<bf16*>(b.get()); }
  bf16* Bias() const { return static_cast<bf16*>(bias.get()); }
  bf16* D() const { return static_cast<bf16*>(d.get()); }
  float* Ref() const { return static_cast<float*>(ref.get()); }
};

std::vector<std::uint16_t> host_normal_bits(std::uint64_t seed, std::size_t count) {
  std::vector<std::uint16_t> v(count);
  for (std::size_t i = 0; i < count; ++i) v[i] = float_to_bf16_bits(rng::normal_at(seed, i));
  return v;
}

void require_hopper() {
  const GpuProbe probe = probe_gpus();
  if (!probe.available) throw Error(probe.reason);
  int device = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  const GpuProperties props = gpu_properties(device);
  if (props.compute_capability != 90)
    throw Error(fmt::format("aisp gemm: the kernel needs sm_90a (H100/H200); this GPU ({}) is sm_{}", props.name,
                            props.compute_capability));
}

Epilogue parse_epilogue(const std::string& name) {
  for (Epilogue e : {Epilogue::none, Epilogue::bias, Epilogue::bias_gelu})
    if (name == kernels::gemm::name_of(e)) return e;
  throw UsageError(fmt::format("unknown epilogue '{}': none, bias or bias_gelu", name));
}

GemmConfig config_from(const GemmOptions& o) {
  GemmConfig c;
  c.tile_n = o.tile_n;
  c.stages = o.stages;
  c.raster_group = o.raster_group;
  c.cluster_m = o.cluster_m;
  c.persistent = !o.one_cta_per_tile;
  c.tma_store = !o.direct_store;
  return c;
}

// ---- validate ---------------------------------------------------------------------------------

struct Shape {
  int m, n, k;
};

int run_validate(const GemmOptions& o, std::ostream& out) {
  require_hopper();
  if (o.fp8_only) return validate_fp8(o.quick, out) == 0 ? 0 : 1;
  const GemmConfig config = config_from(o);
  // Small shapes (also checked against float64): tails in M and N (1..127 and just past a tile),
  // K = 8 x odd, K < 64 (one partial k-slot), exact tiles.
  const std::vector<Shape> small = {{1, 1, 8},       {1, 256, 64},    {127, 1, 40},    {5, 300, 24},
                                    {64, 200, 264},  {128, 256, 64},  {130, 257, 136}, {255, 129, 520},
                                    {17, 100, 8},    {100, 17, 56},   {129, 383, 1000}, {200, 511, 72}};
  // Larger shapes (cuBLAS only): skinny M or N, ragged everything, square.
  std::vector<Shape> large = {{1, 4096, 4096},   {4096, 1, 4096},    {127, 8192, 2048}, {4096, 127, 1024},
                              {3000, 5000, 1000}, {2048, 2048, 2048}, {1536, 4608, 8200}};
  if (!o.quick) large.push_back({8192, 8192, 8192});
  // K % 8 != 0: TMA cannot describe the rows; reported as unsupported, never as a pass.
  const std::vector<Shape> unsupported = {{64, 64, 12}, {33, 17, 100}, {8, 8, 4}};

  Stream stream;
  Cublas cublas(stream.s);
  out << fmt::format("aisp gemm validate: sm90 kernel [{}] vs cuBLAS (fp32 output + fp32 epilogue) and float64\n",
                     config.describe());
  out << fmt::format("{:<18} {:<10} {:>12} {:>12} {:>12}  {}\n", "M x N x K", "epilogue", "max|err| cuB",
                     "relL2 cuB", "max|err| f64", "result");
  int failures = 0, passes = 0, unsupported_rows = 0;

  auto check = [&](const Shape& s, Epilogue e, bool with_f64) {
    Buffers buf(s.m, s.n, s.k, stream.s);
    GemmBf16Args args{buf.A(), buf.B(), buf.Bias(), buf.D(), s.m, s.n, s.k, e};
    const std::string shape = fmt::format("{}x{}x{}", s.m, s.n, s.k);
    if (std::string why = kernels::gemm::gemm_bf16_sm90_unsupported(args, config); !why.empty()) {
      out << fmt::format("{:<18} {:<10} {:>12} {:>12} {:>12}  UNSUPPORTED by the sm90 kernel: {}\n", shape,
                         kernels::gemm::name_of(e), "-", "-", "-", why);
      ++unsupported_rows;
      return;
    }
    const std::size_t mn = std::size_t(s.m) * s.n;
    AISP_CUDA_CHECK(cudaMemsetAsync(buf.D(), 0xFF, mn * sizeof(bf16), stream.s));  // NaN: unwritten fails
    kernels::gemm::gemm_bf16_sm90(args, stream.s, config);
    cublas.gemm(buf.A(), buf.B(), buf.Ref(), CUDA_R_32F, s.m, s.n, s.k);
    kernels::gemm::apply_epilogue_f32(buf.Ref(), buf.Bias(), s.m, s.n, e, stream.s);
    const GemmTolerance tol = gemm_tolerance(s.k);
    const CompareResult c = kernels::gemm::compare_bf16_f32(buf.D(), buf.Ref(), mn, tol.atol, tol.rtol, stream.s);
    bool ok = c.bad == 0 && c.rel_l2 <= tol.max_rel_l2;
    std::string f64 = "-";
    if (with_f64) {
      std::vector<std::uint16_t> d(mn);
      AISP_CUDA_CHECK(cudaMemcpy(d.data(), buf.D(), mn * sizeof(bf16), cudaMemcpyDeviceToHost));
      const auto a = host_normal_bits(11, std::size_t(s.m) * s.k);
      const auto b = host_normal_bits(12, std::size_t(s.n) * s.k);
      const auto bias = e == Epilogue::none ? std::vector<std::uint16_t>{} : host_normal_bits(13, std::size_t(s.n));
      const std::vector<double> ref =
          kernels::gemm::gemm_reference_f64(a, b, bias, e == Epilogue::bias_gelu, s.m, s.n, s.k);
      double max_err = 0;
      long long bad = 0;
      for (std::size_t i = 0; i < mn; ++i) {
        const double v = kernels::gemm::bf16_bits_to_double(d[i]);
        const double err = std::fabs(v - ref[i]);
        if (!std::isfinite(v) || !(err <= tol.atol + tol.rtol * std::fabs(ref[i]))) ++bad;
        if (std::isfinite(v)) max_err = std::max(max_err, err);
      }
      f64 = fmt::format("{:.3g}", max_err);
      ok = ok && bad == 0;
    }
    out << fmt::format("{:<18} {:<10} {:>12.3g} {:>12.3g} {:>12}  {}\n", shape, kernels::gemm::name_of(e), c.max_abs,
                       c.rel_l2, f64,
                       ok ? "PASS" : fmt::format("FAIL ({} of {} elements out of tolerance)", c.bad, c.count));
    ok ? ++passes : ++failures;
  };

  for (const Shape& s : small)
    for (Epilogue e : {Epilogue::none, Epilogue::bias, Epilogue::bias_gelu}) check(s, e, true);
  for (const Shape& s : large)
    for (Epilogue e : {Epilogue::none, Epilogue::bias, Epilogue::bias_gelu}) check(s, e, false);
  for (const Shape& s : unsupported) check(s, Epilogue::none, false);
  out << fmt::format("{} passed, {} failed, {} unsupported by the sm90 kernel\n", passes, failures, unsupported_rows);
  if (!o.skip_fp8) failures += validate_fp8(o.quick, out);
  return failures == 0 ? 0 : 1;
}

// ---- sweep ------------------------------------------------------------------------------------

std::vector<GemmConfig> sweep_configs() {
  std::vector<GemmConfig> configs;
  auto add = [&](int tile_n, int stages, int group, bool persistent, int cluster_m, bool tma_store) {
    GemmConfig c;
    c.tile_n = tile_n;
    c.stages = stages;
    c.raster_group = group;
    c.persistent = persistent;
    c.cluster_m = cluster_m;
    c.tma_store = tma_store;
    configs.push_back(c);
  };
  // The TMA-store epilogue's 128 x tile_n staging buffer takes the shared memory of one 128 x 256
  // slot (64 KB, so 3 stages instead of 4) or of one 128 x 128 slot (32 KB: 6 still fit).
  for (int cluster_m : {1, 2})
    for (bool tma_store : {true, false})
      for (int tile_n : {128, 256}) {
        const std::vector<int> stages = tile_n == 256 ? (tma_store ? std::vector<int>{3} : std::vector<int>{3, 4})
                                                      : (tma_store ? std::vector<int>{4, 6} : std::vector<int>{4, 5});
        // One CTA (cluster) per tile, the ladder rung before "persistent": raster order unused.
        add(tile_n, stages.front(), 8, false, cluster_m, tma_store);
        for (int s : stages)
          for (int group : {8, 16}) add(tile_n, s, group, true, cluster_m, tma_store);
      }
  return configs;
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

int run_sweep(const GemmOptions& o, std::ostream& out) {
  require_hopper();
  if (o.iters < 1) throw UsageError("--iters must be >= 1");
  if (o.fp8) return sweep_fp8(o.iters, out) == 0 ? 0 : 1;
  const Epilogue epilogue = parse_epilogue(o.epilogue);
  int device = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  const GpuProperties props = gpu_properties(device);
  Stream stream;
  Cublas cublas(stream.s);
  nlohmann::json report = {{"gpu", props.name}, {"date", utc_now()}, {"epilogue", o.epilogue}, {"sizes", nlohmann::json::array()}};
  out << fmt::format("aisp gemm sweep on {} ({}), epilogue {}, median of 5 x {} calls\n", props.name, utc_now(),
                     o.epilogue, o.iters);
  int failures = 0;
  for (int size : o.sizes) {
    if (size < 1) throw UsageError("--sizes must be positive");
    const int m = size, n = size, k = size;
    const double flops = 2.0 * m * double(n) * k;
    Buffers buf(m, n, k, stream.s);
    const std::size_t mn = std::size_t(m) * n;
    cublas.gemm(buf.A(), buf.B(), buf.Ref(), CUDA_R_32F, m, n, k);
    kernels::gemm::apply_epilogue_f32(buf.Ref(), buf.Bias(), m, n, epilogue, stream.s);
    const GemmTolerance tol = gemm_tolerance(k);

    // cuBLAS with bf16 output: what the GEMM alone costs in the vendor library (no epilogue).
    cuda::DeviceMemory cub_out = cuda::device_alloc(mn * sizeof(bf16));
    // Timed before and after the configurations (clocks drift as the GPU warms); the ratio uses the
    // faster of the two.
    auto time_cublas = [&] {
      return time_ms(stream.s, o.iters, [&] { cublas.gemm(buf.A(), buf.B(), cub_out.get(), CUDA_R_16BF, m, n, k); });
    };
    const double cublas_before_ms = time_cublas();
    double fastest_cublas_ms = cublas_before_ms;
    out << fmt::format("\n{0}x{0}x{0}: cuBLAS (cublasGemmEx bf16, fp32 compute, no epilogue) {1:.3f} ms  {2:.1f} TFLOP/s\n",
                       size, cublas_before_ms, flops / (cublas_before_ms * 1e-3) / 1e12);
    // The naive reference kernel (the ladder's first rung): one thread per output, fp32. Seconds
    // per call at 8192^3, so only timed up to 4096.
    if (size <= 4096) {
      GemmBf16Args args{buf.A(), buf.B(), buf.Bias(), buf.D(), m, n, k, epilogue};
      cuda::DeviceMemory f32 = cuda::device_alloc(mn * sizeof(float));
      const double ms = time_ms(stream.s, 1, [&] { kernels::gemm::gemm_bf16_reference(args, static_cast<float*>(f32.get()), stream.s); });
      out << fmt::format("  naive reference kernel (fp32 out)                          {:8.3f} ms  {:6.1f} TFLOP/s\n", ms,
                         flops / (ms * 1e-3) / 1e12);
    }
    nlohmann::json rows = nlohmann::json::array();
    double best_tflops = 0, best_ratio = 0;
    GemmConfig best;
    for (const GemmConfig& c : sweep_configs()) {
      GemmBf16Args args{buf.A(), buf.B(), buf.Bias(), buf.D(), m, n, k, epilogue};
      const std::string why = kernels::gemm::gemm_bf16_sm90_unsupported(args, c);
      if (!why.empty()) {
        out << fmt::format("  {:<72} unsupported: {}\n", c.describe(), why);
        continue;
      }
      AISP_CUDA_CHECK(cudaMemsetAsync(buf.D(), 0xFF, mn * sizeof(bf16), stream.s));
      kernels::gemm::gemm_bf16_sm90(args, stream.s, c);
      const CompareResult r = kernels::gemm::compare_bf16_f32(buf.D(), buf.Ref(), mn, tol.atol, tol.rtol, stream.s);
      if (r.bad != 0 || r.rel_l2 > tol.max_rel_l2) {
        out << fmt::format("  {:<72} FAIL verification ({} bad, rel L2 {:.3g}): not timed\n", c.describe(), r.bad, r.rel_l2);
        ++failures;
        continue;
      }
      // cuBLAS timed right before each configuration: a sustained 8192^3 run moves the clocks (power
      // limit) by 10-20% over seconds, so only adjacent timings make a fair ratio.
      const double adjacent_cublas_ms = time_cublas();
      fastest_cublas_ms = std::min(fastest_cublas_ms, adjacent_cublas_ms);
      const double ms = time_ms(stream.s, o.iters, [&] { kernels::gemm::gemm_bf16_sm90(args, stream.s, c); });
      const double tflops = flops / (ms * 1e-3) / 1e12;
      out << fmt::format("  {:<72} {:8.3f} ms  {:6.1f} TFLOP/s  {:5.2f}x cuBLAS (adjacent: {:.1f} TFLOP/s)\n",
                         c.describe(), ms, tflops, adjacent_cublas_ms / ms, flops / (adjacent_cublas_ms * 1e-3) / 1e12);
      rows.push_back({{"config", compiler::gemm_config_json(c)}, {"ms", ms}, {"tflops", tflops}, {"cublas_adjacent_ms", adjacent_cublas_ms},
                      {"vs_cublas", adjacent_cublas_ms / ms}});
      if (tflops > best_tflops) {
        best_tflops = tflops;
        best_ratio = adjacent_cublas_ms / ms;
        best = c;
      }
    }
    const double cublas_after_ms = time_cublas();
    fastest_cublas_ms = std::min(fastest_cublas_ms, cublas_after_ms);
    const double cublas_tflops = flops / (fastest_cublas_ms * 1e-3) / 1e12;
    out << fmt::format("  cuBLAS again after the sweep: {:.3f} ms  {:.1f} TFLOP/s\n", cublas_after_ms,
                       flops / (cublas_after_ms * 1e-3) / 1e12);
    if (best_tflops > 0)
      out << fmt::format("  best: {}  {:.1f} TFLOP/s = {:.2f}x the adjacent cuBLAS ({:.2f}x the fastest cuBLAS timing)\n",
                         best.describe(), best_tflops, best_ratio, best_tflops / cublas_tflops);
    report["sizes"].push_back({{"m", m}, {"n", n}, {"k", k}, {"cublas_tflops", cublas_tflops},
                               {"best", best_tflops > 0 ? compiler::gemm_config_json(best) : nlohmann::json()}, {"best_tflops", best_tflops}, {"best_vs_adjacent_cublas", best_ratio},
                               {"all", rows}});
  }
  const std::string text = report.dump(2) + "\n";
  if (!o.out.empty()) {
    compiler::write_atomically(o.out, text);
    out << fmt::format("\nwritten: {}\n", o.out);
  }
  // Where the compiler's max-autotune reads extra candidate configs (compiler/runtime/cuda/aisp_gemm.h).
  if (failures == 0) {
    const std::filesystem::path for_autotune =
        std::filesystem::path(compiler::default_nvrtc_jit().cache_dir()) / "autotune" / "aisp_gemm_sweep.json";
    std::filesystem::create_directories(for_autotune.parent_path());
    compiler::write_atomically(for_autotune, text);
    out << fmt::format("best configs for the compiler's max-autotune: {}\n", for_autotune.string());
  }
  return failures == 0 ? 0 : 1;
}

#else  // CPU-only build

[[noreturn]] int needs_cuda() {
  throw Error("aisp gemm needs a CUDA build of aisp (this one was built with AISP_ENABLE_CUDA=OFF)");
}
int run_validate(const GemmOptions&, std::ostream&) { needs_cuda(); }
int run_sweep(const GemmOptions&, std::ostream&) { needs_cuda(); }

#endif

void add_config_options(CLI::App* cmd, const std::shared_ptr<GemmOptions>& o) {
  cmd->add_option("--tile-n", o->tile_n, "output tile columns (128 or 256)")->capture_default_str();
  cmd->add_option("--stages", o->stages, "shared-memory ring depth")->capture_default_str();
  cmd->add_option("--raster-group", o->raster_group, "tile rows per raster band")->capture_default_str();
  cmd->add_option("--cluster-m", o->cluster_m, "CTAs per cluster along M sharing B by TMA multicast (1 or 2)")
      ->capture_default_str();
  cmd->add_flag("--one-cta-per-tile", o->one_cta_per_tile, "launch one CTA per tile instead of a persistent grid");
  cmd->add_flag("--direct-store", o->direct_store,
                "epilogue with direct global stores instead of shared-memory staging and TMA stores");
}

void add_gemm(CLI::App& app, const ToolCommandContext& ctx) {
  auto* gemm = app.add_subcommand("gemm", "the sm90 bf16 GEMM kernel: validate against cuBLAS and float64, sweep configs");
  gemm->require_subcommand(1);
  auto options = std::make_shared<GemmOptions>();

  auto* validate = gemm->add_subcommand(
      "validate",
      "bf16: tails, skinny and large shapes x 3 epilogues vs cuBLAS and float64; fp8: the same kind of shapes x "
      "per-tensor / block scaling vs float64 (dequantized and unquantized); exit 1 on any mismatch");
  add_config_options(validate, options);
  validate->add_flag("--quick", options->quick, "skip the 8192^3 rows (fp8: 8192x8192x4096, 4096x7168x16384)");
  validate->add_flag("--fp8-only", options->fp8_only, "only the fp8 kernel's rows");
  validate->add_flag("--no-fp8", options->skip_fp8, "only the bf16 kernel's rows");
  validate->callback([ctx, options] { ctx.choose([ctx, options] { return run_validate(*options, *ctx.out); }); });

  auto* sweep = gemm->add_subcommand("sweep", "verify then time kernel configs vs cuBLAS at M = N = K sizes");
  sweep->add_option("--sizes", options->sizes, "M = N = K values")->delimiter(',')->capture_default_str();
  sweep->add_option("--iters", options->iters, "calls per timed batch")->capture_default_str();
  sweep->add_option("--epilogue", options->epilogue, "none, bias or bias_gelu")->capture_default_str();
  sweep->add_option("--out", options->out, "write the best config per size (and every timing) as JSON here");
  sweep->add_flag("--fp8", options->fp8,
                  "sweep the fp8 kernel (per tensor, block) against cuBLASLt fp8 at 8192x8192x4096 and 4096x7168x16384");
  sweep->callback([ctx, options] { ctx.choose([ctx, options] { return run_sweep(*options, *ctx.out); }); });
}

const bool registered = register_tool_command(add_gemm);

}  // namespace
}  // namespace aisp::cli
