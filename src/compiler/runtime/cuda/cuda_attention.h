// The CUDA backend's attention step: one `attention` node run as the flex-attention flash kernel
// (kernels/attention) with no score_mod and the causal or no mask, shared by the eager and the
// compiled plans (so a pair of plans measures fusion, not attention kernels).
//
// Which nodes qualify (flash_attention_supports): bf16; head dim 64 or 128 for q, k and v; causal only
// with Tq == Tk (the kernel's causal mask is top-left aligned, the op's bottom-right: equal when the
// lengths are); at least kFlashMinQueries queries (measured faster than the primitives there); a GPU the
// kernels are built for (sm_90a, sm_100a). Every other attention node is
// expanded into primitives (passes/expand.h). Contiguous [..., T, D] operands fold their leading axes
// into the kernel's batch (heads 1); on sm_90a materialize leaves [B, H, T, D] views with 16-byte
// strides as they are (heads sliced out of a fused qkv projection) and the fa3 kernel reads them in
// place with their strides, and an attention node whose result materialize marked permuted
// (axes {0, 2, 1, 3}) is written as [B, T, H, D] through the kernel's output strides.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "compiler/ir/graph.h"
#include "compiler/passes/layout.h"

namespace aisp::compiler {

// The fewest queries the flash kernel takes (half its 128-query tile; cuda_attention.cc says what was
// measured).
inline constexpr std::int64_t kFlashMinQueries = 64;

// `arch`: the NVRTC target ("sm_90a", ...); `why` (optional) gets the reason a node does not qualify.
bool flash_attention_supports(const std::string& arch, const Node& n, const Graph& g, std::string* why = nullptr);

class AttentionStep {
 public:
  // load = false: compile only (no GPU; run() then throws). Otherwise builds the block mask now, on
  // the GPU and synchronously, so that run() allocates nothing and can be captured into a CUDA graph.
  // `operands`: the layouts of q, k and v (their offsets are applied by the caller of run()).
  AttentionStep(const Graph& g, const Node& n, const std::vector<Layout>& operands, bool load);
  ~AttentionStep();
  AttentionStep(const AttentionStep&) = delete;
  AttentionStep& operator=(const AttentionStep&) = delete;

  void run(const void* q, const void* k, const void* v, void* out, cudaStream_t stream) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aisp::compiler
