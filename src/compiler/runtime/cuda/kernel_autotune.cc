#include "compiler/runtime/cuda/kernel_autotune.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "compiler/ir/host_tensor.h"
#include "compiler/runtime/cuda/check_cuda.h"
#include "compiler/runtime/cuda/graph_timing.h"
#include "compiler/runtime/hash.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {

using Clock = std::chrono::steady_clock;

std::string launch_text(const CudaKernelSource& k) { return k.launch.to_string(); }

// Random device copies of a kernel's argument buffers (every argument its own buffer: the timing
// sees no aliasing, which the plan's buffer reuse may have, but every candidate sees the same).
struct ScratchArgs {
  std::vector<std::unique_ptr<DeviceScratch>> buffers;
  ScratchArgs(const Graph& g, const std::vector<NodeId>& args) {
    std::uint64_t seed = 101;
    for (NodeId id : args) {
      const Node& n = g.node(id);
      buffers.push_back(std::make_unique<DeviceScratch>(n.dtype, numel(n.shape), seed++));
    }
  }
};

void launch(cudaKernel_t fn, const CudaKernelSource& k, const ScratchArgs& scratch, cudaStream_t stream) {
  std::vector<void*> pointers;
  for (const auto& b : scratch.buffers) pointers.push_back(b->p);
  int aligned = 1;  // cudaMalloc'd scratch: 256-byte aligned
  std::vector<void*> params;
  for (void*& p : pointers) params.push_back(&p);
  params.push_back(&aligned);
  check_cuda(cudaLaunchKernel(reinterpret_cast<const void*>(fn), dim3(unsigned(k.launch.blocks)),
                              dim3(unsigned(k.launch.threads)), params.data(), 0, stream),
             fmt::format("autotune launch of a generated kernel ({})", k.kernel.summary));
}

// ms per call: a short probe sizes the repetitions so that one timed sample lasts ~0.5 ms.
double time_kernel(cudaKernel_t fn, const CudaKernelSource& k, const ScratchArgs& scratch, cudaStream_t stream) {
  launch(fn, k, scratch, stream);  // first launch outside a capture (module load)
  const double probe = time_as_graph_ms(stream, 3, [&] { launch(fn, k, scratch, stream); });
  const int reps = int(std::clamp(0.5 / std::max(probe, 1e-4), 3.0, 200.0));
  return time_as_graph_ms(stream, reps, [&] { launch(fn, k, scratch, stream); });
}

}  // namespace

std::vector<Candidate<CudaKernelOptions>> kernel_config_candidates(const Step& step, const CudaKernelOptions& base,
                                                                   int sms) {
  std::vector<Candidate<CudaKernelOptions>> out;
  if (!step.is_reduction()) {
    auto add = [&](int threads, int max_blocks) {
      CudaKernelOptions o = base;
      o.pointwise_threads = threads;
      o.max_pointwise_blocks = max_blocks;
      out.push_back({fmt::format("pointwise {} threads, grid <= {} blocks", threads, max_blocks), o});
    };
    add(base.pointwise_threads, base.max_pointwise_blocks);
    for (int threads : {256, 128, 512})
      for (int per_sm : {4, 8, 16, 32})
        if (threads != base.pointwise_threads || sms * per_sm != base.max_pointwise_blocks) add(threads, sms * per_sm);
    return out;
  }
  auto add = [&](int target, int per_thread) {
    CudaKernelOptions o = base;
    o.row_target_threads = target;
    o.max_row_elements_per_thread = per_thread;
    out.push_back({fmt::format("rows: target {} threads, <= {} elements per thread", target, per_thread), o});
  };
  add(base.row_target_threads, base.max_row_elements_per_thread);
  for (int per_thread : {64, 32})
    for (int target : {64, 32, 128, 256, 512})
      if (target != base.row_target_threads || per_thread != base.max_row_elements_per_thread) add(target, per_thread);
  return out;
}

