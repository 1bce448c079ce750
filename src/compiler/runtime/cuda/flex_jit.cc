#include "compiler/runtime/cuda/flex_jit.h"

#include <utility>

#include <fmt/format.h>

#include "compiler/runtime/cuda/flex_jit_common.h"
#include "compiler/runtime/cuda/flex_jit_source.h"
#include "core/error.h"
#include "kernels/attention/flex_jit_launch.h"

namespace aisp::compiler::flex {
namespace {

std::string describe(const ModExpr& score, const ModExpr* mask) {
  return fmt::format("score_mod '{}' with mask_mod '{}'", score.text(), mask ? mask->text() : "(none)");
}

// The forward kernel the mods are compiled into: fa3 where the JIT targets sm_90a (automatic), the
// mma.sync kernel elsewhere or when asked for.
kernels::flex::FlexKernel resolve_jit_forward_kernel(kernels::flex::FlexKernel requested, const NvrtcJit& jit) {
  using kernels::flex::FlexKernel;
  switch (requested) {
    case FlexKernel::automatic:
      return jit.arch() == "sm_90a" ? FlexKernel::fa3 : resolve_jit_forward_kernel(FlexKernel::mma_sync, jit);
    case FlexKernel::fa3: check_jit_targets_sm90a(jit, "flex JIT", "the fa3 kernel"); return FlexKernel::fa3;
    case FlexKernel::mma_sync: check_jit_targets_sm80(jit, "flex JIT", "the mma.sync forward"); return requested;
    default:
      throw Error(fmt::format("flex JIT: the {} kernel is not compiled at run time (fa3, mma_sync or automatic)",
                              kernels::flex::flex_kernel_name(requested)));
  }
}

std::vector<std::uint64_t> bytes_or_zero(std::vector<std::uint64_t> words) {
  if (words.empty()) words.push_back(0);  // an empty functor still has one byte the launch reads
  return words;
}

}  // namespace

NvrtcOptions flex_jit_nvrtc_options(std::string cache_dir, std::string arch) {
  NvrtcOptions o;
  o.cache_dir = std::move(cache_dir);
  o.arch = std::move(arch);
  o.flags = flex_jit_nvrtc_flags();
  return o;
}

NvrtcJit& default_flex_nvrtc_jit() {
  static NvrtcJit jit(flex_jit_nvrtc_options());
  return jit;
}

JitFlexAttention::JitFlexAttention(const std::string& score_expr, const std::string& mask_expr,
                                   std::vector<CaptureSpec> captures, int head_dim, NvrtcJit& jit, bool load,
                                   kernels::flex::FlexDtype dtype, kernels::flex::FlexKernel kernel)
    : score_(ModExpr::parse(score_expr.empty() ? "score" : score_expr, ModExpr::Kind::score_mod, captures)),
      head_dim_(head_dim),
      dtype_(dtype),
      kernel_(resolve_jit_forward_kernel(kernel, jit)) {
  check_jit_head_dim(head_dim, "flex JIT");
  mask_ = parse_jit_mask(mask_expr, captures);
  const bool fa3 = kernel_ == kernels::flex::FlexKernel::fa3;
  const NvrtcResult fwd = compile_jit_source(
      jit,
      fa3 ? fa3_forward_source(score_, mask_.get(), head_dim, dtype)
          : mma_sync_forward_source(score_, mask_.get(), head_dim, dtype),
      fmt::format("the {} forward ({}) for {}", fa3 ? "fa3" : "mma.sync", kernels::flex::flex_dtype_name(dtype),
                  describe(score_, mask_.get())));
  info_.forward_ms = fwd.compile_ms;
  info_.forward_from = fwd.from;
  info_.forward_source = fwd.source_path;
  NvrtcResult bm;
  if (mask_) {
    bm = compile_jit_source(jit, block_mask_source(*mask_),
                            fmt::format("the block-mask builder for mask_mod '{}'", mask_->text()));
    info_.block_mask_ms = bm.compile_ms;
    info_.block_mask_from = bm.from;
    info_.block_mask_source = bm.source_path;
  }
  if (!load) return;
  if (fa3) {
    forward_ = jit.load(fwd, find_kernel_symbol(fwd.cubin, "flex_forward_fa3_kernel"));
    kernels::flex::configure_jit_forward_fa3(forward_, head_dim);
  } else {
    forward_ = jit.load(fwd, find_kernel_symbol(fwd.cubin, "flex_forward_kernel"));
    kernels::flex::configure_jit_forward_mma_sync(forward_, head_dim);
  }
  if (mask_) block_mask_ = jit.load(bm, find_kernel_symbol(bm.cubin, "block_mask_kernel"));
}

JitFlexAttention::~JitFlexAttention() = default;

JitFlexAttention::Bound JitFlexAttention::bind_mods(const ModExpr& score, const ModExpr* mask,
                                                   const std::vector<DeviceCapture>& captures) {
  Bound b;
  b.score_bytes = bytes_or_zero(functor_bytes(score, captures));
  b.mask_bytes = bytes_or_zero(mask ? functor_bytes(*mask, captures) : std::vector<std::uint64_t>{});
  return b;
}

kernels::flex::BlockMask JitFlexAttention::create_block_mask(const Bound& mods, int batch, int heads, int q_len,
                                                             int kv_len, cudaStream_t stream) const {
  if (!mask_) throw Error("flex JIT: create_block_mask needs a mask_mod (this one was compiled without)");
  if (block_mask_ == nullptr) throw Error("flex JIT: compiled with load = false: nothing to launch");
  return kernels::flex::create_block_mask_jit(block_mask_, mods.mask_bytes.data(), mask_->uses_batch() ? batch : 1,
                                              mask_->uses_head() ? heads : 1, q_len, kv_len, stream);
}

void JitFlexAttention::run(const kernels::flex::FlexAttentionArgs& args, const kernels::flex::BlockMask& block_mask,
                           const Bound& mods, cudaStream_t stream) const {
  if (forward_ == nullptr) throw Error("flex JIT: compiled with load = false: nothing to launch");
  if (args.head_dim != head_dim_)
    throw Error(fmt::format("flex JIT: compiled for head dim {}, called with {}", head_dim_, args.head_dim));
  if (args.dtype != dtype_)
    throw Error(fmt::format("flex JIT: compiled for {} inputs, called with {} (construct it with that dtype)",
                            kernels::flex::flex_dtype_name(dtype_), kernels::flex::flex_dtype_name(args.dtype)));
  if (kernel_ == kernels::flex::FlexKernel::mma_sync) {
    kernels::flex::launch_jit_forward_mma_sync(forward_, args, block_mask, mods.score_bytes.data(),
                                               mods.mask_bytes.data(), stream);
    return;
  }
  // A JIT mask_mod's rows count as uneven even when it is a document-id mask (`doc[q] == doc[kv]`):
  // the expression is not classified, so it takes the general group of 4 (resolve_head_group).
  const auto rows = mask_ == nullptr ? kernels::flex::MaskRows::all_kept : kernels::flex::MaskRows::uneven;
  kernels::flex::launch_jit_forward_fa3(forward_, args, block_mask, mods.score_bytes.data(), mods.mask_bytes.data(),
                                        rows, stream);
}

}  // namespace aisp::compiler::flex
