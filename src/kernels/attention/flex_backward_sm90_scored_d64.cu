// Precompiled wgmma backward kernel (flex_backward_sm90.cuh, sm_90a) for head dim 64,
// one kernel per BuiltinScoreMod kind (with_builtin_score_mod), BuiltinMask: one translation unit per (score
// family, head dim) so the kernels compile in parallel.
#include <type_traits>

#include "kernels/attention/flex_backward_kernel.cuh"
#include "kernels/attention/flex_builtin_score_dispatch.h"

namespace aisp::kernels::flex::detail {

void backward_sm90_builtin_scored_d64(const FlexBackwardArgs& a, const BwdParams& p,
                                   const BuiltinScoreMod& score_mod, const BuiltinMask& mask_mod,
                                   cudaStream_t stream) {
  with_builtin_score_mod(score_mod, [&](const auto& mod) {
    launch_backward_sm90<64, std::decay_t<decltype(mod)>, BuiltinMask, bf16>(a, p, mod, mask_mod, stream);
  });
}

}  // namespace aisp::kernels::flex::detail
