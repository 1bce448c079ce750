// A small cuBLASLt wrapper for the layouts of gemm_bf16.h: A (M, K) row-major, B (N, K) row-major
// (a Linear layer's weight), D (M, N) row-major; bf16 inputs, fp32 accumulation (compute type
// CUBLAS_COMPUTE_32F), D in bf16 or fp32.
//
// cuBLASLt is column-major, so the wrapper computes D^T (N x M, column-major: the same bytes as our
// row-major D) = op(B) op(A) with transa = T on B (stored K x N column-major) and transb = N on A
// (stored K x M column-major). cuBLASLt's bias has one value per row of its (column-major) D, i.e.
// per n: exactly our bias[n].
//
// Epilogues:
//   none            D = acc
//   bias            D = acc + bias[n]                                  (CUBLASLT_EPILOGUE_BIAS)
//   bias_gelu_tanh  D = gelu_tanh(acc + bias[n])                       (CUBLASLT_EPILOGUE_GELU_BIAS)
// NOTE: cuBLASLt's GELU epilogue is the tanh approximation, 0.5 x (1 + tanh(sqrt(2/pi)(x +
// 0.044715 x^3))), not the erf form of gemm_bf16.h (the header does not say; PyTorch relies on
// it being tanh, see pytorch/pytorch#104061, and tests/gpu/gemm_example_test.cu checks it on the
// GPU against both forms with an fp32 output). It is named for what it is so that nobody pairs it
// with an erf-GELU kernel.
//
// fp8 (input = fp8_e4m3): A and B are e4m3 codes with one float scale each on the device
// (gemm_fp8.h's per-tensor scaling: value = code * scale); cuBLASLt multiplies the product by
// a_scale * b_scale (CUBLASLT_MATMUL_DESC_{A,B}_SCALE_POINTER). Hopper's fp8 tensor cores only take
// K-major operands ("TN"), which is this wrapper's layout already. `fp8_fast_accum` selects
// CUBLASLT_MATMUL_DESC_FAST_ACCUM: 1 keeps the whole K in the tensor cores' accumulators (what the
// aisp per-tensor kernel does), 0 lets cuBLASLt promote partial sums to fp32 (slower, more exact).
//
// fp8 block scaling (`fp8_block_scales`): a_scale / b_scale are gemm_fp8.h's block layouts -- one
// float per 1 x 128 block of A along K (a_scale[kb * M + m]) and per 128 x 128 block of B
// (b_scale[nb * ceil(K/128) + kb]) -- passed as cuBLASLt's VEC128_32F (its B, our A) and
// BLK128x128_32F (its A, our B) scale modes (cuBLAS >= 12.9, sm_90), DeepSeek-V3's recipe, which
// cuBLASLt runs with fp32 promotion only: fp8_fast_accum must be false. K must be a multiple of
// 512 (cuBLASLt pads the 128x128 scales' rows to 4 blocks; the constructor refuses other K), and
// cuBLASLt itself refuses some M (130: no algorithm, an H200 with cuBLAS 13.0).
//
// The bias has D's dtype (cuBLASLt's default for these types). Descriptors, layouts, the
// heuristic's algorithm and the workspace are made by the constructor (setup); run() only calls
// cublasLtMatmul. The pointers are bound at construction: run() reads A, B, bias and writes D there.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>

#include "core/dtype.h"

namespace aisp::kernels::gemm {

enum class LtEpilogue { none, bias, bias_gelu_tanh };
enum class LtInput { bf16, fp8_e4m3 };
const char* name_of(LtEpilogue e);

struct CublasLtGemmArgs {
  const void* a = nullptr;     // bf16 or e4m3 (M, K)
  const void* b = nullptr;     // bf16 or e4m3 (N, K)
  const void* bias = nullptr;  // (N), D's dtype; required unless epilogue == none
  void* d = nullptr;           // (M, N)
  int m = 0, n = 0, k = 0;
  DType d_dtype = DType::bf16;  // bf16 or f32
  LtEpilogue epilogue = LtEpilogue::none;
  LtInput input = LtInput::bf16;
  const float* a_scale = nullptr;  // fp8 only: device pointers to one float each (or the block scales)
  const float* b_scale = nullptr;
  bool fp8_fast_accum = true;
  bool fp8_block_scales = false;  // fp8 only: 1 x 128 (A) / 128 x 128 (B) block scales, see above
};

struct GemmFp8Args;  // gemm_fp8.h

// The cuBLASLt arguments for the fp8 GEMM `fp8` (gemm_fp8.h): its codes, scales, D and shape;
// block scales where fp8.scaling is block (with fp32 promotion, the only way cuBLASLt runs them),
// else per-tensor scales with fast accumulation (as the aisp per-tensor kernel accumulates).
CublasLtGemmArgs cublaslt_fp8_args(const GemmFp8Args& fp8);

class CublasLtGemm {
 public:
  static constexpr std::size_t kDefaultWorkspaceBytes = std::size_t(32) << 20;  // 32 MiB

  // Throws aisp::Error when cuBLASLt has no algorithm for the problem (with its status).
  explicit CublasLtGemm(const CublasLtGemmArgs& args,
                        std::size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // Enqueues the GEMM on `stream`; never synchronizes. Graph-capturable.
  void run(cudaStream_t stream);

  // "cuBLASLt bf16 -> bf16, epilogue bias_gelu_tanh, heuristic algorithm (workspace 32 MiB)";
  // fp8: "cuBLASLt e4m3 -> bf16 (per-tensor scales, fast accumulation), ..." or "(1x128 / 128x128
  // block scales, fp32 promotion)".
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aisp::kernels::gemm
