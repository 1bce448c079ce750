// The FlexAttention backward (dQ, dK, dV) with mods given at run time as expressions: the score_mod
// is differentiated symbolically (ModExpr::derivative, compiler/flex/flex_expr.h) and both, with the
// mask_mod, are JIT-compiled by NVRTC into the wgmma (or mma.sync) backward kernel and the kv-major
// block-mask builder of kernels/attention (flex_backward_sm90.cuh, flex_backward_kernel.cuh), issue 5. The
// counterpart of JitFlexAttention (flex_jit.h), whose forward gives the out and lse this needs.
//
//   namespace fx = aisp::compiler::flex;
//   fx::JitFlexBackward bwd("30 * tanh(score / 30)", "q >= kv", {}, /*head_dim*/ 128);  // parse, d/dscore, NVRTC
//   auto mods = bwd.bind({});                                                           // captured tensors
//   kernels::flex::BackwardBlockMask bbm = bwd.create_block_mask(mods, B, H, S, S, stream);   // once
//   bwd.run(bwd_args, bbm, mods, stream);                  // as kernels::flex::flex_attention_backward
//
// The same cache as the forward (NvrtcJit: memory + disk, keyed by the whole source, arch, NVRTC
// version and flags). The kernel as the forward's: wgmma where the JIT targets sm_90a, else the
// mma.sync backward (sm_100a: Blackwell's build has no wgmma); mma_sync on sm_90 when asked for.
// A score_mod without a derivative (floor / ceil / int() of the score) is refused when
// constructed, naming the construct.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "compiler/runtime/cuda/flex_jit.h"
#include "kernels/attention/flex_backward.h"

namespace aisp::compiler::flex {

struct JitBackwardCompileInfo {
  double backward_ms = 0, block_mask_ms = 0;  // NVRTC time of this construction (0 on a cache hit)
  NvrtcResult::From backward_from = NvrtcResult::From::build, block_mask_from = NvrtcResult::From::build;
  std::string backward_source, block_mask_source;  // where the sources are saved (cache dir)
};

class JitFlexBackward {
 public:
  // As JitFlexAttention's constructor: score_expr "" is "score", mask_expr "" no mask (give a
  // backward block mask of your own, e.g. from kernels::flex::create_backward_block_mask(mask_none())).
  // load = false: compile only (no GPU needed; run() and create_block_mask() then throw). dtype: the
  // element type of q, k, v, out, dout and the gradients the kernel is compiled for.
  JitFlexBackward(const std::string& score_expr, const std::string& mask_expr, std::vector<CaptureSpec> captures,
                  int head_dim, NvrtcJit& jit = default_flex_nvrtc_jit(), bool load = true,
                  kernels::flex::FlexDtype dtype = kernels::flex::FlexDtype::bf16,
                  kernels::flex::FlexBackwardKernel kernel = kernels::flex::FlexBackwardKernel::automatic);
  ~JitFlexBackward();

  const ModExpr& score() const { return score_; }
  const ModExpr& score_grad() const { return grad_; }  // d score / d score, printed by text()
  const ModExpr* mask() const { return mask_.get(); }
  int head_dim() const { return head_dim_; }
  kernels::flex::FlexDtype dtype() const { return dtype_; }
  kernels::flex::FlexBackwardKernel kernel() const { return kernel_; }  // wgmma or mma_sync
  const JitBackwardCompileInfo& info() const { return info_; }

  // The functors' values for these device tensors, as JitFlexAttention::bind (the same layout: one
  // Bound serves the forward and the backward of the same expressions).
  JitFlexAttention::Bound bind(const std::vector<DeviceCapture>& captures) const;

  // The kv-major block mask of the mask_mod (needs one); batch / heads broadcast (1) when the mask
  // reads no b / h.
  kernels::flex::BackwardBlockMask create_block_mask(const JitFlexAttention::Bound& mods, int batch, int heads,
                                                     int q_len, int kv_len, cudaStream_t stream) const;
  // The backward, as kernels::flex::flex_attention_backward (args.kernel automatic or the compiled kernel).
  void run(const kernels::flex::FlexBackwardArgs& args, const kernels::flex::BackwardBlockMask& block_mask,
           const JitFlexAttention::Bound& mods, cudaStream_t stream) const;

 private:
  ModExpr score_, grad_;
  std::unique_ptr<ModExpr> mask_;
  int head_dim_;
  kernels::flex::FlexDtype dtype_;
  kernels::flex::FlexBackwardKernel kernel_;
  JitBackwardCompileInfo info_;
  cudaKernel_t backward_ = nullptr, block_mask_ = nullptr;
};

}  // namespace aisp::compiler::flex
