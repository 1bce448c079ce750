// `aisp flex demo`: the FlexAttention forward kernel (src/kernels/attention) over a set of mask
// patterns at one shape. Per pattern: the block mask is built on the GPU (untimed), the kernel is
// verified against the float64 GPU reference (relative L2 of the bf16 output), then timed with CUDA
// events (median of --iters calls after 3 warm-up calls). Prints the block density (tiles visited /
// all tiles), the element density (pairs kept / all pairs), the time, the effective TFLOP/s
// (4 B H S^2 D x element density / time) and the dense-equivalent TFLOP/s (4 B H S^2 D / time);
// then the forward's floor (cli/flex_floors.h: the larger of its bytes at the measured copy
// bandwidth and its visited tiles' FLOPs at the measured bf16 GEMM rate, both from `aisp gpu info`'s
// cache) and the time over it, marked m or c by the floor that bounds it.
// --score adds a score_mod to every pattern (alibi: the paper's slopes; soft_cap: cap 30), the same
// one in the kernel and in the reference, to measure what a mod costs.
// --score-expr / --mask-expr add a row `jit` for mods written as expressions and JIT-compiled by
// NVRTC into the fa3 kernel, or the mma.sync one (--kernel mma_sync, and the automatic choice off
// sm_90) (flex_jit_demo.h: the captured tensors the expressions may index, the verification); with
// one built-in pattern in the same run, its output and time are compared.
// --kv-heads n runs GQA / MQA: n heads of k and v shared by --heads / n query heads each (forward,
// backward, references and floors alike).
// --dtype fp16 runs everything on fp16 inputs (every kernel: --kernel and the backward take it).
// --backward adds a row `<pattern> bwd` per pattern: the fused backward (dQ, dK, dV from the
// forward's out and lse and a random dO), verified against the float64 GPU backward reference
// (relative L2 of each gradient, the largest printed), timed the same way; its TFLOP/s count 2.5x
// the forward's FLOPs (five GEMMs of the forward's size against two). With --kernel mma_sync the
// backward runs on its mma.sync main kernel too (the fallback off sm_90); else the automatic choice.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cli/tool_commands.h"
#include "core/error.h"

#if AISP_WITH_CUDA
#include <cuda_runtime.h>

#include <cuda_fp16.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <tuple>
#include <utility>

#include "core/cuda/check.h"
#include "core/cuda/device_memory.h"
#include "core/dtype.h"
#include "core/gpu.h"
#include "core/random.h"
#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_backward.h"
#include "kernels/attention/flex_backward_eager.h"
#include "kernels/attention/flex_eager.h"
#include "cli/flex_demo_table.h"
#include "cli/flex_elements.h"
#include "cli/flex_jit_demo.h"
#include "harness/gpu_info.h"
#endif

