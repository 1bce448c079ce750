// The fp8 halves of `aisp gemm validate` and `aisp gemm sweep` (gemm_command.cc calls them).
#pragma once

#include <ostream>

namespace aisp::cli {

// The sm90 fp8 kernel, per tensor and block-scaled, over tails, skinny and large shapes: each row
// against the float64 product of the dequantized codes (the kernel's own error, which must pass
// fp8_kernel_tolerance) and of the unquantized bf16 operands (what fp8 costs, which must pass
// fp8_end_to_end_tolerance); per tensor also cuBLASLt fp8 on the same codes. K % 16 != 0 rows must
// be refused. `quick` skips 8192x8192x4096 and 4096x7168x16384. Returns the number of failures.
// Needs a CUDA build (throws otherwise).
int validate_fp8(bool quick, std::ostream& out);

// `aisp gemm sweep --fp8`: at the ch14:fp8_gemm shapes (8192x8192x4096, 4096x7168x16384), cuBLASLt fp8
// (fast accumulation and fp32 promotion) and the kernel's configurations -- per tensor and block,
// tile_n, stages, raster band, TMA-store or direct epilogue -- each verified against the float64
// product of the dequantized codes, then timed (median of 5 batches of `iters` back-to-back calls),
// right after a cuBLASLt fp8 timing so that ratios compare like clocks. Returns the failures.
int sweep_fp8(int iters, std::ostream& out);

}  // namespace aisp::cli
