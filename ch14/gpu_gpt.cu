#include "gpu_gpt.h"

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <cuda_bf16.h>

#include "compiled_graphs.h"
#include "compiler/compile_cuda.h"
#include "core/cuda/check.h"
#include "core/error.h"

namespace aisp::ch14 {
namespace {

harness::Init init_of(const std::string& name, std::int64_t vocab, std::int64_t d_model) {
  using harness::Init;
  if (name == "tokens") return Init::uniform_int(vocab);
  if (is_layernorm_gain(name)) return Init::normal(0.1, 1.0);  // gains near 1
  if (name == "wte" || name == "wpe") return Init::normal(0.05);
  if (name.ends_with(".b")) return Init::normal(0.02);
  return Init::normal(0.5 / std::sqrt(double(d_model)));  // linear weights: activations stay O(1)
}

__global__ void bf16_to_f32(const __nv_bfloat16* in, float* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    out[i] = __bfloat162float(in[i]);
}

// One shape's f32 eager plan and the f32 copies of its bf16 inputs (null for the i32 tokens).
struct ReferencePlan {
  std::unique_ptr<compiler::CudaCompiledGraph> compiled;
  std::vector<void*> f32_inputs;
};

}  // namespace

models::GptConfig GpuGpt::config(DType dt) const {
  models::GptConfig cfg = models::gpt_preset("medium");
  cfg.dtype = dt;
  return cfg;
}

compiler::Graph GpuGpt::graph(DType dt) const { return models::build_gpt(config(dt), batch, seq).graph; }

harness::Workload gpu_gpt_workload(const GpuGpt& m) {
  const auto cfg = m.config();
  const compiler::Graph g = m.graph();
  harness::Workload w;
  for (auto id : g.inputs()) {
    const auto& n = g.node(id);
    w.inputs.push_back({n.name, n.dtype, n.shape, init_of(n.name, cfg.vocab, cfg.d_model)});
  }
  w.output = {"logits", DType::bf16, {m.batch, m.seq, cfg.vocab}, harness::Init::normal()};
  // Matmul FLOPs only (2 per multiply-add), attention over the full T x T (the mask is applied after QK^T).
  const double n = double(m.batch * m.seq), d = double(cfg.d_model), f = double(cfg.mlp_ratio * cfg.d_model);
  const double per_layer = 2 * n * d * (3 * d) + 2 * n * d * d + 4 * n * d * f + 4 * double(m.batch) * double(m.seq) * double(m.seq) * d;
  w.flops = double(cfg.layers) * per_layer + 2 * n * d * double(cfg.vocab);
  w.bytes = double(w.output.bytes());
  for (const auto& s : w.inputs) w.bytes += double(s.bytes());
  // bf16 storage of every activation across 12 residual blocks against the unrounded f32 model.
  // Measured on an H200 (2026-11-26): max abs error 0.11 (eager plan) and 0.09 (fused) on logits of
  // standard deviation ~1.6, i.e. ~13 bf16 ulps; the relative L2 error is the check that bites (a
  // wrong layer, mask or bias moves it far above 3e-2), the per-element bound only rules out outliers.
  w.tolerance = {3e-2, 0.25, 0.05};
  w.backend = harness::Backend::cuda;
  w.min_compute_capability = 80;
  return w;
}

void gpu_gpt_reference(const GpuGpt& m, const std::vector<harness::Tensor>& inputs, const harness::Tensor& ref,
                       harness::StreamHandle stream) {
  // By (batch, seq), for the process: never destroyed, so no CUDA call runs after the runtime unloads.
  static auto* plans = new std::map<std::pair<std::int64_t, std::int64_t>, ReferencePlan>;
  ReferencePlan& plan = (*plans)[{m.batch, m.seq}];
  if (!plan.compiled) {
    plan.compiled = std::make_unique<compiler::CudaCompiledGraph>(compiler::compile_cuda(m.graph(DType::f32), compiler::eager_plan()));
    for (const harness::Tensor& t : inputs) {
      void* p = nullptr;
      if (t.dtype == DType::bf16) AISP_CUDA_CHECK(cudaMalloc(&p, std::size_t(t.numel()) * sizeof(float)));
      plan.f32_inputs.push_back(p);
    }
  }
  std::vector<const void*> in;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].dtype == DType::bf16) {
      bf16_to_f32<<<1024, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(inputs[i].data),
                                           static_cast<float*>(plan.f32_inputs[i]), inputs[i].numel());
      AISP_CUDA_CHECK(cudaGetLastError());
      in.push_back(plan.f32_inputs[i]);
    } else {
      in.push_back(inputs[i].data);
    }
  }
  if (ref.dtype != DType::f32) throw Error("GPU GPT: the reference is f32");
  plan.compiled->run(in, {ref.data}, stream);
}

}  // namespace aisp::ch14
