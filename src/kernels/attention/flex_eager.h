// The eager pieces of attention with mods, one launch per op, as an eager framework runs them
// (ch14:flex_attention's baseline), and the float64 GPU reference of the whole function.
//
// Eager (scores (batch * heads, q_len, kv_len) bf16, row-major; every step materializes bf16):
//   S = scale * Q K^T            cuBLAS strided-batched GEMM (fp32 accumulate, bf16 out)
//   S = score_mod(S)             eager_score_mod_bf16
//   S = mask ? S : -inf          eager_mask_bf16
//   P = softmax(S)               eager_softmax_bf16 (fp32 math; a fully masked row gives zeros)
//   O = P V                      cuBLAS strided-batched GEMM
// (q_heads == kv_heads for the eager path.)
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_mods.h"

namespace aisp::kernels::flex {

// s = bf16(score_mod(float(s))) in place over (batch, heads, q_len, kv_len).
void eager_score_mod_bf16(const bf16* in, bf16* out, int batch, int heads, int q_len, int kv_len,
                          const BuiltinScoreMod& score_mod, cudaStream_t stream);
// out = mask(b, h, q, kv) ? in : -inf.
void eager_mask_bf16(const bf16* in, bf16* out, int batch, int heads, int q_len, int kv_len,
                     const BuiltinMask& mask, cudaStream_t stream);
// Row softmax over cols (<= 32768), fp32 math, one bf16 rounding; a row of -inf gives zeros.
void eager_softmax_bf16(const bf16* in, bf16* out, std::int64_t rows, int cols, cudaStream_t stream);

// The whole function in float64 on the GPU (one warp per query row, no tiling: slow, exact):
// out (batch, q_heads, q_len, head_dim) f64, lse (batch, q_heads, q_len) f64 or nullptr.
// Uses args.q/k/v (of args.dtype: bf16 or fp16) and the shape fields of args; args.out and args.lse are
// ignored.
void flex_attention_reference(const FlexAttentionArgs& args, const BuiltinScoreMod& score_mod,
                              const BuiltinMask& mask, double* out, double* lse, cudaStream_t stream);

}  // namespace aisp::kernels::flex
