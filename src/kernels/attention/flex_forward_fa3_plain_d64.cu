// Precompiled FA3-structured forward kernel (flex_forward_fa3.cuh) for head dim 64, no score_mod,
// BuiltinMask: one translation unit per (score family, head dim) so the kernels compile in parallel.
#include "kernels/attention/flex_attention_kernel.cuh"

namespace aisp::kernels::flex::detail {

void forward_builtin_fa3_plain_d64(const FwdParams& p, const FlexAttentionArgs& a, const BuiltinScoreMod&,
                                 const BuiltinMask& mask_mod, cudaStream_t stream) {
  launch_forward_fa3<64>(p, a, NoScoreMod{}, mask_mod, stream);
}

}  // namespace aisp::kernels::flex::detail
