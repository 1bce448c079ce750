#include "compiler/runtime/cuda/cuda_library.h"

#include <cublas_v2.h>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler {
namespace {

constexpr std::size_t kCublasWorkspaceBytes = 32u << 20;  // cuBLAS's recommendation for Hopper

// Row gather: one block per output row, 16-byte copies when the row and both pointers allow.
constexpr const char* kGatherSource = R"(// aisp library kernel: embedding gather
extern "C" __global__ void aisp_gather(const char* table, long long rows, long long row_stride,
                                       const int* indices, char* out, long long row_bytes, int vectorized) {
  const long long i = blockIdx.x;
  const int t = indices[i];
  if (t < 0 || t >= rows) __trap();  // out-of-range index: stop, like a device-side assert
  const char* src = table + (long long)t * row_stride;
  char* dst = out + i * row_bytes;
  if (vectorized) {
    for (long long c = threadIdx.x; c < row_bytes / 16; c += blockDim.x)
      reinterpret_cast<uint4*>(dst)[c] = reinterpret_cast<const uint4*>(src)[c];
  } else {
    for (long long c = threadIdx.x; c < row_bytes; c += blockDim.x) dst[c] = src[c];
  }
}
)";

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(fmt::format("cuBLAS: {} failed: {} ({})", what, cublasGetStatusString(s), cublasGetStatusName(s)));
}

void check_cuda(cudaError_t r, const std::string& what) {
  if (r != cudaSuccess) throw Error(fmt::format("CUDA: {} failed: {} ({})", what, cudaGetErrorString(r), cudaGetErrorName(r)));
}

cudaDataType_t blas_type(DType dt) {
  switch (dt) {
    case DType::bf16: return CUDA_R_16BF;
    case DType::f16: return CUDA_R_16F;
    case DType::f32: return CUDA_R_32F;
    default: throw Error(fmt::format("matmul on the CUDA backend: dtype {} is not supported (bf16, f16, f32)", name_of(dt)));
  }
}

}  // namespace

CudaLibrary::CudaLibrary(NvrtcJit& jit, bool load) : loaded_(load) {
  const NvrtcResult gather = jit.compile(kGatherSource);
  if (!load) return;
  gather_ = jit.load(gather, "aisp_gather");
  cublasHandle_t h = nullptr;
  check_cublas(cublasCreate(&h), "cublasCreate");
  cublas_ = h;
  check_cuda(cudaMalloc(&workspace_, kCublasWorkspaceBytes), "cudaMalloc of the cuBLAS workspace");
  check_cublas(cublasSetWorkspace(h, workspace_, kCublasWorkspaceBytes), "cublasSetWorkspace");
  // fp32 storage computes in fp32 proper: no TF32 (the precision the interpreter and the eager plan use).
  check_cublas(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
}

CudaLibrary::~CudaLibrary() {
  if (cublas_) cublasDestroy(static_cast<cublasHandle_t>(cublas_));
  if (workspace_) cudaFree(workspace_);
}

void CudaLibrary::matmul(DType dtype, const GemmCall& p, const void* a, const void* b, void* c, cudaStream_t stream) {
  if (!loaded_) throw Error("CudaLibrary: compiled with load = false; it cannot run");
  auto h = static_cast<cublasHandle_t>(cublas_);
  check_cublas(cublasSetStream(h, stream), "cublasSetStream");
  const cudaDataType_t t = blas_type(dtype);
  const std::int64_t es = std::int64_t(size_of(dtype));
  const float alpha = 1.0f, beta = 0.0f;
  for (const GemmCall::Offsets& o : p.calls) {
    // BLAS A' is the graph's B operand and B' the graph's A (gemm_plan.h).
    const char* pa = static_cast<const char*>(b) + o.b * es;
    const char* pb = static_cast<const char*>(a) + o.a * es;
    char* pc = static_cast<char*>(c) + o.c * es;
    check_cublas(cublasGemmStridedBatchedEx(h, p.transa ? CUBLAS_OP_T : CUBLAS_OP_N, p.transb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            int(p.m), int(p.n), int(p.k), &alpha, pa, t, int(p.lda), p.stride_a, pb, t,
                                            int(p.ldb), p.stride_b, &beta, pc, t, int(p.ldc), p.stride_c,
                                            int(p.batch), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmStridedBatchedEx");
  }
}

void CudaLibrary::gather(const void* table, std::int64_t table_rows, std::int64_t table_row_stride_bytes,
                         const std::int32_t* indices, std::int64_t count, void* out, std::int64_t row_bytes,
                         cudaStream_t stream) {
  if (!loaded_) throw Error("CudaLibrary: compiled with load = false; it cannot run");
  if (count == 0 || row_bytes == 0) return;
  int vectorized = row_bytes % 16 == 0 && table_row_stride_bytes % 16 == 0 &&
                   reinterpret_cast<std::uintptr_t>(table) % 16 == 0 && reinterpret_cast<std::uintptr_t>(out) % 16 == 0;
  long long rows = table_rows, stride = table_row_stride_bytes, bytes = row_bytes;
  const void* tp = table;
  const void* ip = indices;
  void* op = out;
  void* params[] = {&tp, &rows, &stride, &ip, &op, &bytes, &vectorized};
  check_cuda(cudaLaunchKernel(reinterpret_cast<const void*>(gather_), dim3(unsigned(count)), dim3(128), params, 0, stream),
             "launch of the gather kernel");
}

}  // namespace aisp::compiler
