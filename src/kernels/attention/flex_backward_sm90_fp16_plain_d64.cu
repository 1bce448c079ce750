// Precompiled wgmma backward kernel (flex_backward_sm90.cuh, sm_90a) on fp16 inputs for head dim 64
// without a score_mod, BuiltinMask: the fp16 twin of flex_backward_sm90_plain_d64.cu, in its own
// translation unit so the kernels compile in parallel.
#include "kernels/attention/flex_backward_kernel.cuh"

namespace aisp::kernels::flex::detail {

void backward_sm90_fp16_builtin_plain_d64(const FlexBackwardArgs& a, const BwdParams& p, const BuiltinMask& mask_mod,
                                         cudaStream_t stream) {
  launch_backward_sm90<64, NoScoreMod, BuiltinMask, __half>(a, p, NoScoreMod{}, mask_mod, stream);
}

}  // namespace aisp::kernels::flex::detail
