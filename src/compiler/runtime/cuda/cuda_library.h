// The CUDA backend's library steps (CUDA builds only), shared by the eager and the compiled plans:
//   matmul/bmm  cuBLAS (cuBLASLt for a bias epilogue or max-autotune), bf16/fp16/fp32 storage, fp32 compute (no TF32: the interpreter's precision),
//               planned once per step by plan_gemm (runtime/gemm_plan.h): one strided-batched call,
//               or, when batch axes do not nest (heads sliced from a fused qkv projection), a small
//               kernel writing the matrices' pointers + one pointer-array batched call
//               (cublasGemmBatchedEx): two launches instead of one call per outer index
//   gather      one small CUDA kernel (embedding rows), JIT-compiled once through the NVRTC cache;
//               an out-of-range index stops the kernel (__trap, like a device-side assert) and the
//               launch's error names the cause
//   concat      not here: the compiled graph copies each (contiguous) operand with cudaMemcpy2DAsync
// Everything is enqueued on the caller's stream and is CUDA-graph capturable (cuBLAS gets its own
// workspace, so it never allocates during a capture).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "compiler/runtime/cuda/lt_matmul.h"
#include "compiler/runtime/cuda/nvrtc_jit.h"
#include "compiler/runtime/gemm_plan.h"
#include "core/dtype.h"

namespace aisp::compiler {

class CudaLibrary {
 public:
  // load = false: compile-only (no GPU needed); the run functions then throw.
  CudaLibrary(NvrtcJit& jit, bool load);
  ~CudaLibrary();
  CudaLibrary(const CudaLibrary&) = delete;
  CudaLibrary& operator=(const CudaLibrary&) = delete;

  // `pointer_table`: device scratch of pointer_table_bytes(plan) (only needed when the plan has
  // outer axes), owned by the caller so that concurrent plans never share it.
  void matmul(DType dtype, const GemmCall& plan, const void* a, const void* b, void* c, void* pointer_table,
              cudaStream_t stream);
  static std::size_t pointer_table_bytes(const GemmCall& plan);
  // Launches one matmul step enqueues.
  static int launches(const GemmCall& plan) { return plan.outer.empty() ? 1 : 2; }
  // A single GEMM through cuBLASLt (bias epilogue, or max-autotune's timed algorithm choice): planned
  // once (lt_matmul.h), run on this library's handle and workspace.
  std::unique_ptr<LtMatmul> plan_lt(DType dtype, const GemmCall& plan, bool bias, bool residual, Activation activation,
                                    bool autotune);
  void matmul_lt(const LtMatmul& lt, const void* a, const void* b, const void* bias, const void* residual, void* c,
                 cudaStream_t stream);
  // out[i, :] = table[indices[i], :]; rows of `row_bytes`, table rows `table_row_stride_bytes` apart.
  void gather(const void* table, std::int64_t table_rows, std::int64_t table_row_stride_bytes,
              const std::int32_t* indices, std::int64_t count, void* out, std::int64_t row_bytes,
              cudaStream_t stream);

 private:
  void* cublas_ = nullptr;     // cublasHandle_t
  void* workspace_ = nullptr;  // cuBLAS workspace (capture-safe), shared with cuBLASLt: one stream at a time
  void* lt_ = nullptr;         // cublasLtHandle_t
  cudaKernel_t gather_ = nullptr;
  cudaKernel_t gemm_pointers_ = nullptr;
  bool loaded_ = false;
};

}  // namespace aisp::compiler
