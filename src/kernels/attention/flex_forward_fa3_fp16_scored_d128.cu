// Precompiled FA3-structured forward kernels (flex_forward_fa3.cuh) on fp16 inputs for head dim 128,
// BuiltinScoreMod, BuiltinMask: the fp16 twin of flex_forward_fa3_scored_d128.cu (one kernel per
// score_mod kind, chosen here on the host), in its own translation unit.
#include "kernels/attention/flex_attention_kernel.cuh"

namespace aisp::kernels::flex::detail {

void forward_builtin_fa3_fp16_plain_d128(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                       const BuiltinMask&, cudaStream_t);

void forward_builtin_fa3_fp16_scored_d128(const FwdParams& p, const FlexAttentionArgs& a,
                                        const BuiltinScoreMod& score_mod, const BuiltinMask& mask_mod,
                                        cudaStream_t stream) {
  switch (score_mod.kind) {
    case BuiltinScoreMod::Kind::alibi:
      launch_forward_fa3<128, Alibi, BuiltinMask, __half>(p, a, score_mod.alibi, mask_mod, stream);
      break;
    case BuiltinScoreMod::Kind::relative_bias:
      launch_forward_fa3<128, RelativeBias, BuiltinMask, __half>(p, a, score_mod.relative_bias, mask_mod, stream);
      break;
    case BuiltinScoreMod::Kind::soft_cap:
      launch_forward_fa3<128, SoftCap, BuiltinMask, __half>(p, a, score_mod.soft_cap, mask_mod, stream);
      break;
    default:  // none: the plain kernel (flex_attention.cu routes it there already)
      forward_builtin_fa3_fp16_plain_d128(p, a, score_mod, mask_mod, stream);
      break;
  }
}

}  // namespace aisp::kernels::flex::detail
