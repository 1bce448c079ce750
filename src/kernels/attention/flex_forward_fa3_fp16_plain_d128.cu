// Precompiled FA3-structured forward kernel (flex_forward_fa3.cuh) on fp16 inputs for head dim 128, no
// score_mod, BuiltinMask: the fp16 twin of flex_forward_fa3_plain_d128.cu, in its own translation unit
// so the kernels compile in parallel.
#include "kernels/attention/flex_attention_kernel.cuh"

namespace aisp::kernels::flex::detail {

void forward_builtin_fa3_fp16_plain_d128(const FwdParams& p, const FlexAttentionArgs& a, const BuiltinScoreMod&,
                                       const BuiltinMask& mask_mod, cudaStream_t stream) {
  launch_forward_fa3<128, NoScoreMod, BuiltinMask, __half>(p, a, NoScoreMod{}, mask_mod, stream);
}

}  // namespace aisp::kernels::flex::detail
