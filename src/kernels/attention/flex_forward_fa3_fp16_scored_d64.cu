// Precompiled FA3-structured forward kernels (flex_forward_fa3.cuh) on fp16 inputs for head dim 64,
// BuiltinScoreMod, BuiltinMask: the fp16 twin of flex_forward_fa3_scored_d64.cu (one kernel per
// score_mod kind, chosen here on the host), in its own translation unit.
#include "kernels/attention/flex_attention_kernel.cuh"
#include "kernels/attention/flex_builtin_score_dispatch.h"

namespace aisp::kernels::flex::detail {

void forward_builtin_fa3_fp16_scored_d64(const FwdParams& p, const FlexAttentionArgs& a,
                                        const BuiltinScoreMod& score_mod, const BuiltinMask& mask_mod,
                                        cudaStream_t stream) {
  with_builtin_score_mod(score_mod, [&](const auto& mod) {
    launch_forward_fa3<64, std::decay_t<decltype(mod)>, BuiltinMask, __half>(p, a, mod, mask_mod, stream);
  });
}

}  // namespace aisp::kernels::flex::detail
