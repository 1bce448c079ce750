// The GPU GPT workload that ch14's CUDA compiler examples share (model_eager, model_eager_small,
// dynamic_shapes_gpu): the model and shape, the harness's view of its inputs, and the f32 reference.
//
// Model: src/models GPT "medium" (12 layers, d_model 1024, 16 heads, vocab 32000, GELU MLP, tied
// head), bf16 storage and fp32 math. Reference: the same model in f32 storage on the GPU (inputs
// converted exactly from bf16; the eager plan with fp32 cuBLAS, no TF32), i.e. the function every
// variant approximates without its bf16 roundings.
#pragma once

#include <cstdint>
#include <vector>

#include "compiler/ir/graph.h"
#include "harness/example.h"
#include "models/gpt.h"

namespace aisp::ch14 {

struct GpuGpt {
  const char* name;
  std::int64_t batch, seq;
  models::GptConfig config(DType dt = DType::bf16) const;
  compiler::Graph graph(DType dt = DType::bf16) const;
};

// Every graph input declared (tokens, then the parameters in build_gpt's order, initialized so that
// activations stay O(1)), the logits [batch, seq, vocab] bf16 as the output, matmul FLOPs, minimal
// bytes, the bf16-against-f32 tolerance.
harness::Workload gpu_gpt_workload(const GpuGpt& m);

// The f32 model at m's batch and seq on the bf16 inputs, logits written to `ref` (f32), on `stream`.
// Each shape's eager plan is compiled on its first call and kept for the process.
void gpu_gpt_reference(const GpuGpt& m, const std::vector<harness::Tensor>& inputs, const harness::Tensor& ref,
                       harness::StreamHandle stream);

}  // namespace aisp::ch14