void autotune_kernels(const Lowered& lowered, const CudaKernelOptions& base, NvrtcJit& jit, const KernelTuning& tuning,
                      std::vector<CudaKernelSource>& kernels, std::vector<cudaKernel_t>& fns, CompileStats& stats) {
  const auto t0 = Clock::now();
  const Graph& g = lowered.graph;
  std::vector<const Step*> step_of_kernel;
  for (const Step& s : lowered.fusion.steps)
    if (s.kind == Step::Kind::kernel) step_of_kernel.push_back(&s);
  if (step_of_kernel.size() != kernels.size()) throw Error("internal: kernel autotune: kernels and steps disagree");
  int device = 0, sms = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "multiprocessor count");
  const AutotuneStream timing_stream;
  const cudaStream_t stream = timing_stream.get();

  // One decision per distinct default source (a model's layers repeat their kernels).
  std::map<std::string, std::pair<CudaKernelSource, cudaKernel_t>> decided;
  for (std::size_t i = 0; i < kernels.size(); ++i) {
    const std::string default_key = kernels[i].kernel.source + "\n" + launch_text(kernels[i]);
    if (auto it = decided.find(default_key); it != decided.end()) {
      // The same code and launch; the arguments stay this step's own buffers.
      std::vector<NodeId> args = std::move(kernels[i].kernel.args);
      kernels[i] = it->second.first;
      kernels[i].kernel.args = std::move(args);
      fns[i] = it->second.second;
      continue;
    }
    const Step& step = *step_of_kernel[i];
    if (kernels[i].launch.blocks <= 0) {  // nothing to run, nothing to time
      decided.emplace(default_key, std::make_pair(kernels[i], fns[i]));
      continue;
    }
    const auto candidates = kernel_config_candidates(step, base, sms);
    std::vector<CudaKernelSource> generated(candidates.size());
    std::vector<std::string> rejected(candidates.size());  // why a candidate is not timed
    generated[0] = kernels[i];
    for (std::size_t c = 1; c < candidates.size(); ++c) {
      try {
        generated[c] = generate_cuda_kernel(g, step, candidates[c].config);
      } catch (const Error& e) {  // e.g. a row that does not fit this register plan
        rejected[c] = e.what();
      }
    }
    const std::string key = hash_hex("kernel config\n" + default_key + "\n" + tuning.device_key);

    std::size_t chosen = 0;
    TuneResult decision;
    bool from_cache = false;
    if (auto cached = load_decision(tuning.autotune_dir, key)) {
      for (std::size_t c = 0; c < candidates.size(); ++c)
        if (candidates[c].name == cached->best && rejected[c].empty()) chosen = c, from_cache = true, decision = *cached;
    }
    if (from_cache) {
      ++stats.autotune_cache_hits;
      if (chosen != 0) fns[i] = jit.load(jit.compile(generated[chosen].kernel.source), generated[chosen].kernel.symbol);
    } else {
      // Distinct candidates only: a later one with the text and launch of an earlier one is listed.
      std::vector<std::string>& same_as = rejected;
      for (std::size_t c = 1; c < candidates.size(); ++c)
        for (std::size_t e = 0; e < c && same_as[c].empty(); ++e)
          if (same_as[e].empty() && generated[e].kernel.source == generated[c].kernel.source &&
              launch_text(generated[e]) == launch_text(generated[c]))
            same_as[c] = "same kernel and launch as '" + candidates[e].name + "'";
      std::vector<std::future<NvrtcResult>> compiling(candidates.size());
      std::vector<cudaKernel_t> loaded(candidates.size(), nullptr);
      for (std::size_t begin = 0; begin < candidates.size(); begin += std::size_t(std::max(1, tuning.jobs))) {
        const std::size_t end = std::min(candidates.size(), begin + std::size_t(std::max(1, tuning.jobs)));
        for (std::size_t c = begin; c < end; ++c)
          if (same_as[c].empty() && c != 0)
            compiling[c] = std::async(std::launch::async, [&, c] { return jit.compile(generated[c].kernel.source); });
        for (std::size_t c = begin; c < end; ++c)
          if (compiling[c].valid()) loaded[c] = jit.load(compiling[c].get(), generated[c].kernel.symbol);
      }
      loaded[0] = fns[i];  // the default is already compiled and loaded
      const ScratchArgs scratch(g, kernels[i].kernel.args);
      double default_ms = 0, best_ms = 0;
      for (std::size_t c = 0; c < candidates.size(); ++c) {
        TuneRecord record{candidates[c].name, same_as[c], 0};
        if (record.rejected.empty()) {
          record.ms = time_kernel(loaded[c], generated[c], scratch, stream);
          if (c == 0) default_ms = best_ms = record.ms;
          else if (record.ms * kMinKernelGain <= default_ms && record.ms < best_ms) best_ms = record.ms, chosen = c;
        }
        decision.records.push_back(record);
      }
      decision.best = candidates[chosen].name;
      save_decision(tuning.autotune_dir, key, decision);
      ++stats.autotune_searches;
      fns[i] = loaded[chosen];
      if (chosen != 0)
        generated[chosen].kernel.config = fmt::format("{} (autotuned: {}, {:.4f} ms vs the heuristic's {:.4f} ms)",
                                                      launch_text(generated[chosen]), candidates[chosen].name, best_ms,
                                                      default_ms);
      else
        generated[0].kernel.config = fmt::format("{} (autotuned: the heuristic's, {:.4f} ms)", launch_text(generated[0]),
                                                 default_ms);
    }
    if (from_cache)
      generated[chosen].kernel.config = fmt::format("{} (autotuned earlier: {})", launch_text(generated[chosen]),
                                                    candidates[chosen].name);
    kernels[i] = generated[chosen];
    decided.emplace(default_key, std::make_pair(kernels[i], fns[i]));
  }
  stats.autotune_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace aisp::compiler
