// The two wgmma shapes the sm90 GEMM uses, one asm statement per shape (the accumulator operand
// lists come from kernels/common/wgmma_operands.h); see gemm_bf16_sm90.cu for the descriptors and
// the accumulator layout.
#pragma once

#include <cstdint>

#include "kernels/common/wgmma_operands.h"

namespace aisp::kernels::gemm::sm90 {

// D(64x128, fp32, 64 registers per thread) (+)= A(64x16, smem) * B(128x16, smem)^T, both
// K-major with 128B swizzle; scale_d == 0 overwrites D instead of accumulating.
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], std::uint64_t desc_a,
                                                std::uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" AISP_WGMMA_REGS_64 "}"
      ", %64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : AISP_WGMMA_ACC_64(d)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#else
  (void)d; (void)desc_a; (void)desc_b; (void)scale_d;
#endif
}

// D(64x256, fp32, 128 registers per thread) (+)= A(64x16, smem) * B(256x16, smem)^T, both
// K-major with 128B swizzle; scale_d == 0 overwrites D instead of accumulating.
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], std::uint64_t desc_a,
                                                std::uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" AISP_WGMMA_REGS_128 "}"
      ", %128, %129, p, 1, 1, 0, 0;\n"
      "}\n"
      : AISP_WGMMA_ACC_128(d)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#else
  (void)d; (void)desc_a; (void)desc_b; (void)scale_d;
#endif
}

}  // namespace aisp::kernels::gemm::sm90
