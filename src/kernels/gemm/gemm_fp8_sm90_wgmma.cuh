// The two fp8 wgmma shapes of the sm90 fp8 GEMM (e4m3 x e4m3 -> fp32, k32), one asm statement per
// shape as in gemm_bf16_sm90_wgmma.cuh (operand lists from kernels/common/wgmma_operands.h); fp8
// wgmma has no transpose immediates: both operands must be K-major. The accumulator fragment layout
// is the bf16 one (acc[4 j + 2 h + e] = row warp*16 + lane/4 + 8 h, column 8 j + 2 (lane % 4) + e).
#pragma once

#include <cstdint>

#include "kernels/common/wgmma_operands.h"

namespace aisp::kernels::gemm::sm90 {

// D(64x128, fp32, 64 registers per thread) (+)= A(64x32 e4m3, smem) * B(128x32 e4m3, smem)^T, both
// K-major with 128B swizzle; scale_d == 0 overwrites D instead of accumulating.
__device__ __forceinline__ void wgmma_m64n128k32_e4m3(float (&d)[64], std::uint64_t desc_a,
                                                     std::uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {" AISP_WGMMA_REGS_64 "}"
      ", %64, %65, p, 1, 1;\n"
      "}\n"
      : AISP_WGMMA_ACC_64(d)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#else
  (void)d; (void)desc_a; (void)desc_b; (void)scale_d;
#endif
}

// D(64x256, fp32, 128 registers per thread) (+)= A(64x32 e4m3, smem) * B(256x32 e4m3, smem)^T, both
// K-major with 128B swizzle; scale_d == 0 overwrites D instead of accumulating.
__device__ __forceinline__ void wgmma_m64n256k32_e4m3(float (&d)[128], std::uint64_t desc_a,
                                                     std::uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k32.f32.e4m3.e4m3 {" AISP_WGMMA_REGS_128 "}"
      ", %128, %129, p, 1, 1;\n"
      "}\n"
      : AISP_WGMMA_ACC_128(d)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#else
  (void)d; (void)desc_a; (void)desc_b; (void)scale_d;
#endif
}

}  // namespace aisp::kernels::gemm::sm90
