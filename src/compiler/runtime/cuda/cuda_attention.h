// The CUDA backend's attention step: one `attention` node run as the flex-attention flash kernel
// (kernels/attention) with no score_mod and the causal or no mask, shared by the eager and the
// compiled plans (so a pair of plans measures fusion, not attention kernels).
//
// Which nodes qualify (flash_attention_supports): bf16; head dim 64 or 128 for q, k and v; causal only
// with Tq == Tk (the kernel's causal mask is top-left aligned, the op's bottom-right: equal when the
// lengths are); at least one 128-query tile (shorter, the primitives measured faster); a GPU the
// kernels are built for (sm_90a, sm_100a). Every other attention node is
// expanded into primitives (passes/expand.h). The leading axes fold into the kernel's batch (heads 1):
// materialize gives the step contiguous [..., T, D] operands.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

// `arch`: the NVRTC target ("sm_90a", ...); `why` (optional) gets the reason a node does not qualify.
bool flash_attention_supports(const std::string& arch, const Node& n, const Graph& g, std::string* why = nullptr);

class AttentionStep {
 public:
  // load = false: compile only (no GPU; run() then throws). Otherwise builds the block mask now, on
  // the GPU and synchronously, so that run() allocates nothing and can be captured into a CUDA graph.
  AttentionStep(const Graph& g, const Node& n, bool load);
  ~AttentionStep();
  AttentionStep(const AttentionStep&) = delete;
  AttentionStep& operator=(const AttentionStep&) = delete;

  void run(const void* q, const void* k, const void* v, void* out, cudaStream_t stream) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aisp::compiler
