// The accumulator operand lists of inline-PTX wgmma wrappers, written once. Inline PTX has no
// register arrays, so a wgmma with an N-column fp32 accumulator names N / 2 registers per thread one
// by one, in the asm string ({%0, ..., %k}) and in the operand list ("+f"(d[0]), ...). Every wrapper
// (kernels/gemm/gemm_bf16_sm90_wgmma.cuh, gemm_fp8_sm90_wgmma.cuh, kernels/common/wgmma_f16.cuh, the
// flex attention kernels) spells its own instruction, shape and extra operands and takes these lists:
//
//   asm volatile("... wgmma.mma_async....m64n128k16.f32.bf16.bf16 {" AISP_WGMMA_REGS_64 "}, %64, %65, ..."
//                : AISP_WGMMA_ACC_64(d) : "l"(desc_a), "l"(desc_b), ...);
//
// so operand k of the accumulator is register %k and the wrapper's own operands follow from
// %32 / %64 / %128 on. Plain macros: asm strings must be literals.
#pragma once

#define AISP_WGMMA_REGS_32 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15" \
  ", %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define AISP_WGMMA_REGS_64 \
  AISP_WGMMA_REGS_32 \
  ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47" \
  ", %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define AISP_WGMMA_REGS_128 \
  AISP_WGMMA_REGS_64 \
  ", %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79" \
  ", %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95" \
  ", %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111" \
  ", %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"

// Eight accumulator operands from d[base] on.
#define AISP_WGMMA_ACC_8(d, base)                                                                    \
  "+f"(d[base + 0]), "+f"(d[base + 1]), "+f"(d[base + 2]), "+f"(d[base + 3]), "+f"(d[base + 4]), \
      "+f"(d[base + 5]), "+f"(d[base + 6]), "+f"(d[base + 7])
#define AISP_WGMMA_ACC_32(d) AISP_WGMMA_ACC_8(d, 0), AISP_WGMMA_ACC_8(d, 8), AISP_WGMMA_ACC_8(d, 16), AISP_WGMMA_ACC_8(d, 24)
#define AISP_WGMMA_ACC_64(d) \
  AISP_WGMMA_ACC_32(d), AISP_WGMMA_ACC_8(d, 32), AISP_WGMMA_ACC_8(d, 40), AISP_WGMMA_ACC_8(d, 48), AISP_WGMMA_ACC_8(d, 56)
#define AISP_WGMMA_ACC_128(d)                                                                        \
  AISP_WGMMA_ACC_64(d), AISP_WGMMA_ACC_8(d, 64), AISP_WGMMA_ACC_8(d, 72), AISP_WGMMA_ACC_8(d, 80),         \
      AISP_WGMMA_ACC_8(d, 88), AISP_WGMMA_ACC_8(d, 96), AISP_WGMMA_ACC_8(d, 104), AISP_WGMMA_ACC_8(d, 112), \
      AISP_WGMMA_ACC_8(d, 120)
