// References for the fp8 GEMM (gemm_fp8.h), all in float64 on the GPU (the CPU is too slow at the
// example's sizes; tests check these kernels against a CPU loop at small sizes):
//   * gemm_fp8_reference_f64: the contract on the *dequantized* codes, sum_k (code_a sa)(code_b sb),
//     each product exact in float64 -- a kernel's error against it is the kernel's own (accumulation
//     order and precision, the one bf16 rounding), not the quantization's;
//   * gemm_bf16_reference_f64: the unquantized product of the bf16 operands the codes were made
//     from -- the error against it is what fp8 costs end to end.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/gemm/gemm_fp8.h"
#include "kernels/gemm/gemm_reference.h"

namespace aisp::kernels::gemm {

// Tolerances of an fp8 GEMM's bf16 output: per element |out - ref| <= atol + rtol |ref| and relative
// L2 <= max_rel_l2, where `output_rms` is the RMS of the exact product (sqrt(K) for unit-normal
// operands, 1 for the example's A ~ N(0, 1), B ~ N(0, 1/K)). Measured errors: README.md, "fp8".
struct Fp8Tolerance {
  double atol = 0, rtol = 0, max_rel_l2 = 0;
};

// Accumulation error allowed on top of the bf16 rounding, relative to the output. Hopper's fp8
// tensor cores add products with fewer bits than fp32 (DeepSeek-V3's report: about 14 kept, low bits
// truncated), so every k32 wgmma step may lose ~2^-14 of the running sum. Per tensor the whole K
// stays in the tensor cores (K/32 steps); block scaling promotes to fp32 every 128 K (4 steps). Twice
// that model's worst case, 2^-13 per step.
inline double fp8_accumulation_error(int k, Fp8Scaling scaling) {
  const int steps = scaling == Fp8Scaling::per_tensor ? (k + 31) / 32 : 4;
  return double(steps) / 8192.0;
}

// Against gemm_fp8_reference_f64 (the kernel's own error): one bf16 rounding (2^-9 relative, rtol
// 2^-8), fp32 summation noise (atol 1 % of the RMS) and the accumulation error above.
inline Fp8Tolerance fp8_kernel_tolerance(double output_rms, int k, Fp8Scaling scaling) {
  const double acc = fp8_accumulation_error(k, scaling);
  return {(1e-2 + acc) * output_rms, 1.0 / 256.0 + acc, 5e-3 + acc};
}

// Against gemm_bf16_reference_f64 (the unquantized product: what fp8 costs end to end). e4m3 keeps 3
// mantissa bits, a rounding error of at most 2^-4 relative per operand, ~2.6 % RMS for normal data;
// with both operands quantized the product is off by ~3.7 % of its RMS, element errors ~N(0, 0.037
// rms). Over 6.7e7 outputs the largest is ~5.7 sigma = 0.21 rms: atol 0.35 rms; where one term
// dominates a short sum the error follows |ref| instead: rtol 2^-4; relative L2 6 %. Plus the
// accumulation error.
inline Fp8Tolerance fp8_end_to_end_tolerance(double output_rms, int k, Fp8Scaling scaling) {
  const double acc = fp8_accumulation_error(k, scaling);
  return {(0.35 + acc) * output_rms, 1.0 / 16.0 + acc, 6e-2 + acc};
}

// d (M, N), row-major float64. args.d is not touched.
void gemm_fp8_reference_f64(const GemmFp8Args& args, double* d, cudaStream_t stream);

// d (M, N) = A (M, K) . B (N, K)^T of bf16 inputs, float64.
void gemm_bf16_reference_f64(const bf16* a, const bf16* b, int m, int n, int k, double* d, cudaStream_t stream);

// The value a code stands for under `scaling`, as the reference uses it (host side, for tests):
// element (row, col) of A or of B.
double fp8_dequantized_a(const GemmFp8Args& args, const fp8* a_host, const float* a_scale_host, int row, int col);
double fp8_dequantized_b(const GemmFp8Args& args, const fp8* b_host, const float* b_scale_host, int row, int col);

}  // namespace aisp::kernels::gemm
