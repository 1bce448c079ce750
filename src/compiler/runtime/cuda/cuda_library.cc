#include "compiler/runtime/cuda/cuda_library.h"

#include <cublasLt.h>
#include <cublas_v2.h>

#include <algorithm>

#include <fmt/format.h>

#include "compiler/runtime/cuda/check_cuda.h"
#include "compiler/runtime/cuda/lt_matmul.h"
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

// Pointer arrays for a batched GEMM whose batch axes do not nest: entry i = (outer index, inner
// batch index j), offsets summed per axis. Graph A goes to BLAS B' and graph B to BLAS A'.
constexpr int kMaxOuterAxes = 4;
constexpr const char* kGemmPointersSource = R"(// aisp library kernel: pointer arrays of a batched GEMM
struct Axes {
  long long size[4], a[4], b[4], c[4];
  int rank;
  long long batch, inner_a, inner_b, inner_c, base_a, base_b;
};
extern "C" __global__ void aisp_gemm_pointers(const char* a, const char* b, char* c, long long element_bytes,
                                              Axes ax, long long count, const void** blas_a, const void** blas_b,
                                              void** blas_c) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    long long j = i % ax.batch, rest = i / ax.batch;
    long long oa = ax.base_a + j * ax.inner_a, ob = ax.base_b + j * ax.inner_b, oc = j * ax.inner_c;
    for (int d = ax.rank - 1; d >= 0; --d) {
      const long long k = rest % ax.size[d];
      rest /= ax.size[d];
      oa += k * ax.a[d];
      ob += k * ax.b[d];
      oc += k * ax.c[d];
    }
    blas_a[i] = b + ob * element_bytes;
    blas_b[i] = a + oa * element_bytes;
    blas_c[i] = c + oc * element_bytes;
  }
}
)";

struct GemmAxes {  // mirrors `Axes` in kGemmPointersSource
  long long size[kMaxOuterAxes], a[kMaxOuterAxes], b[kMaxOuterAxes], c[kMaxOuterAxes];
  int rank;
  long long batch, inner_a, inner_b, inner_c, base_a, base_b;
};

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(fmt::format("cuBLAS: {} failed: {} ({})", what, cublasGetStatusString(s), cublasGetStatusName(s)));
}

}  // namespace

