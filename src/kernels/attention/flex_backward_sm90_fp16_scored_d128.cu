// Precompiled wgmma backward kernel (flex_backward_sm90.cuh, sm_90a) on fp16 inputs for head dim 128,
// BuiltinScoreMod (value and grad() per element), BuiltinMask: the fp16 twin of
// flex_backward_sm90_scored_d128.cu, in its own translation unit.
#include "kernels/attention/flex_backward_kernel.cuh"

namespace aisp::kernels::flex::detail {

void backward_sm90_fp16_builtin_scored_d128(const FlexBackwardArgs& a, const BwdParams& p,
                                          const BuiltinScoreMod& score_mod, const BuiltinMask& mask_mod,
                                          cudaStream_t stream) {
  launch_backward_sm90<128, BuiltinScoreMod, BuiltinMask, __half>(a, p, score_mod, mask_mod, stream);
}

}  // namespace aisp::kernels::flex::detail
