// `aisp flex demo --score-expr ... --mask-expr ...`: the row of the demo table for mods given as
// expressions, JIT-compiled by NVRTC into the fa3 or mma.sync kernel
// (compiler/runtime/cuda/flex_jit.h). CUDA builds only (flex_command.cc calls it).
//
// Captured tensors the expressions may index (the CLI's named generators):
//   slopes (heads)                 float32  ALiBi slopes of the paper, 2^(-8 (h + 1) / heads)
//   doc    (seq)                   int32    document ids: documents of 512..4096 tokens (the
//                                           `document` pattern's, same seed)
//   bias   (heads, 2 * 128 + 1)    float32  a relative-position bias table, N(0, 0.5) per entry, for
//                                           bias[h, clamp(kv - q, -128, 128) + 128]
// Verification: the float64 CPU reference (the expressions evaluated by the CPU evaluator) on a
// sample of query rows of every (batch, head): the first, the last and 14 spread between (the full
// reference at 8k tokens would take minutes on the CPU); relative L2 of the sampled rows <= 1e-2.
#pragma once

#include <cuda_runtime.h>

#include <ostream>
#include <string>

#include "kernels/attention/flex_attention.h"

namespace aisp::cli {

struct FlexJitRowRequest {
  std::string score_expr, mask_expr;
  kernels::flex::FlexAttentionArgs args;  // q, k, v, out (overwritten), shapes
  int iters = 10;
  bool verify = true;
  // The measured ceilings of the row's floors (cli/flex_floors.h); 0 = no floor printed.
  double copy_bytes_per_s = 0, gemm_flops_per_s = 0;
  // The built-in row just run on the same inputs (one pattern only), for the comparison line:
  // its output (still in a separate buffer) and median time; nullptr / 0 when there is none.
  const kernels::flex::bf16* builtin_out = nullptr;
  double builtin_ms = 0;
  std::string builtin_name;
};

// Compiles (or takes from the cache), verifies, times and prints one table row plus the compile and
// comparison lines. Returns the number of failed checks (0 or 1).
int run_flex_jit_row(const FlexJitRowRequest& request, cudaStream_t stream, std::ostream& out);

}  // namespace aisp::cli