CudaLibrary::CudaLibrary(NvrtcJit& jit, bool load) : loaded_(load) {
  const NvrtcResult gather = jit.compile(kGatherSource);
  const NvrtcResult pointers = jit.compile(kGemmPointersSource);
  if (!load) return;
  gather_ = jit.load(gather, "aisp_gather");
  gemm_pointers_ = jit.load(pointers, "aisp_gemm_pointers");
  cublasHandle_t h = nullptr;
  check_cublas(cublasCreate(&h), "cublasCreate");
  cublas_ = h;
  check_cuda(cudaMalloc(&workspace_, kCublasWorkspaceBytes), "cudaMalloc of the cuBLAS workspace");
  check_cublas(cublasSetWorkspace(h, workspace_, kCublasWorkspaceBytes), "cublasSetWorkspace");
  // fp32 storage computes in fp32 proper: no TF32 (the precision the interpreter and the eager plan use).
  check_cublas(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  cublasLtHandle_t lt = nullptr;
  check_cublas(cublasLtCreate(&lt), "cublasLtCreate");
  lt_ = lt;
}

std::unique_ptr<LtMatmul> CudaLibrary::plan_lt(DType dtype, const GemmCall& plan, bool bias, bool residual,
                                               Activation activation,
                                               bool autotune) {
  if (!loaded_) return nullptr;  // compile only: nothing to plan on
  return std::make_unique<LtMatmul>(lt_, dtype, plan, bias, residual, activation, kCublasWorkspaceBytes, autotune);
}

void CudaLibrary::matmul_lt(const LtMatmul& lt, const void* a, const void* b, const void* bias, const void* residual,
                            void* c,
                            cudaStream_t stream) {
  if (!loaded_) throw Error("CudaLibrary: compiled with load = false; it cannot run");
  lt.run(a, b, bias, residual, c, workspace_, stream);
}

CudaLibrary::~CudaLibrary() {
  if (lt_) cublasLtDestroy(static_cast<cublasLtHandle_t>(lt_));
  if (cublas_) cublasDestroy(static_cast<cublasHandle_t>(cublas_));
  if (workspace_) cudaFree(workspace_);
}

std::size_t CudaLibrary::pointer_table_bytes(const GemmCall& p) {
  return p.outer.empty() ? 0 : 3 * p.calls.size() * std::size_t(p.batch) * sizeof(void*);
}

void CudaLibrary::matmul(DType dtype, const GemmCall& p, const void* a, const void* b, void* c, void* pointer_table,
                         cudaStream_t stream) {
  if (!loaded_) throw Error("CudaLibrary: compiled with load = false; it cannot run");
  auto h = static_cast<cublasHandle_t>(cublas_);
  check_cublas(cublasSetStream(h, stream), "cublasSetStream");
  const cudaDataType_t t = blas_data_type(dtype);
  const std::int64_t es = std::int64_t(size_of(dtype));
  const float alpha = 1.0f, beta = 0.0f;
  const cublasOperation_t ta = p.transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.transb ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (p.outer.empty()) {
    // BLAS A' is the graph's B operand and B' the graph's A (gemm_plan.h).
    const GemmCall::Offsets& o = p.calls.at(0);
    check_cublas(cublasGemmStridedBatchedEx(h, ta, tb, int(p.m), int(p.n), int(p.k), &alpha,
                                            static_cast<const char*>(b) + o.b * es, t, int(p.lda), p.stride_a,
                                            static_cast<const char*>(a) + o.a * es, t, int(p.ldb), p.stride_b, &beta,
                                            static_cast<char*>(c) + o.c * es, t, int(p.ldc), p.stride_c, int(p.batch),
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmStridedBatchedEx");
    return;
  }
  if (p.outer.size() > std::size_t(kMaxOuterAxes))
    throw Error(fmt::format("matmul with {} non-nesting batch axes (at most {})", p.outer.size(), kMaxOuterAxes));
  if (!pointer_table) throw Error("internal: a batched matmul without its pointer table");
  GemmAxes ax{};
  ax.rank = int(p.outer.size());
  for (std::size_t d = 0; d < p.outer.size(); ++d) {
    ax.size[d] = p.outer[d].size, ax.a[d] = p.outer[d].a, ax.b[d] = p.outer[d].b, ax.c[d] = p.outer[d].c;
  }
  ax.batch = p.batch, ax.inner_a = p.stride_b, ax.inner_b = p.stride_a, ax.inner_c = p.stride_c;
  ax.base_a = p.calls[0].a, ax.base_b = p.calls[0].b;
  long long count = static_cast<long long>(p.calls.size()) * p.batch, element_bytes = es;
  auto** table = static_cast<void**>(pointer_table);
  const void* pa = a;
  const void* pb = b;
  void* pc = c;
  void** blas_a = table;
  void** blas_b = table + count;
  void** blas_c = table + 2 * count;
  void* params[] = {&pa, &pb, &pc, &element_bytes, &ax, &count, &blas_a, &blas_b, &blas_c};
  const unsigned blocks = unsigned(std::min<long long>((count + 255) / 256, 1024));
  check_cuda(cudaLaunchKernel(reinterpret_cast<const void*>(gemm_pointers_), dim3(blocks), dim3(256), params, 0, stream),
             "launch of the GEMM pointer-array kernel");
  check_cublas(cublasGemmBatchedEx(h, ta, tb, int(p.m), int(p.n), int(p.k), &alpha, blas_a, t, int(p.lda), blas_b, t,
                                   int(p.ldb), &beta, blas_c, t, int(p.ldc), int(count), CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT),
               "cublasGemmBatchedEx");
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
