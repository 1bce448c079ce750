// A GPT-style decoder written once against the graph builder: token + position embedding, pre-norm
// blocks (LayerNorm -> causal multi-head attention -> residual; LayerNorm -> GELU MLP -> residual),
// a final LayerNorm and an output head tied to the token embedding. Every parameter is a graph input
// (named, in a fixed order), so eager, compiled and interpreted runs bind the same buffers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/ir/host_tensor.h"
#include "compiler/regional.h"

namespace aisp::models {

struct GptConfig {
  std::string name;
  std::int64_t vocab = 0, max_seq = 0, d_model = 0, heads = 0, layers = 0;
  std::int64_t mlp_ratio = 4;
  DType dtype = DType::bf16;  // storage of parameters and activations; math is fp32
  double ln_eps = 1e-5;
  // The MLP's GELU: the tanh approximation, as GPT-2 and its successors use it (PyTorch's
  // GELU(approximate="tanh")); false: the exact erf form. The tanh form is what cuBLASLt's GELU
  // epilogue computes, so compiled plans fold it into the GEMM before it (passes/epilogue.h).
  bool gelu_tanh = true;

  std::int64_t parameters() const;  // count (tied head counted once)
};

// "tiny" (CPU tests), "small", "medium" (the chapter's: 12 layers, d=1024, 16 heads, vocab 32000),
// "large". Throws aisp::Error for an unknown name.
GptConfig gpt_preset(std::string_view name);

struct GptGraph {
  compiler::Graph graph;   // inputs: "tokens" i32 [batch, seq], ["targets" i32 [batch, seq]], parameters
  compiler::Tensor logits; // [batch, seq, vocab], output 0
  compiler::Tensor loss;   // mean cross-entropy, shape (), output 1 when with_loss
};

GptGraph build_gpt(const GptConfig& config, std::int64_t batch, std::int64_t seq, bool with_loss = false);

// The same model as a regional program (compiler/regional.h), for compiling one block once:
//   region 0 embedding: tokens, wte, wpe -> x            call prefix ""
//   region 1 block:     x, ln1.w, ..., mlp.out.b -> x    calls with prefix "h0." .. "h{layers-1}."
//   region 2 head:      x, ln_f.w, ln_f.b, wte -> logits call prefix ""
// Parameter names after prefixing are build_gpt's, so gpt_inputs() of the full graph binds both.
// Logits only (no loss).
compiler::RegionalProgram build_gpt_regions(const GptConfig& config, std::int64_t batch, std::int64_t seq);

// Inputs for graph.inputs() in order: tokens/targets uniform in [0, vocab), weights ~ N(0, 0.02^2),
// LayerNorm gains ~ 1 + N(0, 0.1^2), biases ~ N(0, 0.02^2). Deterministic in `seed`.
std::vector<compiler::HostTensor> gpt_inputs(const GptGraph& gpt, const GptConfig& config, std::uint64_t seed);

}  // namespace aisp::models
