// Precompiled FA3-structured forward kernels (flex_forward_fa3.cuh) for head dim 128, BuiltinScoreMod,
// BuiltinMask. The score_mod's kind is chosen here, on the host, and each kind has its own kernel
// with the concrete functor: a run-time switch per element cost 23 % at 8k for ALiBi (README). One
// translation unit per head dim so the kernels compile in parallel.
#include "kernels/attention/flex_attention_kernel.cuh"
#include "kernels/attention/flex_builtin_score_dispatch.h"

namespace aisp::kernels::flex::detail {

void forward_builtin_fa3_scored_d128(const FwdParams& p, const FlexAttentionArgs& a, const BuiltinScoreMod& score_mod,
                                   const BuiltinMask& mask_mod, cudaStream_t stream) {
  with_builtin_score_mod(score_mod, [&](const auto& mod) {
    launch_forward_fa3<128>(p, a, mod, mask_mod, stream);
  });
}

}  // namespace aisp::kernels::flex::detail
