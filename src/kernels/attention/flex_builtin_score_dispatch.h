// with_builtin_score_mod: the precompiled scored entry points pick the score_mod's kind here, on the
// host, and run the kernel instantiated with that kind's functor. A kernel instantiated with
// BuiltinScoreMod itself switches per element over three bodies: 23 % slower at 8k for ALiBi in the
// fa3 forward, and in the backward 64 B of stack at D = 128 and the soft-cap hidden from
// flex_score_and_grad (README, "Backward"). Callers: the fa3 forward's
// flex_forward_fa3_[fp16_]scored_d*.cu, the backward's flex_backward_[sm90_][fp16_]scored_d*.cu and
// flex_backward_fp16_mma_sync.cu. Kind none never comes here: flex_attention.cu and flex_backward.cu
// run the plain kernels for it.
#pragma once

#include "core/error.h"
#include "kernels/attention/flex_mods.h"

namespace aisp::kernels::flex::detail {

template <class Run>
void with_builtin_score_mod(const BuiltinScoreMod& score_mod, Run&& run) {
  switch (score_mod.kind) {
    case BuiltinScoreMod::Kind::alibi: run(score_mod.alibi); return;
    case BuiltinScoreMod::Kind::relative_bias: run(score_mod.relative_bias); return;
    case BuiltinScoreMod::Kind::soft_cap: run(score_mod.soft_cap); return;
    case BuiltinScoreMod::Kind::none: break;
  }
  throw Error("flex attention: a scored kernel was asked to run without a score_mod (the plain kernels take "
              "that; flex_attention.cu and flex_backward.cu route it there)");
}

}  // namespace aisp::kernels::flex::detail
