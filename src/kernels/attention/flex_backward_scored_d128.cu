// Precompiled bf16 backward kernel (fp16: flex_backward_fp16_mma_sync.cu) for head dim 128, BuiltinScoreMod
// (value and grad() per element), BuiltinMask: one translation unit per (score family, head dim) so the
// kernels compile in parallel.
#include "kernels/attention/flex_backward_kernel.cuh"

namespace aisp::kernels::flex::detail {

void backward_builtin_scored_d128(const FlexBackwardArgs& a, const BwdParams& p, const BuiltinScoreMod& score_mod,
                                 const BuiltinMask& mask_mod, cudaStream_t stream) {
  launch_backward_elem<128, BuiltinScoreMod, BuiltinMask, bf16>(a, p, score_mod, mask_mod, stream);
}

}  // namespace aisp::kernels::flex::detail
