// erf16: the erf that GELU uses when its result is rounded to bf16 or fp16 — one definition for
// every kernel that computes such a GELU, hand-written (nvcc) or generated (NVRTC).
//
//   erf16(x) = sign(x) · (1 − 2^q(|x|)),   q(u) = u·(c1 + u·(c2 + u·(c3 + u·(c4 + u·c5))))
//
// q is a degree-5 minimax fit of log2(erfc(u)) on [0, 4] weighted by erfc(u) (so it is the absolute
// error of erf that is minimized), with q(0) = 0 so that erf16(±0) = ±0. The leading coefficient is
// negative and q decreases on [0, ∞): large |x| give 2^q → 0 and erf16 → ±1 without a clamp, and
// ±∞ gives ±1, NaN gives NaN. 2^q is `ex2.approx.ftz.f32` (one MUFU.EX2). No branch, no select:
// 8 SASS instructions (4 FFMA with |x| as an operand modifier, FMUL, MUFU.EX2, FADD, LOP3 for the
// sign) against ~25 for CUDA's erff (two polynomials whose coefficients are chosen per element by
// 9 FSELs, and an EX2), which made the GELU kernels issue-bound.
//
// Precision (the decision): max |erf16(x) − erf(x)| = 6.6e-7 (bound 7e-7) over a dense sweep against
// double erf with an exact 2^q (tests/cpu/erf16_test.cc; erff: 5.1e-8), ≤ 1e-6 on the device with
// ex2.approx (tests/gpu/erf16_test.cu). That is ~2^-20.5 against a bf16 half-ulp of 2^-9 at 1: GELU's
// 0.5·y·(1 + erf) differs from the exact one by ≤ 3.7e-7·max(1, |y|) (erff: ~5e-8·|y|), far below
// the bf16 (2^-9 relative) and fp16 (2^-12) roundings of GELU values of order |y|. It is an
// *absolute* bound: near x = 0 erf16 is not relatively accurate (0.4 % at x = 1e-6 with an exact
// 2^q, more with ex2.approx), and in GELU's negative tail, where 1 + erf cancels, the relative
// error of the tiny result grows: 4.6e-5 at y = −3, 0.6 % at y = −4 (|GELU| = 1.3e-4), 6 % at y = −5
// (erff: 1.4e-6, 0.03 %, 4 %); the absolute error there stays below 3e-6. So:
//   * hand-written kernels use it for GELU on 16-bit outputs (kernels/elementwise: the eager GELU
//     kernel and the fused LayerNorm-GELU kernel), fp32 results keep erff;
//   * the compiler's CUDA code generator uses it for an erf node whose every use adds a constant of
//     magnitude ≥ 1 (GELU's 1 + erf, where only the absolute error survives) and whose value reaches
//     only bf16/fp16 roundings (compiler/codegen/erf_precision.h); any other erf stays erff.
// The float64 references (interpreter, example references) stay exact.
//
// Why a macro: the same tokens must be compiled by nvcc (kernels/common/erf16.cuh) and handed to
// NVRTC as text (compiler/codegen/cuda_prelude.h: AISP_ERF16_TEXT). QUALIFIERS is the function's
// declaration specifiers; EX2(q) is 2^q (ex2.approx on the GPU, std::exp2 in the CPU error test).
#pragma once

#define AISP_ERF16_DEFINITION(QUALIFIERS, EX2)                                                   \
  QUALIFIERS float erf16(float x) {                                                             \
    const float u = fabsf(x);                                                                   \
    float q = fmaf(-2.94410321e-3f, u, 2.95898616e-2f);                                         \
    q = fmaf(q, u, -1.48665428e-1f);                                                            \
    q = fmaf(q, u, -9.18509424e-1f);                                                            \
    q = fmaf(q, u, -1.62788904e+0f);                                                            \
    return copysignf(1.0f - EX2(q * u), x);                                                     \
  }

// 2^x by the SFU (ex2.approx.ftz.f32: relative error below 2^-22, subnormal results flushed to 0).
#define AISP_EX2_APPROX_DEFINITION(QUALIFIERS)                                                   \
  QUALIFIERS float ex2_approx(float x) {                                                        \
    float y;                                                                                    \
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));                                       \
    return y;                                                                                   \
  }

#define AISP_ERF16_STRINGIFY_(...) #__VA_ARGS__
#define AISP_ERF16_STRINGIFY(...) AISP_ERF16_STRINGIFY_(__VA_ARGS__)

// The device code as text for NVRTC sources that define `DEV` as their function specifiers.
#define AISP_ERF16_TEXT                                                                          \
  AISP_ERF16_STRINGIFY(AISP_EX2_APPROX_DEFINITION(DEV)) "\n" AISP_ERF16_STRINGIFY(               \
      AISP_ERF16_DEFINITION(DEV, ex2_approx)) "\n"
