// Validation helpers beside the GEMM reference kernel (gemm_reference.cu): seeded device fills,
// the contract's epilogue applied to an fp32 matrix (to turn a cuBLAS product into the reference of
// a fused GEMM), and an on-device comparison that returns only a few numbers (no 8192^2 downloads).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/gemm/gemm_bf16.h"

namespace aisp::kernels::gemm {

// x[i] = bf16( scale * rng::normal_at(seed, i) ): bit-identical to the host's
// float_to_bf16_bits(float(rng::normal_at(seed, i) * scale)) for scale 1.
void fill_normal_bf16(bf16* x, std::size_t count, std::uint64_t seed, cudaStream_t stream);

// d[m, n] = epilogue(d[m, n]) in fp32 with bias (N) -- the same formula as the GEMM kernels.
void apply_epilogue_f32(float* d, const bf16* bias, int m, int n, Epilogue epilogue, cudaStream_t stream);

struct CompareResult {
  double max_abs = 0;      // max |out - ref| over finite outputs
  double rel_l2 = 0;       // ||out - ref|| / ||ref||
  long long bad = 0;       // elements with |out - ref| > atol + rtol |ref|, or non-finite
  long long count = 0;
};

// Compares `out` (bf16) with `ref` (fp32) element by element on the device; synchronizes `stream`.
CompareResult compare_bf16_f32(const bf16* out, const float* ref, std::size_t count, double atol, double rtol,
                               cudaStream_t stream);
// The same against a float64 reference (the fp8 GEMM's, gemm_fp8_reference.h).
CompareResult compare_bf16_f64(const bf16* out, const double* ref, std::size_t count, double atol, double rtol,
                               cudaStream_t stream);

}  // namespace aisp::kernels::gemm
