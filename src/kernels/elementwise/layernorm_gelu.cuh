// LayerNorm -> GELU(erf) -> row mask -> residual add on bf16 rows, two ways (see README.md):
//
//   out[r, c] = x[r, c] + mask[r] * gelu( (x[r, c] - mean_r) * rstd_r * weight[c] + bias[c] )
//   mean_r = sum_c x[r, c] / cols,  var_r = sum_c (x[r, c] - mean_r)^2 / cols  (biased),
//   rstd_r = 1 / sqrt(var_r + eps),  gelu(y) = 0.5 y (1 + erf(y / sqrt(2))).
//
// * eager: four launches, each materializing a bf16 intermediate (what an eager framework runs):
//   layernorm_bf16 -> gelu_erf_bf16 -> row_scale_bf16 -> add_bf16.
// * fused: layernorm_gelu_mask_residual_bf16, one launch, the row stays in registers.
// * reference: the same function in float64 on the GPU, written as f32.
//
// Layouts: x, y, out are (rows, cols):(cols, 1) bf16; weight, bias (cols):(1) bf16; mask (rows):(1)
// u8. All arithmetic is fp32 (the reference: fp64). Every function handles any rows >= 0 and
// 0 <= cols <= max_layernorm_cols(); 16-byte vectors are used where cols % 8 == 0 and the
// pointers are 16-byte aligned, scalar code otherwise. Launch errors raise aisp::Error.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace aisp::kernels {

using bf16 = __nv_bfloat16;

struct LayerNormGeluArgs {
  const bf16* x = nullptr;           // (rows, cols)
  const bf16* weight = nullptr;      // (cols)
  const bf16* bias = nullptr;        // (cols)
  const std::uint8_t* row_mask = nullptr;  // (rows); ignored by layernorm_bf16
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  float eps = 1e-5f;
};

// ---- The row launch plan (a pure function, exposed for tests and the README) -----------------
// One block per row. A thread holds `chunks_per_thread` chunks of `vec` elements in registers
// (chunk i of thread t covers elements [(i * threads + t) * vec, +vec)).
struct RowPlan {
  int vec = 8;                // 8: 16-byte vectors; 1: scalar (cols % 8 != 0 or misaligned)
  int chunks_per_thread = 1;  // 1, 2, 4, 8 (vec 8) or up to 16 (vec 1)
  int threads = 32;           // multiple of 32, at most 1024
};
RowPlan plan_row(std::int64_t cols, bool vectorized);
// Largest cols the row kernels take (vectorized: 65536; scalar path: 16384).
std::int64_t max_layernorm_cols(bool vectorized);

// ---- Eager baseline: one launch per op, bf16 intermediates -------------------------------------
// y = bf16( (x - mean) * rstd * weight + bias ), stats in fp32 from registers (two-pass).
void layernorm_bf16(const LayerNormGeluArgs& args, bf16* y, cudaStream_t stream);
// y = bf16( gelu_erf(x) ), n elements.
void gelu_erf_bf16(const bf16* x, bf16* y, std::int64_t n, cudaStream_t stream);
// y[r, c] = bf16( x[r, c] * mask[r] ).
void row_scale_bf16(const bf16* x, const std::uint8_t* mask, bf16* y, std::int64_t rows,
                    std::int64_t cols, cudaStream_t stream);
// out = bf16( a + b ), n elements.
void add_bf16(const bf16* a, const bf16* b, bf16* out, std::int64_t n, cudaStream_t stream);

// ---- Fused: the whole function in one pass over x ---------------------------------------------
void layernorm_gelu_mask_residual_bf16(const LayerNormGeluArgs& args, bf16* out,
                                       cudaStream_t stream);

// ---- Reference: float64 arithmetic on the GPU, result rounded once to f32 ----------------------
void layernorm_gelu_mask_residual_reference(const LayerNormGeluArgs& args, float* out,
                                            cudaStream_t stream);

}  // namespace aisp::kernels
