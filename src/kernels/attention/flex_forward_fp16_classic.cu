// Precompiled fp16 forward kernels (mma.sync and wgmma) for the run-time built-ins, both head dims, no
// score_mod or BuiltinScoreMod, BuiltinMask. Apart from the bf16 TUs (flex_forward_{plain,scored}_d*.cu)
// so that the bf16 kernels compile exactly as before: in one TU with their fp16 twins, the shared
// device functions gain call sites and ptxas scheduled the bf16 wgmma kernel differently (README,
// "The classic kernels"). The fp16 instances are fallbacks, so one TU holds all four.
#include "kernels/attention/flex_attention_kernel.cuh"

namespace aisp::kernels::flex::detail {

void forward_builtin_fp16_plain_d64(const FwdParams& p, const FlexAttentionArgs& a, const BuiltinScoreMod&,
                                    const BuiltinMask& mask_mod, cudaStream_t stream) {
  launch_forward_classic_elem<64, NoScoreMod, BuiltinMask, __half>(p, a, NoScoreMod{}, mask_mod, stream);
}

void forward_builtin_fp16_plain_d128(const FwdParams& p, const FlexAttentionArgs& a, const BuiltinScoreMod&,
                                     const BuiltinMask& mask_mod, cudaStream_t stream) {
  launch_forward_classic_elem<128, NoScoreMod, BuiltinMask, __half>(p, a, NoScoreMod{}, mask_mod, stream);
}

void forward_builtin_fp16_scored_d64(const FwdParams& p, const FlexAttentionArgs& a, const BuiltinScoreMod& score_mod,
                                     const BuiltinMask& mask_mod, cudaStream_t stream) {
  launch_forward_classic_elem<64, BuiltinScoreMod, BuiltinMask, __half>(p, a, score_mod, mask_mod, stream);
}

void forward_builtin_fp16_scored_d128(const FwdParams& p, const FlexAttentionArgs& a,
                                      const BuiltinScoreMod& score_mod, const BuiltinMask& mask_mod,
                                      cudaStream_t stream) {
  launch_forward_classic_elem<128, BuiltinScoreMod, BuiltinMask, __half>(p, a, score_mod, mask_mod, stream);
}

}  // namespace aisp::kernels::flex::detail
