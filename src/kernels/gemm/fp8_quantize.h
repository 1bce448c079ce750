// Quantizers from bf16 or f32 to e4m3 codes plus the scales of gemm_fp8.h (value = code * scale,
// scale = amax / 448 of the group, 1 for an all-zero group; codes rounded to nearest, saturated to
// +-448). All on the device, stream-ordered, never synchronizing; the scales stay on the device (no
// host round trip), so the GEMM that reads them can be enqueued right after.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "core/cuda/device_memory.h"
#include "kernels/gemm/gemm_fp8.h"

namespace aisp::kernels::gemm {

// One scale for the whole tensor: scale[0] = amax(|x|) / 448 (an amax pass, then the codes).
void quantize_fp8_per_tensor(const bf16* x, std::size_t count, fp8* q, float* scale, cudaStream_t stream);
void quantize_fp8_per_tensor(const float* x, std::size_t count, fp8* q, float* scale, cudaStream_t stream);

// Activations (A, rows x k, row-major): one scale per 1 x 128 block along K, stored k-block-major,
// scale[kb * rows + r] (gemm_fp8.h's a_scale layout). A ragged last block has k % 128 elements.
void quantize_fp8_1x128(const bf16* x, int rows, int k, fp8* q, float* scale, cudaStream_t stream);
void quantize_fp8_1x128(const float* x, int rows, int k, fp8* q, float* scale, cudaStream_t stream);

// Weights (B, rows x k, row-major): one scale per 128 x 128 block, scale[rb * ceil(k/128) + kb]
// (gemm_fp8.h's b_scale layout). Ragged blocks hold what is left of the matrix.
void quantize_fp8_128x128(const bf16* x, int rows, int k, fp8* q, float* scale, cudaStream_t stream);
void quantize_fp8_128x128(const float* x, int rows, int k, fp8* q, float* scale, cudaStream_t stream);

// A (rows_a x k) and B (rows_b x k) quantized the way `scaling` says: per tensor each, or 1 x 128
// (A) and 128 x 128 (B). The scale buffers hold fp8_a_scale_count / fp8_b_scale_count floats.
template <class T>
void quantize_fp8_operands(const T* a, const T* b, int m, int n, int k, Fp8Scaling scaling, fp8* qa, float* sa,
                           fp8* qb, float* sb, cudaStream_t stream) {
  if (scaling == Fp8Scaling::per_tensor) {
    quantize_fp8_per_tensor(a, std::size_t(m) * std::size_t(k), qa, sa, stream);
    quantize_fp8_per_tensor(b, std::size_t(n) * std::size_t(k), qb, sb, stream);
  } else {
    quantize_fp8_1x128(a, m, k, qa, sa, stream);
    quantize_fp8_128x128(b, n, k, qb, sb, stream);
  }
}

// The fp8 form of a GEMM's two operands on the device -- codes and scales of A (m x k) and B
// (n x k) under one scaling -- filled by quantize() from bf16 or f32 operands. What the ch14:fp8_gemm
// variants, `aisp gemm validate` and the tests hand to the fp8 GEMMs.
class Fp8GemmOperands {
 public:
  Fp8GemmOperands(int m, int n, int k, Fp8Scaling scaling)
      : m_(m), n_(n), k_(k), scaling_(scaling),
        a_(cuda::device_alloc(std::size_t(m) * std::size_t(k))),
        b_(cuda::device_alloc(std::size_t(n) * std::size_t(k))),
        a_scale_(cuda::device_alloc(fp8_a_scale_count(scaling, m, k) * sizeof(float))),
        b_scale_(cuda::device_alloc(fp8_b_scale_count(scaling, n, k) * sizeof(float))) {}

  template <class T>
  void quantize(const T* a, const T* b, cudaStream_t stream) {
    quantize_fp8_operands(a, b, m_, n_, k_, scaling_, codes_a(), scales_a(), codes_b(), scales_b(), stream);
  }
  // The fp8 GEMM's arguments with these operands and output d (M, N).
  GemmFp8Args args(bf16* d) const {
    return GemmFp8Args{codes_a(), codes_b(), scales_a(), scales_b(), d, m_, n_, k_, scaling_};
  }

  fp8* codes_a() const { return static_cast<fp8*>(a_.get()); }
  fp8* codes_b() const { return static_cast<fp8*>(b_.get()); }
  float* scales_a() const { return static_cast<float*>(a_scale_.get()); }
  float* scales_b() const { return static_cast<float*>(b_scale_.get()); }
  Fp8Scaling scaling() const { return scaling_; }

 private:
  int m_, n_, k_;
  Fp8Scaling scaling_;
  cuda::DeviceMemory a_, b_, a_scale_, b_scale_;
};

}  // namespace aisp::kernels::gemm
