// Precompiled bf16 forward kernels (mma.sync and wgmma; fp16: flex_forward_fp16_classic.cu) for head dim
// 64, no score_mod, BuiltinMask (the fa3 kernel: flex_forward_fa3_plain_d64.cu): one translation unit per
// (score family, head dim) so the kernels compile in parallel.
#include "kernels/attention/flex_attention_kernel.cuh"

namespace aisp::kernels::flex::detail {

void forward_builtin_plain_d64(const FwdParams& p, const FlexAttentionArgs& a, const BuiltinScoreMod&,
                            const BuiltinMask& mask_mod, cudaStream_t stream) {
  launch_forward_classic_elem<64, NoScoreMod, BuiltinMask, bf16>(p, a, NoScoreMod{}, mask_mod, stream);
}

}  // namespace aisp::kernels::flex::detail
