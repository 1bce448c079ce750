// Precompiled fp16 mma.sync backward kernels for the run-time built-ins, both head dims, no score_mod or
// one per BuiltinScoreMod kind, BuiltinMask; apart from the bf16 TUs (flex_backward_{plain,scored}_d*.cu) so that
// those compile exactly as before, as for the forward (flex_forward_fp16_classic.cu).
#include <type_traits>

#include "kernels/attention/flex_backward_kernel.cuh"
#include "kernels/attention/flex_builtin_score_dispatch.h"

namespace aisp::kernels::flex::detail {

void backward_builtin_fp16_plain_d64(const FlexBackwardArgs& a, const BwdParams& p, const BuiltinMask& mask_mod,
                                     cudaStream_t stream) {
  launch_backward_elem<64, NoScoreMod, BuiltinMask, __half>(a, p, NoScoreMod{}, mask_mod, stream);
}

void backward_builtin_fp16_plain_d128(const FlexBackwardArgs& a, const BwdParams& p, const BuiltinMask& mask_mod,
                                      cudaStream_t stream) {
  launch_backward_elem<128, NoScoreMod, BuiltinMask, __half>(a, p, NoScoreMod{}, mask_mod, stream);
}

void backward_builtin_fp16_scored_d64(const FlexBackwardArgs& a, const BwdParams& p,
                                      const BuiltinScoreMod& score_mod, const BuiltinMask& mask_mod,
                                      cudaStream_t stream) {
  with_builtin_score_mod(score_mod, [&](const auto& mod) {
    launch_backward_elem<64, std::decay_t<decltype(mod)>, BuiltinMask, __half>(a, p, mod, mask_mod, stream);
  });
}

void backward_builtin_fp16_scored_d128(const FlexBackwardArgs& a, const BwdParams& p,
                                       const BuiltinScoreMod& score_mod, const BuiltinMask& mask_mod,
                                       cudaStream_t stream) {
  with_builtin_score_mod(score_mod, [&](const auto& mod) {
    launch_backward_elem<128, std::decay_t<decltype(mod)>, BuiltinMask, __half>(a, p, mod, mask_mod, stream);
  });
}

}  // namespace aisp::kernels::flex::detail
