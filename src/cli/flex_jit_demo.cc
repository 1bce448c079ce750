// CUDA builds only (the CLI globs every .cc; flex_command.cc calls this under AISP_WITH_CUDA).
#if AISP_WITH_CUDA
#include "cli/flex_jit_demo.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "cli/flex_demo_table.h"
#include "cli/flex_elements.h"
#include "compiler/runtime/cuda/flex_jit.h"
#include "core/cuda/check.h"
#include "core/cuda/device_memory.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/random.h"

namespace aisp::cli {
namespace {

namespace fx = compiler::flex;
namespace kf = kernels::flex;

constexpr int kBiasRadius = 128;

// One named generator's tensor on both sides.
struct Generated {
  fx::CaptureSpec spec;
  std::vector<std::int64_t> shape;
  std::vector<float> f32;
  std::vector<std::int32_t> i32;
  cuda::DeviceMemory device;

  const void* host() const { return spec.dtype == fx::CaptureDType::f32 ? static_cast<const void*>(f32.data()) : i32.data(); }
  std::size_t bytes() const { return f32.size() * 4 + i32.size() * 4; }
};

std::vector<Generated> generate(int heads, int seq) {
  std::vector<Generated> g(3);
  g[0].spec = {"slopes", fx::CaptureDType::f32, 1};
  g[0].shape = {heads};
  for (int h = 0; h < heads; ++h) g[0].f32.push_back(kf::alibi_slope(h, heads));
  g[1].spec = {"doc", fx::CaptureDType::i32, 1};
  g[1].shape = {seq};
  for (std::uint64_t i = 0, id = 0; int(g[1].i32.size()) < seq; ++i, ++id) {  // as the document pattern
    const int len = 512 + int(rng::bits_at(0xD0C5u, i) % 3585u);
    for (int t = 0; t < len && int(g[1].i32.size()) < seq; ++t) g[1].i32.push_back(std::int32_t(id));
  }
  g[2].spec = {"bias", fx::CaptureDType::f32, 2};
  g[2].shape = {heads, 2 * kBiasRadius + 1};
  for (std::int64_t i = 0; i < std::int64_t(heads) * (2 * kBiasRadius + 1); ++i)
    g[2].f32.push_back(0.5f * rng::normal_at(0xB1A5u, std::uint64_t(i)));
  for (Generated& t : g) {
    t.device = cuda::device_alloc(t.bytes());
    AISP_CUDA_CHECK(cudaMemcpy(t.device.get(), t.host(), t.bytes(), cudaMemcpyHostToDevice));
  }
  return g;
}

// n elements of the call's type (bf16 or fp16) as doubles.
std::vector<double> download_elements(const kf::bf16* p, std::int64_t n, kf::FlexDtype dtype, cudaStream_t stream) {
  std::vector<std::uint16_t> bits(static_cast<std::size_t>(n));
  AISP_CUDA_CHECK(cudaMemcpyAsync(bits.data(), p, bits.size() * 2, cudaMemcpyDeviceToHost, stream));
  AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> d(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) d[i] = flex_element_value(bits[i], dtype);
  return d;
}

// Relative L2 of `out` against the float64 reference on the sampled query rows; nan if not finite.
double sampled_rel_l2(const kf::FlexAttentionArgs& a, const std::vector<double>& q, const std::vector<double>& k,
                      const std::vector<double>& v, const std::vector<double>& out, const fx::HostMod& score,
                      const fx::HostMod* mask) {
  const int D = a.head_dim, group = a.q_heads / a.kv_heads, samples = std::min(a.q_len, 16);
  const double scale = a.scale != 0 ? a.scale : 1.0 / std::sqrt(double(D));
  double num = 0, den = 0;
  bool finite = true;
  std::vector<double> p(static_cast<std::size_t>(a.kv_len)), o(static_cast<std::size_t>(D));
  for (int b = 0; b < a.batch; ++b)
    for (int h = 0; h < a.q_heads; ++h)
      for (int r = 0; r < samples; ++r) {
        const int i = samples == 1 ? 0 : int(std::int64_t(r) * (a.q_len - 1) / (samples - 1));
        const std::size_t row = (std::size_t(b) * a.q_heads + h) * a.q_len + std::size_t(i);
        const double* qi = &q[row * D];
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = 0; j < a.kv_len; ++j) {
          double t = -std::numeric_limits<double>::infinity();
          if (mask == nullptr || mask->mask(b, h, i, j)) {
            const double* kj = &k[((std::size_t(b) * a.kv_heads + h / group) * a.kv_len + j) * D];
            double dot = 0;
            for (int d = 0; d < D; ++d) dot += qi[d] * kj[d];
            t = score.score(dot * scale, b, h, i, j);
          }
          p[std::size_t(j)] = t;
          mx = std::max(mx, t);
        }
        std::fill(o.begin(), o.end(), 0.0);
        if (mx != -std::numeric_limits<double>::infinity()) {
          double sum = 0;
          for (double& t : p) sum += (t = std::exp(t - mx));
          for (int j = 0; j < a.kv_len; ++j) {
            if (p[std::size_t(j)] == 0) continue;
            const double w = p[std::size_t(j)] / sum;
            const double* vj = &v[((std::size_t(b) * a.kv_heads + h / group) * a.kv_len + j) * D];
            for (int d = 0; d < D; ++d) o[std::size_t(d)] += w * vj[d];
          }
        }
        for (int d = 0; d < D; ++d) {
          const double g = out[row * D + std::size_t(d)];
          finite = finite && std::isfinite(g);
          num += (g - o[std::size_t(d)]) * (g - o[std::size_t(d)]);
          den += o[std::size_t(d)] * o[std::size_t(d)];
        }
      }
  if (!finite) return std::numeric_limits<double>::quiet_NaN();
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Fraction of kept (q, kv) pairs, from every 1 / stride-th query row of the (b, h) the mask reads
// (exact when stride is 1): the host evaluator is ~100x slower than the GPU, so at 8k it samples.
double element_density(const fx::HostMod& mask, const kf::FlexAttentionArgs& a, int* stride_out) {
  const int nb = mask.expr().uses_batch() ? a.batch : 1, nh = mask.expr().uses_head() ? a.q_heads : 1;
  const double budget = 16e6;  // mask evaluations
  const int stride = std::max(1, int(std::ceil(double(nb) * nh * a.q_len * double(a.kv_len) / budget)));
  std::int64_t kept = 0, all = 0;
  for (int b = 0; b < nb; ++b)
    for (int h = 0; h < nh; ++h)
      for (int q = 0; q < a.q_len; q += stride)
        for (int kv = 0; kv < a.kv_len; ++kv, ++all) kept += mask.mask(b, h, q, kv) ? 1 : 0;
  *stride_out = stride;
  return all > 0 ? double(kept) / double(all) : 0.0;
}

const char* from_name(compiler::NvrtcResult::From f) {
  switch (f) {
    case compiler::NvrtcResult::From::memory: return "memory cache";
    case compiler::NvrtcResult::From::disk: return "disk cache";
    default: return "NVRTC";
  }
}

}  // namespace

int run_flex_jit_row(const FlexJitRowRequest& r, cudaStream_t stream, std::ostream& out) {
  kf::FlexAttentionArgs a = r.args;
  std::vector<Generated> gen = generate(a.q_heads, a.kv_len);
  std::vector<fx::CaptureSpec> specs;
  std::vector<fx::HostCapture> host;
  std::vector<fx::DeviceCapture> device;
  for (const Generated& g : gen) {
    specs.push_back(g.spec);
    host.push_back({g.spec, g.shape, g.host()});
    device.push_back({g.spec, g.shape, g.device.get()});
  }

  const auto t0 = std::chrono::steady_clock::now();
  // The kernel the demo was asked for (--kernel): automatic is fa3 on sm_90, the mma.sync kernel
  // elsewhere; mma_sync compiles the mods into it on sm_90 too.
  const fx::JitFlexAttention attn(r.score_expr, r.mask_expr, specs, a.head_dim, fx::default_flex_nvrtc_jit(), true,
                                  a.dtype, a.kernel);
  const double setup_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const fx::JitFlexAttention::Bound mods = attn.bind(device);
  const kf::BlockMask bm = attn.mask() ? attn.create_block_mask(mods, a.batch, a.q_heads, a.q_len, a.kv_len, stream)
                                       : kf::dense_block_mask(1, 1, a.q_len, a.kv_len, false, stream);
  const double block_density = bm.download(stream).block_density();
  const fx::HostMod score(attn.score(), host);
  std::unique_ptr<fx::HostMod> mask;
  if (attn.mask()) mask = std::make_unique<fx::HostMod>(*attn.mask(), host);
  int stride = 1;
  const double density = mask ? element_density(*mask, a, &stride) : 1.0;

  const std::int64_t n_out = std::int64_t(a.batch) * a.q_heads * a.q_len * a.head_dim;
  cuda::DeviceMemory y = cuda::device_alloc(std::size_t(n_out) * 2);
  a.out = static_cast<kf::bf16*>(y.get());
  a.lse = nullptr;
  AISP_CUDA_CHECK(cudaMemsetAsync(y.get(), 0xFF, std::size_t(n_out) * 2, stream));  // NaN: unwritten fails

  std::string check = "skip";
  double rel_l2 = NAN;
  int failures = 0;
  if (r.verify) {
    attn.run(a, bm, mods, stream);
    const std::int64_t n_kv = std::int64_t(a.batch) * a.kv_heads * a.kv_len * a.head_dim;
    const auto q = download_elements(a.q, n_out, a.dtype, stream), k = download_elements(a.k, n_kv, a.dtype, stream),
               v = download_elements(a.v, n_kv, a.dtype, stream), o = download_elements(a.out, n_out, a.dtype, stream);
    rel_l2 = sampled_rel_l2(a, q, k, v, o, score, mask.get());
    const bool ok = std::isfinite(rel_l2) && rel_l2 <= 1e-2;
    check = ok ? "PASS" : "FAIL";
    failures += ok ? 0 : 1;
  }
  cudaEvent_t start = nullptr, stop = nullptr;
  AISP_CUDA_CHECK(cudaEventCreate(&start));
  AISP_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) attn.run(a, bm, mods, stream);
  std::vector<float> ms;
  for (int i = 0; i < r.iters; ++i) {
    AISP_CUDA_CHECK(cudaEventRecord(start, stream));
    attn.run(a, bm, mods, stream);
    AISP_CUDA_CHECK(cudaEventRecord(stop, stream));
    AISP_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    AISP_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  const double t = ms[ms.size() / 2] * 1e-3;
  const double dense_flops = 4.0 * a.batch * a.q_heads * double(a.q_len) * a.kv_len * a.head_dim;
  const FlexShape shape{a.batch, a.q_heads, a.kv_heads, a.q_len, a.kv_len, a.head_dim, a.lse != nullptr};
  const FlexFloors floors = flex_forward_floors(shape, block_density, r.copy_bytes_per_s, r.gemm_flops_per_s);
  out << flex_demo_row({"jit", block_density, density, t, dense_flops, rel_l2, check, &floors});
  out << fmt::format("jit: score_mod '{}', mask_mod '{}'\n", attn.score().text(),
                     attn.mask() ? attn.mask()->text() : "(none: every element)");
  const fx::JitCompileInfo& info = attn.info();
  out << fmt::format("jit: setup {:.0f} ms (parse + compile + load); {} forward from {}{}, block-mask builder {}\n",
                     setup_ms, kf::flex_kernel_name(attn.kernel()), from_name(info.forward_from),
                     info.forward_from == compiler::NvrtcResult::From::build ? fmt::format(" in {:.0f} ms", info.forward_ms) : "",
                     attn.mask() ? fmt::format("from {}{}", from_name(info.block_mask_from),
                                               info.block_mask_from == compiler::NvrtcResult::From::build
                                                   ? fmt::format(" in {:.0f} ms", info.block_mask_ms)
                                                   : "")
                                 : "not needed");
  out << fmt::format("jit: source {}\n", info.forward_source);
  if (r.verify)
    out << fmt::format("jit: verified on {} sampled query rows per (batch, head) against the float64 CPU reference\n",
                       std::min(a.q_len, 16));
  if (stride > 1) out << fmt::format("jit: element density from every {}th query row\n", stride);
  if (r.builtin_out != nullptr && r.builtin_ms > 0) {
    const auto mine = download_elements(a.out, n_out, a.dtype, stream),
               theirs = download_elements(r.builtin_out, n_out, a.dtype, stream);
    std::int64_t differ = 0;
    double max_diff = 0;
    for (std::size_t i = 0; i < mine.size(); ++i) {
      differ += mine[i] != theirs[i] ? 1 : 0;
      max_diff = std::max(max_diff, std::abs(mine[i] - theirs[i]));
    }
    out << fmt::format("jit vs built-in {}: time {:.3f} / {:.3f} ms = {:.3f}x; outputs: {} of {} elements differ "
                       "(max |diff| {:.3g})\n",
                       r.builtin_name, t * 1e3, r.builtin_ms, t * 1e3 / r.builtin_ms, differ, mine.size(), max_diff);
  }
  return failures;
}

}  // namespace aisp::cli

#endif  // AISP_WITH_CUDA
