// FlexAttention with mods given at run time as expressions (compiler/flex/flex_expr.h), JIT-compiled
// by NVRTC into the fa3 or mma.sync forward and the block-mask builder of kernels/attention (issue 5): any
// variant from the CLI or the compiler without rebuilding aisp.
//
//   namespace fx = aisp::compiler::flex;
//   fx::JitFlexAttention attn("score + slopes[h] * (kv - q)", "doc[q] == doc[kv] && q >= kv",
//                             {{"slopes", fx::CaptureDType::f32, 1}, {"doc", fx::CaptureDType::i32, 1}},
//                             /*head_dim*/ 128);                            // parse + NVRTC (cached)
//   fx::JitFlexAttention::Bound mods = attn.bind({{{"slopes", f32, 1}, {H}, d_slopes},
//                                                 {{"doc", i32, 1}, {S}, d_doc}});
//   kernels::flex::BlockMask bm = attn.create_block_mask(mods, B, H, S, S, stream);   // once
//   attn.run(args, bm, mods, stream);                                       // as flex_attention
//
// Compilation goes through NvrtcJit (memory + disk cache, keyed by the whole source, the arch and
// NVRTC's version and flags): the same expressions with captures of the same dtypes and ranks, on the
// same arch, compile once; sizes of the captured tensors are run-time values. The forward kernel is
// one module per (score, mask, head dim), the block-mask builder one per mask. An NVRTC failure
// raises aisp::Error naming the expressions and the saved source. The kernel: fa3 where the JIT
// targets sm_90a, else the mma.sync forward (NVRTC builds it for any sm_80+; the calls run where the
// precompiled block-mask kernels do, sm_90a and sm_100a: so run-time mods work on Blackwell, whose
// build has no fa3); FlexKernel::mma_sync asks for it on sm_90 too. The kernel and the element type
// (bf16 or fp16, FlexDtype) are compiled in: one module per choice, and run() refuses arguments
// asking for another.
// The backward through the same expressions: flex_jit_backward.h.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "compiler/flex/flex_expr.h"
#include "compiler/runtime/cuda/nvrtc_jit.h"
#include "kernels/attention/flex_attention.h"

namespace aisp::compiler::flex {

// NvrtcOptions for the flex JIT (its flags; cache_dir / arch as NvrtcOptions).
NvrtcOptions flex_jit_nvrtc_options(std::string cache_dir = "", std::string arch = "");
// The process's flex JIT compiler (default cache and arch, flex_jit_nvrtc_options()).
NvrtcJit& default_flex_nvrtc_jit();

struct JitCompileInfo {
  double forward_ms = 0, block_mask_ms = 0;  // NVRTC time of this construction (0 on a cache hit)
  NvrtcResult::From forward_from = NvrtcResult::From::build, block_mask_from = NvrtcResult::From::build;
  std::string forward_source, block_mask_source;  // where the sources are saved (cache dir)
};

class JitFlexAttention {
 public:
  // Parses, type-checks and compiles. score_expr "" means "score" (no score_mod); mask_expr ""
  // means no mask (every element kept: give a block mask of your own, e.g. dense_block_mask).
  // load = false: compile only (no GPU needed; run() and create_block_mask() then throw). dtype: the
  // element type of q, k, v, out the kernel is compiled for. kernel: automatic (fa3 on sm_90a, else
  // mma_sync), fa3 or mma_sync; wgmma is not compiled at run time (aisp::Error).
  JitFlexAttention(const std::string& score_expr, const std::string& mask_expr, std::vector<CaptureSpec> captures,
                   int head_dim, NvrtcJit& jit = default_flex_nvrtc_jit(), bool load = true,
                   kernels::flex::FlexDtype dtype = kernels::flex::FlexDtype::bf16,
                   kernels::flex::FlexKernel kernel = kernels::flex::FlexKernel::automatic);
  ~JitFlexAttention();

  const ModExpr& score() const { return score_; }
  const ModExpr* mask() const { return mask_.get(); }
  int head_dim() const { return head_dim_; }
  kernels::flex::FlexDtype dtype() const { return dtype_; }
  kernels::flex::FlexKernel kernel() const { return kernel_; }  // fa3 or mma_sync
  const JitCompileInfo& info() const { return info_; }

  // The functors' values for these device tensors (by name; dtype and rank must match the specs).
  struct Bound {
    std::vector<std::uint64_t> score_bytes, mask_bytes;  // never empty (a zero word for no capture)
  };
  Bound bind(const std::vector<DeviceCapture>& captures) const { return bind_mods(score_, mask_.get(), captures); }
  // The same for any pair of compiled expressions (the JIT backward binds its mods the same way).
  static Bound bind_mods(const ModExpr& score, const ModExpr* mask, const std::vector<DeviceCapture>& captures);

  // The block mask of the mask_mod (needs one). batch / heads are broadcast (built as 1) when the
  // mask does not read b / h.
  kernels::flex::BlockMask create_block_mask(const Bound& mods, int batch, int heads, int q_len, int kv_len,
                                             cudaStream_t stream) const;
  // The forward, as kernels::flex::flex_attention (args.kernel automatic or the compiled kernel).
  void run(const kernels::flex::FlexAttentionArgs& args, const kernels::flex::BlockMask& block_mask, const Bound& mods,
           cudaStream_t stream) const;

 private:
  ModExpr score_;
  std::unique_ptr<ModExpr> mask_;
  int head_dim_;
  kernels::flex::FlexDtype dtype_;
  kernels::flex::FlexKernel kernel_;
  JitCompileInfo info_;
  cudaKernel_t forward_ = nullptr, block_mask_ = nullptr;
};

}  // namespace aisp::compiler::flex
