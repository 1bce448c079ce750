// erf16 for hand-written kernels (nvcc): aisp::kernels::erf16, the erf of GELU on 16-bit outputs.
// The definition, its error bound and where it is used: erf16.h.
#pragma once

#include "kernels/common/erf16.h"

namespace aisp::kernels {

AISP_EX2_APPROX_DEFINITION(__device__ __forceinline__)
AISP_ERF16_DEFINITION(__device__ __forceinline__, ex2_approx)

}  // namespace aisp::kernels
