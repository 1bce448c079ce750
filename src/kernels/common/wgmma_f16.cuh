// fp16 (f16 x f16 -> f32) wgmma shapes for the kernels that take fp16 inputs (the flex attention
// forward and backward, kernels/attention). The bf16 kernels keep their own wrappers untouched
// (kernels/gemm/gemm_bf16_sm90_wgmma.cuh, kernels/attention/flex_attention_kernel.cuh), so adding fp16
// changes none of their code. Operand conventions are those wrappers': descriptors of 128B-swizzled
// shared-memory tiles; A from registers holds, per warp, the m16n8k16 A layout (two f16 per register,
// the lower column in the low half). One asm statement per shape, the accumulator operand lists from
// wgmma_operands.h. sm_90a only: include from code guarded by __CUDA_ARCH_FEAT_SM90_ALL.
#pragma once

#include <cstdint>

#include "kernels/common/wgmma_operands.h"

namespace aisp::kernels::sm90 {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// d (64 x 128) = (scale_d ? d : 0) + A . B^T; A, B K-major descriptors.
__device__ __forceinline__ void wgmma_m64n128k16_ss_f16(float (&d)[64], std::uint64_t a, std::uint64_t b, int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {" AISP_WGMMA_REGS_64 "}"
      ", %64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : AISP_WGMMA_ACC_64(d)
      : "l"(a), "l"(b), "r"(scale_d));
}

// d (64 x 64) = (scale_d ? d : 0) + A . B^T; A, B K-major descriptors.
__device__ __forceinline__ void wgmma_m64n64k16_ss_f16(float (&d)[32], std::uint64_t a, std::uint64_t b, int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {" AISP_WGMMA_REGS_32 "}"
      ", %32, %33, p, 1, 1, 0, 0;\n"
      "}\n"
      : AISP_WGMMA_ACC_32(d)
      : "l"(a), "l"(b), "r"(scale_d));
}

// d (64 x 64) = (scale_d ? d : 0) + A . B with both operands MN-major (transpose bits set).
__device__ __forceinline__ void wgmma_m64n64k16_ss_tt_f16(float (&d)[32], std::uint64_t a, std::uint64_t b, int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {" AISP_WGMMA_REGS_32 "}"
      ", %32, %33, p, 1, 1, 1, 1;\n"
      "}\n"
      : AISP_WGMMA_ACC_32(d)
      : "l"(a), "l"(b), "r"(scale_d));
}

// d (64 x 64) += A . B; A from registers, B an MN-major descriptor (imm-trans-b = 1).
__device__ __forceinline__ void wgmma_m64n64k16_rs_f16(float (&d)[32], const std::uint32_t (&a)[4], std::uint64_t b) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {" AISP_WGMMA_REGS_32 "}"
      ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n"
      "}\n"
      : AISP_WGMMA_ACC_32(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

// d (64 x 128) += A . B; A from registers, B an MN-major descriptor (imm-trans-b = 1).
__device__ __forceinline__ void wgmma_m64n128k16_rs_f16(float (&d)[64], const std::uint32_t (&a)[4], std::uint64_t b) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {" AISP_WGMMA_REGS_64 "}"
      ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n"
      "}\n"
      : AISP_WGMMA_ACC_64(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace aisp::kernels::sm90
