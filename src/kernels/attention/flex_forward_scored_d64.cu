// Precompiled bf16 forward kernels (mma.sync and wgmma; fp16: flex_forward_fp16_classic.cu) for head dim
// 64, BuiltinScoreMod, BuiltinMask (the fa3 kernel: flex_forward_fa3_scored_d64.cu): one translation unit
// per (score family, head dim) so the kernels compile in parallel.
#include "kernels/attention/flex_attention_kernel.cuh"

namespace aisp::kernels::flex::detail {

void forward_builtin_scored_d64(const FwdParams& p, const FlexAttentionArgs& a, const BuiltinScoreMod& score_mod,
                            const BuiltinMask& mask_mod, cudaStream_t stream) {
  launch_forward_classic_elem<64, BuiltinScoreMod, BuiltinMask, bf16>(p, a, score_mod, mask_mod, stream);
}

}  // namespace aisp::kernels::flex::detail
