#include "compiler/runtime/cuda/flex_jit_backward.h"

#include <utility>

#include <fmt/format.h>

#include "compiler/runtime/cuda/flex_jit_common.h"
#include "compiler/runtime/cuda/flex_jit_source.h"
#include "core/error.h"
#include "kernels/attention/flex_jit_launch.h"

namespace aisp::compiler::flex {
namespace {

ModExpr parse_score(const std::string& text, const std::vector<CaptureSpec>& captures) {
  return ModExpr::parse(text.empty() ? "score" : text, ModExpr::Kind::score_mod, captures);
}

// The backward kernel the mods are compiled into: wgmma where the JIT targets sm_90a (automatic),
// the mma.sync kernel elsewhere or when asked for.
kernels::flex::FlexBackwardKernel resolve_jit_backward_kernel(kernels::flex::FlexBackwardKernel requested,
                                                              const NvrtcJit& jit) {
  using kernels::flex::FlexBackwardKernel;
  if (requested == FlexBackwardKernel::automatic)
    requested = jit.arch() == "sm_90a" ? FlexBackwardKernel::wgmma : FlexBackwardKernel::mma_sync;
  if (requested == FlexBackwardKernel::wgmma)
    check_jit_targets_sm90a(jit, "flex JIT backward", "the wgmma backward");
  else
    check_jit_targets_sm80(jit, "flex JIT backward", "the mma.sync backward");
  return requested;
}

}  // namespace

JitFlexBackward::JitFlexBackward(const std::string& score_expr, const std::string& mask_expr,
                                 std::vector<CaptureSpec> captures, int head_dim, NvrtcJit& jit, bool load,
                                 kernels::flex::FlexDtype dtype, kernels::flex::FlexBackwardKernel kernel)
    : score_(parse_score(score_expr, captures)),
      grad_(score_.derivative()),
      head_dim_(head_dim),
      dtype_(dtype),
      kernel_(resolve_jit_backward_kernel(kernel, jit)) {
  check_jit_head_dim(head_dim, "flex JIT backward");
  mask_ = parse_jit_mask(mask_expr, captures);
  const bool wgmma = kernel_ == kernels::flex::FlexBackwardKernel::wgmma;
  const std::string what = fmt::format("score_mod '{}' (d/dscore: '{}') with mask_mod '{}'", score_.text(),
                                       grad_.text(), mask_ ? mask_->text() : "(none)");
  const NvrtcResult bwd = compile_jit_source(
      jit,
      wgmma ? sm90_backward_source(score_, grad_, mask_.get(), head_dim, dtype)
            : mma_sync_backward_source(score_, grad_, mask_.get(), head_dim, dtype),
      fmt::format("the {} backward ({}) for {}", wgmma ? "wgmma" : "mma.sync", kernels::flex::flex_dtype_name(dtype),
                  what));
  info_.backward_ms = bwd.compile_ms;
  info_.backward_from = bwd.from;
  info_.backward_source = bwd.source_path;
  NvrtcResult bm;
  if (mask_) {
    bm = compile_jit_source(jit, backward_block_mask_source(*mask_),
                            fmt::format("the backward block-mask builder for mask_mod '{}'", mask_->text()));
    info_.block_mask_ms = bm.compile_ms;
    info_.block_mask_from = bm.from;
    info_.block_mask_source = bm.source_path;
  }
  if (!load) return;
  if (wgmma) {
    backward_ = jit.load(bwd, find_kernel_symbol(bwd.cubin, "flex_backward_sm90_kernel"));
    kernels::flex::configure_jit_backward_sm90(backward_, head_dim);
  } else {
    backward_ = jit.load(bwd, find_kernel_symbol(bwd.cubin, "flex_backward_kernel"));
    kernels::flex::configure_jit_backward_mma_sync(backward_, head_dim);
  }
  if (mask_) block_mask_ = jit.load(bm, find_kernel_symbol(bm.cubin, "backward_block_mask_kernel"));
}

JitFlexBackward::~JitFlexBackward() = default;

JitFlexAttention::Bound JitFlexBackward::bind(const std::vector<DeviceCapture>& captures) const {
  return JitFlexAttention::bind_mods(score_, mask_.get(), captures);  // grad() reads the score's members
}

kernels::flex::BackwardBlockMask JitFlexBackward::create_block_mask(const JitFlexAttention::Bound& mods, int batch,
                                                                    int heads, int q_len, int kv_len,
                                                                    cudaStream_t stream) const {
  if (!mask_) throw Error("flex JIT backward: create_block_mask needs a mask_mod (this one was compiled without)");
  if (block_mask_ == nullptr) throw Error("flex JIT backward: compiled with load = false: nothing to launch");
  return kernels::flex::create_backward_block_mask_jit(block_mask_, mods.mask_bytes.data(),
                                                       mask_->uses_batch() ? batch : 1, mask_->uses_head() ? heads : 1,
                                                       q_len, kv_len, stream);
}

void JitFlexBackward::run(const kernels::flex::FlexBackwardArgs& args,
                          const kernels::flex::BackwardBlockMask& block_mask, const JitFlexAttention::Bound& mods,
                          cudaStream_t stream) const {
  if (backward_ == nullptr) throw Error("flex JIT backward: compiled with load = false: nothing to launch");
  if (args.forward.head_dim != head_dim_)
    throw Error(fmt::format("flex JIT backward: compiled for head dim {}, called with {}", head_dim_,
                            args.forward.head_dim));
  if (args.forward.dtype != dtype_)
    throw Error(fmt::format("flex JIT backward: compiled for {} inputs, called with {} (construct it with that dtype)",
                            kernels::flex::flex_dtype_name(dtype_), kernels::flex::flex_dtype_name(args.forward.dtype)));
  // The CTA order's automatic choice (resolve_backward_head_group): an expression with bounds keeps one
  // interval of keys per query.
  const bool interval_mask = mask_ && mask_->keeps_kv_range();
  if (kernel_ == kernels::flex::FlexBackwardKernel::wgmma)
    kernels::flex::launch_jit_backward_sm90(backward_, args, block_mask, mods.score_bytes.data(),
                                            mods.mask_bytes.data(), interval_mask, stream);
  else
    kernels::flex::launch_jit_backward_mma_sync(backward_, args, block_mask, mods.score_bytes.data(),
                                                mods.mask_bytes.data(), interval_mask, stream);
}

}  // namespace aisp::compiler::flex
