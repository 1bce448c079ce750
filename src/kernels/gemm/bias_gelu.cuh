// The eager epilogue of a Linear + GELU: what runs after a GEMM that wrote its bf16 result
// without the bias (the baseline of ch14:gemm and ch14:gemm_mlp).
//
//   d[r, c] = bf16( gelu( float(y[r, c]) + float(bias[c]) ) )
//   gelu_erf(x)  = 0.5 x (1 + erf(x / sqrt(2)))                       (the exact form, gemm_bf16.h)
//   gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))  (the approximation that
//                                                                       cuBLASLt's GELU epilogue uses)
//
// y, d: (rows, cols):(cols, 1) bf16; bias: (cols):(1) bf16; y == d (in place) is allowed. All math
// in fp32, one rounding. Memory-bound: 2 bytes read + 2 written per element; 16-byte vectors when
// cols % 8 == 0 and all pointers are 16-byte aligned, a scalar grid-stride loop otherwise.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace aisp::kernels::gemm {

using bf16 = __nv_bfloat16;

enum class GeluForm { erf, tanh };
const char* name_of(GeluForm form);

void bias_gelu_bf16(const bf16* y, const bf16* bias, bf16* d, std::int64_t rows, std::int64_t cols,
                    cudaStream_t stream, GeluForm form = GeluForm::erf);

// x[i] = gelu_tanh(x[i]) in fp32, in place, n elements: turns the fp32 output of
// gemm_bf16_reference(Epilogue::bias) into the reference of a tanh-GELU epilogue.
void gelu_tanh_f32_inplace(float* x, std::int64_t n, cudaStream_t stream);

}  // namespace aisp::kernels::gemm