namespace aisp::cli {
namespace {

struct FlexOptions {
  int batch = 1, heads = 16, seq = 8192, head_dim = 128;
  int kv_heads = 0;  // 0: as many as heads; else GQA / MQA (heads % kv_heads == 0)
  int iters = 10;
  bool verify = true;
  std::string kernel = "auto";
  std::string schedule = "auto";
  int head_group = 0;
  int backward_head_group = 0;  // FlexBackwardArgs::head_group
  std::string dtype = "bf16";
  bool backward = false;
  std::string score = "none";
  std::string score_expr, mask_expr;  // JIT mods (flex_jit_demo.h); empty: none
  std::vector<std::string> patterns = {"dense", "causal", "sliding_128", "sliding_256", "sliding_512",
                                       "sliding_causal_256", "prefix_lm", "document", "random_blocks"};
};

#if AISP_WITH_CUDA

namespace flex = kernels::flex;

struct Pattern {
  flex::BuiltinMask device_mask, host_mask;
  std::vector<std::int32_t> doc;
  std::vector<std::uint8_t> keep;
  cuda::DeviceMemory d_doc, d_keep;
};

// The pattern's mask, with its captured tensors on both sides.
std::unique_ptr<Pattern> make_pattern(const std::string& name, int seq) {
  auto p = std::make_unique<Pattern>();
  auto both = [&](flex::BuiltinMask m) { p->device_mask = p->host_mask = m; };
  if (name == "dense") {
    both(flex::mask_none());
  } else if (name == "causal") {
    both(flex::mask_causal());
  } else if (name.rfind("sliding_causal_", 0) == 0) {
    both(flex::mask_sliding_causal(std::stoi(name.substr(15))));
  } else if (name.rfind("sliding_", 0) == 0) {
    both(flex::mask_sliding_window(std::stoi(name.substr(8))));
  } else if (name == "prefix_lm") {
    both(flex::mask_prefix_lm(seq / 4));
  } else if (name == "document" || name == "document_spans") {  // documents of 512..4096 tokens, fixed seed
    int id = 0;
    for (std::uint64_t i = 0; int(p->doc.size()) < seq; ++i, ++id) {
      const int len = 512 + int(rng::bits_at(0xD0C5u, i) % 3585u);
      for (int t = 0; t < len && int(p->doc.size()) < seq; ++t) p->doc.push_back(id);
    }
    // document: the ids (Document, two loads per element of a partial tile); document_spans: the
    // same documents as each token's [start, end) (DocumentSpans, an interval per row). The host
    // reference keeps the ids either way.
    const std::vector<std::int32_t> device_values = name == "document" ? p->doc : flex::document_spans_of(p->doc);
    p->d_doc = cuda::device_alloc(device_values.size() * sizeof(std::int32_t));
    AISP_CUDA_CHECK(cudaMemcpy(p->d_doc.get(), device_values.data(), device_values.size() * sizeof(std::int32_t),
                               cudaMemcpyHostToDevice));
    p->host_mask = flex::mask_document(p->doc.data(), 0, false);
    const auto* d = static_cast<const std::int32_t*>(p->d_doc.get());
    p->device_mask = name == "document" ? flex::mask_document(d, 0, false) : flex::mask_document_spans(d, 0, false);
  } else if (name == "random_blocks") {  // 128 x 64 tiles kept with p = 0.25, fixed seed
    const int nq = (seq + flex::kBlockQ - 1) / flex::kBlockQ, nkv = (seq + flex::kBlockKv - 1) / flex::kBlockKv;
    p->keep.resize(std::size_t(nq) * nkv);
    for (std::size_t i = 0; i < p->keep.size(); ++i) p->keep[i] = rng::uniform_at(0xB10Cu, i) < 0.25f;
    p->d_keep = cuda::device_alloc(p->keep.size());
    AISP_CUDA_CHECK(cudaMemcpy(p->d_keep.get(), p->keep.data(), p->keep.size(), cudaMemcpyHostToDevice));
    p->host_mask = flex::mask_block_sparse(p->keep.data(), nkv, flex::kBlockQ, flex::kBlockKv);
    p->device_mask = flex::mask_block_sparse(static_cast<const std::uint8_t*>(p->d_keep.get()), nkv,
                                             flex::kBlockQ, flex::kBlockKv);
  } else {
    throw UsageError(fmt::format(
        "unknown pattern '{}': dense, causal, sliding_<w>, sliding_causal_<w>, prefix_lm, document, "
        "document_spans, random_blocks",
        name));
  }
  return p;
}

// Host: fraction of (q, kv) pairs kept (the mask ignores b and h for every demo pattern).
double element_density(const flex::BuiltinMask& m, int seq) {
  std::int64_t kept = 0;
  for (int q = 0; q < seq; ++q)
    for (int kv = 0; kv < seq; ++kv) kept += m(0, 0, q, kv) ? 1 : 0;
  return double(kept) / (double(seq) * seq);
}

// Relative L2 error of n device elements (the element type) against n float64 device values; nan
// if any element is not finite.
double device_rel_l2(const void* got_dev, const double* want_dev, std::int64_t n, flex::FlexDtype dtype,
                     cudaStream_t stream) {
  std::vector<std::uint16_t> got(static_cast<std::size_t>(n));
  std::vector<double> want(static_cast<std::size_t>(n));
  AISP_CUDA_CHECK(cudaMemcpyAsync(got.data(), got_dev, got.size() * 2, cudaMemcpyDeviceToHost, stream));
  AISP_CUDA_CHECK(cudaMemcpyAsync(want.data(), want_dev, want.size() * 8, cudaMemcpyDeviceToHost, stream));
  AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = flex_element_value(got[i], dtype);
    if (!std::isfinite(g)) return NAN;
    num += (g - want[i]) * (g - want[i]);
    den += want[i] * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Median of `iters` timed calls of f on `stream` after 3 warm-up calls, in seconds.
template <class F>
double median_seconds(F&& f, int iters, cudaStream_t stream, cudaEvent_t start, cudaEvent_t stop) {
  for (int i = 0; i < 3; ++i) f();
  std::vector<float> ms;
  for (int i = 0; i < iters; ++i) {
    AISP_CUDA_CHECK(cudaEventRecord(start, stream));
    f();
    AISP_CUDA_CHECK(cudaEventRecord(stop, stream));
    AISP_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    AISP_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2] * 1e-3;
}

int run_demo(const FlexOptions& o, std::ostream& out) {
  if (o.head_dim != 64 && o.head_dim != 128) throw UsageError("--head-dim must be 64 or 128");
  if (o.seq < 1 || o.batch < 1 || o.heads < 1 || o.iters < 1)
    throw UsageError("--seq, --batch, --heads and --iters must be >= 1");
  const GpuProbe probe = probe_gpus();
  if (o.dtype != "bf16" && o.dtype != "fp16") throw UsageError("--dtype must be bf16 or fp16");
  // Every option checked before the GPU is touched: a typo is named as such, also on a machine
  // without a GPU, and costs no allocation.
  flex::FlexKernel kernel = flex::FlexKernel::automatic;
  if (o.kernel == "mma_sync")
    kernel = flex::FlexKernel::mma_sync;
  else if (o.kernel == "wgmma")
    kernel = flex::FlexKernel::wgmma;
  else if (o.kernel == "fa3")
    kernel = flex::FlexKernel::fa3;
  else if (o.kernel != "auto")
    throw UsageError("--kernel must be auto, mma_sync, wgmma or fa3");
  flex::FlexSchedule schedule = flex::FlexSchedule::automatic;
  if (o.schedule == "per_row")
    schedule = flex::FlexSchedule::per_row;
  else if (o.schedule == "persistent")
    schedule = flex::FlexSchedule::persistent;
  else if (o.schedule != "auto")
    throw UsageError("--schedule must be auto, per_row or persistent");
  if (o.kv_heads < 0 || (o.kv_heads > 0 && o.heads % o.kv_heads != 0))
    throw UsageError(fmt::format("--kv-heads must be 0 (as many as --heads) or divide --heads = {}", o.heads));
  const int kv_heads = o.kv_heads == 0 ? o.heads : o.kv_heads;
  if (o.head_group < 0 || o.head_group > o.heads)
    throw UsageError(fmt::format("--head-group must be 0 (automatic) or in [1, --heads = {}]", o.heads));
  if (o.backward_head_group < 0)
    throw UsageError("--backward-head-group must be 0 (automatic) or >= 1");
  const flex::FlexDtype dtype = o.dtype == "fp16" ? flex::FlexDtype::fp16 : flex::FlexDtype::bf16;
  if (!probe.available) throw Error("aisp flex demo needs a GPU: " + probe.reason);
  const GpuProperties props = gpu_properties(0);

  // n: elements of q, out, dout, dq; n_kv: of k, v, dk, dv (fewer with GQA / MQA).
  const std::int64_t n = std::int64_t(o.batch) * o.heads * o.seq * o.head_dim;
  const std::int64_t n_kv = std::int64_t(o.batch) * kv_heads * o.seq * o.head_dim;
  cuda::DeviceMemory q = cuda::device_alloc(std::size_t(n) * 2), k = cuda::device_alloc(std::size_t(n_kv) * 2),
                     v = cuda::device_alloc(std::size_t(n_kv) * 2), y = cuda::device_alloc(std::size_t(n) * 2);
  cuda::DeviceMemory ref;
  if (o.verify) ref = cuda::device_alloc(std::size_t(n) * sizeof(double));
  // The backward's buffers (--backward): dO (seeded normal), lse, dQ, dK, dV, workspace; the
  // reference gradients in float64.
  cuda::DeviceMemory dout, lse, dq, dk, dv, workspace, ref_dk, ref_dv;
  if (o.backward) {
    dout = cuda::device_alloc(std::size_t(n) * 2);
    lse = cuda::device_alloc(std::size_t(n / o.head_dim) * sizeof(float));
    dq = cuda::device_alloc(std::size_t(n) * 2);
    dk = cuda::device_alloc(std::size_t(n_kv) * 2);
    dv = cuda::device_alloc(std::size_t(n_kv) * 2);
    if (o.verify) {
      ref_dk = cuda::device_alloc(std::size_t(n_kv) * sizeof(double));
      ref_dv = cuda::device_alloc(std::size_t(n_kv) * sizeof(double));
    }
  }
  {  // seeded normal inputs, rounded to the element type on the host
    std::vector<std::uint16_t> h;
    std::uint64_t seed = 7;
    for (const auto& [t, count] : {std::pair{&q, n}, std::pair{&k, n_kv}, std::pair{&v, n_kv}, std::pair{&dout, n}}) {
      if (!*t) continue;
      h.resize(static_cast<std::size_t>(count));
      for (std::int64_t i = 0; i < count; ++i)
        h[std::size_t(i)] = flex_element_bits(rng::normal_at(seed, std::uint64_t(i)), dtype);
      AISP_CUDA_CHECK(cudaMemcpy(t->get(), h.data(), h.size() * 2, cudaMemcpyHostToDevice));
      ++seed;
    }
  }
  cudaStream_t stream = nullptr;
  AISP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaEvent_t start = nullptr, stop = nullptr;
  AISP_CUDA_CHECK(cudaEventCreate(&start));
  AISP_CUDA_CHECK(cudaEventCreate(&stop));

  flex::FlexAttentionArgs a;
  a.q = static_cast<const flex::bf16*>(q.get());
  a.k = static_cast<const flex::bf16*>(k.get());
  a.v = static_cast<const flex::bf16*>(v.get());
  a.out = static_cast<flex::bf16*>(y.get());
  a.batch = o.batch;
  a.q_heads = o.heads;
  a.kv_heads = kv_heads;
  a.q_len = a.kv_len = o.seq;
  a.head_dim = o.head_dim;
  a.dtype = dtype;
  if (o.backward) a.lse = static_cast<float*>(lse.get());
  a.kernel = kernel;
  a.schedule = schedule;
  a.head_group = o.head_group;
  const double dense_flops = 4.0 * o.batch * o.heads * double(o.seq) * o.seq * o.head_dim;
  cuda::DeviceMemory d_slopes;
  flex::BuiltinScoreMod score = flex::score_none();
  if (o.score == "alibi") {
    std::vector<float> slopes;
    for (int h = 0; h < o.heads; ++h) slopes.push_back(flex::alibi_slope(h, o.heads));
    d_slopes = cuda::device_alloc(slopes.size() * sizeof(float));
    AISP_CUDA_CHECK(cudaMemcpy(d_slopes.get(), slopes.data(), slopes.size() * sizeof(float), cudaMemcpyHostToDevice));
    score = flex::score_alibi(static_cast<const float*>(d_slopes.get()));
  } else if (o.score == "soft_cap") {
    score = flex::score_soft_cap(30.0f);
  } else if (o.score != "none") {
    throw UsageError("--score must be none, alibi or soft_cap");
  }

  out << fmt::format(
      "aisp flex demo on {} (sm_{}): B={} H={}{} S={} D={} {}, kernel {} (schedule {}), score_mod {}, {} timed calls "
      "per pattern\n",
      props.name, props.compute_capability, o.batch, o.heads,
      kv_heads == o.heads ? std::string() : fmt::format(" (kv heads {})", kv_heads), o.seq, o.head_dim, o.dtype,
      o.kernel, o.schedule, o.score, o.iters);
  // Which clock the times are at: a power-capped GPU holds its boost clock for its first ~25 ms of
  // busy time and is held down from ~0.1 s on (README, "Clocks: cold and burst"; H200, 8k dense:
  // 1.662 ms at --iters 10, 1.848 ms at --iters 600, and the mods' ratios to it move: soft-cap 83 % / 89 %).
  out << fmt::format("times: each pattern's {} calls run back to back; a few dozen ms of them measure the GPU at "
                     "its boost clock (burst), --iters 500 and more its power-capped clock (sustained)\n",
                     o.iters);
  flex::FlexBackwardArgs ba;
  if (o.backward) {
    ba.forward = a;
    if (kernel == flex::FlexKernel::mma_sync) ba.kernel = flex::FlexBackwardKernel::mma_sync;
    ba.head_group = o.backward_head_group;
    ba.dout = static_cast<const flex::bf16*>(dout.get());
    ba.dq = static_cast<flex::bf16*>(dq.get());
    ba.dk = static_cast<flex::bf16*>(dk.get());
    ba.dv = static_cast<flex::bf16*>(dv.get());
    ba.workspace_bytes = flex::flex_backward_workspace_bytes(a);
    workspace = cuda::device_alloc(ba.workspace_bytes);
    ba.workspace = workspace.get();
  }
  // The measured ceilings the floors divide by (measured once per device and cached).
  const nlohmann::json peaks = harness::gpu_peaks(0, harness::default_cache_dir(), false);
  const double copy_bytes_per_s = peaks.value("copy_gb_s", 0.0) * 1e9;
  const double gemm_flops_per_s = peaks.value("bf16_tflops", 0.0) * 1e12;
  out << fmt::format("floors: copy bandwidth {:.0f} GB/s, bf16 GEMM {:.0f} TFLOP/s (measured: aisp gpu info)\n",
                     copy_bytes_per_s / 1e9, gemm_flops_per_s / 1e12);
  const FlexShape shape{o.batch, o.heads, kv_heads, o.seq, o.seq, o.head_dim, a.lse != nullptr};
  out << flex_demo_header();
  int failures = 0;
  double last_ms = 0;  // the last built-in row's median, for the JIT comparison
  for (const std::string& name : o.patterns) {
    const std::unique_ptr<Pattern> p = make_pattern(name, o.seq);
    const flex::BlockMask bm = flex::create_block_mask(p->device_mask, 1, 1, o.seq, o.seq, stream);
    const double block_density = bm.download(stream).block_density();
    const double density = element_density(p->host_mask, o.seq);

    std::string check = "skip";
    double rel_l2 = NAN;
    if (o.verify) {
      flex::flex_attention(a, score, p->device_mask, bm, stream);
      flex::flex_attention_reference(a, score, p->device_mask, static_cast<double*>(ref.get()), nullptr, stream);
      rel_l2 = device_rel_l2(y.get(), static_cast<const double*>(ref.get()), n, dtype, stream);
      const bool ok = std::isfinite(rel_l2) && rel_l2 <= 1e-2;
      check = ok ? "PASS" : "FAIL";
      failures += ok ? 0 : 1;
    }
    const double t = median_seconds([&] { flex::flex_attention(a, score, p->device_mask, bm, stream); }, o.iters,
                                    stream, start, stop);
    last_ms = t * 1e3;
    const FlexFloors floors = flex_forward_floors(shape, block_density, copy_bytes_per_s, gemm_flops_per_s);
    out << flex_demo_row({name, block_density, density, t, dense_flops, rel_l2, check, &floors});
    if (bm.document_spans) {
      // The ids ran as their spans (flex_attention.h, DerivedDocumentSpans): say so, with what the
      // derivation costs (built again, so that no module load is in the times; both synchronize).
      using Ms = std::chrono::duration<double, std::milli>;
      AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
      const auto begin = std::chrono::steady_clock::now();
      const flex::BlockMask again = flex::create_block_mask(p->device_mask, 1, 1, o.seq, o.seq, stream);
      AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
      const auto built = std::chrono::steady_clock::now();
      const flex::DerivedDocumentSpans spans = flex::derive_document_spans(p->device_mask.document, 1, o.seq, stream);
      const auto derived = std::chrono::steady_clock::now();
      out << fmt::format("  {}: contiguous document ids, run as their spans: create_block_mask derived them "
                         "({:.2f} ms with the lists, {:.2f} ms of it the derivation)\n",
                         name, Ms(built - begin).count(), Ms(derived - built).count());
    }
    if (o.backward) {
      // out and lse of this pattern's forward (the timed calls above wrote them: same inputs).
      flex::flex_attention(a, score, p->device_mask, bm, stream);
      const flex::BackwardBlockMask bbm = flex::create_backward_block_mask(p->device_mask, 1, 1, o.seq, o.seq, stream);
      std::string bcheck = "skip";
      double worst = NAN;
      if (o.verify) {
        flex::flex_attention_backward(ba, score, p->device_mask, bbm, stream);
        // ref (the forward's float64 output, no longer needed) holds the reference dQ.
        flex::flex_attention_backward_reference(ba, score, p->device_mask, static_cast<double*>(ref.get()),
                                                static_cast<double*>(ref_dk.get()),
                                                static_cast<double*>(ref_dv.get()), stream);
        worst = 0;
        for (const auto& [got, want, count] : {std::tuple{dq.get(), ref.get(), n}, std::tuple{dk.get(), ref_dk.get(), n_kv},
                                               std::tuple{dv.get(), ref_dv.get(), n_kv}}) {
          const double e = device_rel_l2(got, static_cast<const double*>(want), count, dtype, stream);
          worst = std::isfinite(e) && std::isfinite(worst) ? std::max(worst, e) : NAN;
        }
        const bool ok = std::isfinite(worst) && worst <= 1e-2;
        bcheck = ok ? "PASS" : "FAIL";
        failures += ok ? 0 : 1;
      }
      const double tb = median_seconds(
          [&] { flex::flex_attention_backward(ba, score, p->device_mask, bbm, stream); }, o.iters, stream, start, stop);
      out << flex_demo_row({name + " bwd", block_density, density, tb, 2.5 * dense_flops, worst, bcheck, nullptr});
    }
  }
  if (!o.score_expr.empty() || !o.mask_expr.empty()) {
    FlexJitRowRequest r;
    r.score_expr = o.score_expr;
    r.mask_expr = o.mask_expr;
    r.args = a;
    r.iters = o.iters;
    r.verify = o.verify;
    r.copy_bytes_per_s = copy_bytes_per_s;
    r.gemm_flops_per_s = gemm_flops_per_s;
    if (o.patterns.size() == 1) {  // y still holds that row's output (its last timed call)
      r.builtin_out = a.out;
      r.builtin_ms = last_ms;
      r.builtin_name = o.patterns[0] + (o.score == "none" ? "" : " + " + o.score);
    }
    failures += run_flex_jit_row(r, stream, out);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  return failures == 0 ? 0 : 1;
}

#else  // CPU-only build

int run_demo(const FlexOptions&, std::ostream&) {
  throw Error("aisp flex needs a CUDA build of aisp (this one was built with AISP_ENABLE_CUDA=OFF)");
}

#endif

void add_flex(CLI::App& app, const ToolCommandContext& ctx) {
  auto* flex_cmd = app.add_subcommand("flex", "FlexAttention forward kernel: mask patterns, density and TFLOP/s");
  flex_cmd->require_subcommand(1);
  auto options = std::make_shared<FlexOptions>();
  auto* demo = flex_cmd->add_subcommand(
      "demo", "per mask pattern: verify against float64, then time; prints density and TFLOP/s");
  demo->add_option("--batch", options->batch, "batch")->capture_default_str();
  demo->add_option("--heads", options->heads, "heads (of q)")->capture_default_str();
  demo->add_option("--kv-heads", options->kv_heads, "heads of k and v: 0 = as many as --heads; fewer for GQA / MQA")
      ->capture_default_str();
  demo->add_option("--seq", options->seq, "sequence length (q = kv)")->capture_default_str();
  demo->add_option("--head-dim", options->head_dim, "64 or 128")->capture_default_str();
  demo->add_option("--iters", options->iters, "timed calls per pattern (median reported)")->capture_default_str();
  auto* patterns = demo->add_option("--patterns", options->patterns,
                                    "dense, causal, sliding_<w>, sliding_causal_<w>, prefix_lm, document, document_spans, "
                                    "random_blocks (with --score-expr / --mask-expr: none unless given)")
                       ->delimiter(',');
  demo->add_option("--score-expr", options->score_expr,
                   "score_mod as an expression of score, b, h, q, kv and the tensors slopes[h], doc[i], "
                   "bias[h, i] (JIT-compiled; e.g. 'score + slopes[h] * (kv - q)')");
  demo->add_option("--mask-expr", options->mask_expr,
                   "mask_mod as an expression of b, h, q, kv and the same tensors (e.g. 'doc[q] == doc[kv] && q >= kv')");
  demo->add_option("--score", options->score, "score_mod on every pattern: none, alibi or soft_cap (cap 30)")
      ->capture_default_str();
  demo->add_option("--kernel", options->kernel,
                   "auto, mma_sync, wgmma or fa3 (the last two sm_90 only); mma_sync also for the backward")->capture_default_str();
  demo->add_option("--schedule", options->schedule,
                   "the fa3 kernel's: auto, per_row (one CTA per row) or persistent (one CTA per SM, rows from a work "
                   "counter)")
      ->capture_default_str();
  demo->add_option("--head-group", options->head_group,
                   "the fa3 kernel's row order across heads: 0 = automatic (head-major with no mask, else groups "
                   "of 4), 1 = head-major, h > 1 interleaves groups of h heads rank by rank")
      ->capture_default_str();
  demo->add_option("--backward-head-group", options->backward_head_group,
                   "the backward's CTA order: 0 = automatic (one group for masks of one key interval per query, "
                   "else 2), 1 = one kv head after another, g > 1 groups of g kv heads (x splits), every kv block's "
                   "CTAs of a group side by side, longest first")
      ->capture_default_str();
  demo->add_option("--dtype", options->dtype, "bf16 or fp16 (every forward and backward kernel)")
      ->check(CLI::IsMember({"bf16", "fp16"}))
      ->capture_default_str();
  demo->add_flag("--backward", options->backward, "also verify and time the fused backward (dQ, dK, dV) per pattern");
  demo->add_flag("--no-verify{false}", options->verify, "skip the float64 check (not recommended)");
  demo->callback([ctx, options, patterns] {
    if ((!options->score_expr.empty() || !options->mask_expr.empty()) && patterns->count() == 0)
      options->patterns.clear();  // the JIT row alone unless built-in patterns are asked for
    ctx.choose([ctx, options] { return run_demo(*options, *ctx.out); });
  });
}

const bool registered = register_tool_command(add_flex);

}  // namespace
}  // namespace aisp::cli
