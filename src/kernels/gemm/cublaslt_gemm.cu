// The cuBLASLt wrapper; see cublaslt_gemm.h.
#include "kernels/gemm/cublaslt_gemm.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <sstream>
#include <string>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/gemm/gemm_fp8.h"

namespace aisp::kernels::gemm {
namespace {

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    std::ostringstream s;
    s << "cuBLASLt: " << what << " failed: " << cublasLtGetStatusName(status) << " ("
      << cublasLtGetStatusString(status) << ")";
    throw Error(s.str());
  }
}

cublasLtEpilogue_t lt_epilogue(LtEpilogue e) {
  switch (e) {
    case LtEpilogue::none: return CUBLASLT_EPILOGUE_DEFAULT;
    case LtEpilogue::bias: return CUBLASLT_EPILOGUE_BIAS;
    case LtEpilogue::bias_gelu_tanh: return CUBLASLT_EPILOGUE_GELU_BIAS;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

// DeepSeek-V3's block scales (cublaslt_gemm.h): cuBLASLt's A is our B (128 x 128 blocks), its B our
// A (1 x 128 blocks along K).
void set_block_scale_modes(cublasLtMatmulDesc_t op) {
#if CUBLAS_VERSION >= 120900
  const std::int32_t a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
  const std::int32_t b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &a_mode, sizeof(a_mode)),
        "set A_SCALE_MODE (128x128 blocks)");
  check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &b_mode, sizeof(b_mode)),
        "set B_SCALE_MODE (1x128 blocks)");
#else
  (void)op;
  throw Error("cuBLASLt fp8 GEMM: block scales need cuBLAS 12.9 or newer (this build has " +
              std::to_string(CUBLAS_VERSION) + ")");
#endif
}

}  // namespace

const char* name_of(LtEpilogue e) {
  switch (e) {
    case LtEpilogue::none: return "none";
    case LtEpilogue::bias: return "bias";
    case LtEpilogue::bias_gelu_tanh: return "bias_gelu_tanh";
  }
  return "?";
}

CublasLtGemmArgs cublaslt_fp8_args(const GemmFp8Args& fp8) {
  CublasLtGemmArgs lt;
  lt.a = fp8.a;
  lt.b = fp8.b;
  lt.d = fp8.d;
  lt.m = fp8.m;
  lt.n = fp8.n;
  lt.k = fp8.k;
  lt.input = LtInput::fp8_e4m3;
  lt.a_scale = fp8.a_scale;
  lt.b_scale = fp8.b_scale;
  lt.fp8_block_scales = fp8.scaling == Fp8Scaling::block;
  lt.fp8_fast_accum = !lt.fp8_block_scales;
  return lt;
}

struct CublasLtGemm::Impl {
  CublasLtGemmArgs args;
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a_layout = nullptr, b_layout = nullptr, d_layout = nullptr;
  cublasLtMatmulAlgo_t algo{};
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  float alpha = 1.0f, beta = 0.0f;

  ~Impl() {
    if (a_layout) cublasLtMatrixLayoutDestroy(a_layout);
    if (b_layout) cublasLtMatrixLayoutDestroy(b_layout);
    if (d_layout) cublasLtMatrixLayoutDestroy(d_layout);
    if (op) cublasLtMatmulDescDestroy(op);
    if (handle) cublasLtDestroy(handle);
    if (workspace) cudaFree(workspace);
  }
};

CublasLtGemm::CublasLtGemm(const CublasLtGemmArgs& args, std::size_t workspace_bytes)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.args = args;
  if (args.m < 1 || args.n < 1 || args.k < 1) throw Error("cuBLASLt GEMM: M, N and K must be >= 1");
  if (args.d_dtype != DType::bf16 && args.d_dtype != DType::f32)
    throw Error("cuBLASLt GEMM: D must be bf16 or f32");
  if (!args.a || !args.b || !args.d || (args.epilogue != LtEpilogue::none && !args.bias))
    throw Error("cuBLASLt GEMM: null pointer");
  const bool fp8 = args.input == LtInput::fp8_e4m3;
  if (fp8 && (!args.a_scale || !args.b_scale))
    throw Error("cuBLASLt fp8 GEMM: a_scale and b_scale (device pointers to one float each) are required");
  if (args.fp8_block_scales && !fp8) throw Error("cuBLASLt GEMM: block scales are for e4m3 inputs only");
  if (args.fp8_block_scales && args.fp8_fast_accum)
    throw Error("cuBLASLt fp8 GEMM: block scales run with fp32 promotion only (set fp8_fast_accum = false)");
  if (args.fp8_block_scales && args.k % 512 != 0)
    throw Error("cuBLASLt fp8 GEMM with block scales: K must be a multiple of 512 (K = " + std::to_string(args.k) +
                "): cuBLASLt reads the 128x128 scales' rows padded to a multiple of 4 blocks, so at K / 128 = 3 and 5 "
                "it computed wrong sums from gemm_fp8.h's unpadded layout on an H200 (cuBLAS 13.0); pad K with "
                "zeros, or use gemm_fp8_sm90");
  const cudaDataType_t d_type = args.d_dtype == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cudaDataType_t in_type = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;

  check(cublasLtCreate(&s.handle), "cublasLtCreate");
  check(cublasLtMatmulDescCreate(&s.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  // Column-major view: D^T (N x M) = B' (N x K) * A' (K x M), with B' = transpose of the K x N
  // column-major bytes of B and A' = the K x M column-major bytes of A.
  const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)),
        "set TRANSA");
  check(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)),
        "set TRANSB");
  const cublasLtEpilogue_t epilogue = lt_epilogue(args.epilogue);
  check(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)),
        "set EPILOGUE");
  if (args.epilogue != LtEpilogue::none) {
    check(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &args.bias,
                                         sizeof(args.bias)),
          "set BIAS_POINTER");
    const std::int32_t bias_type = d_type;
    check(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                         sizeof(bias_type)),
          "set BIAS_DATA_TYPE");
  }
  if (fp8) {
    // cuBLASLt's A is our B and its B our A (the column-major view above).
    check(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &args.b_scale,
                                         sizeof(args.b_scale)),
          "set A_SCALE_POINTER");
    check(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &args.a_scale,
                                         sizeof(args.a_scale)),
          "set B_SCALE_POINTER");
    if (args.fp8_block_scales) set_block_scale_modes(s.op);
    const std::int8_t fast_accum = args.fp8_fast_accum ? 1 : 0;
    check(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast_accum, sizeof(fast_accum)),
          "set FAST_ACCUM");
  }
  check(cublasLtMatrixLayoutCreate(&s.a_layout, in_type, args.k, args.n, args.k), "B layout");
  check(cublasLtMatrixLayoutCreate(&s.b_layout, in_type, args.k, args.m, args.k), "A layout");
  check(cublasLtMatrixLayoutCreate(&s.d_layout, d_type, args.n, args.m, args.n), "D layout");

  cublasLtMatmulPreference_t pref = nullptr;
  check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &workspace_bytes, sizeof(workspace_bytes)),
        "set MAX_WORKSPACE_BYTES");
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(s.handle, s.op, s.a_layout, s.b_layout, s.d_layout, s.d_layout,
                                     pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (!args.fp8_block_scales) check(status, "cublasLtMatmulAlgoGetHeuristic");
  if (status != CUBLAS_STATUS_SUCCESS || found == 0) {
    std::ostringstream m;
    m << "cuBLASLt GEMM: no algorithm for M " << args.m << " N " << args.n << " K " << args.k
      << ", epilogue " << name_of(args.epilogue) << (fp8 ? ", e4m3 inputs" : "")
      << (args.fp8_block_scales ? ", 1x128 / 128x128 block scales (cuBLASLt runs them on sm_90 only; it refused M = "
                                  "130 and ran M = 1000 on an H200, cuBLAS 13.0)"
                                : "")
      << " (" << cublasLtGetStatusName(status) << ")";
    throw Error(m.str());
  }
  s.algo = result.algo;
  s.workspace_bytes = result.workspaceSize;
  if (s.workspace_bytes > 0) AISP_CUDA_CHECK(cudaMalloc(&s.workspace, s.workspace_bytes));
}

CublasLtGemm::~CublasLtGemm() = default;

void CublasLtGemm::run(cudaStream_t stream) {
  Impl& s = *impl_;
  // C = D with beta = 0: cuBLASLt reads no C.
  check(cublasLtMatmul(s.handle, s.op, &s.alpha, s.args.b, s.a_layout, s.args.a, s.b_layout, &s.beta,
                       s.args.d, s.d_layout, s.args.d, s.d_layout, &s.algo, s.workspace,
                       s.workspace_bytes, stream),
        "cublasLtMatmul");
}

std::string CublasLtGemm::describe() const {
  std::ostringstream s;
  const CublasLtGemmArgs& a = impl_->args;
  s << "cuBLASLt ";
  if (a.input == LtInput::fp8_e4m3)
    s << "e4m3 -> " << name_of(a.d_dtype) << " (" << (a.fp8_block_scales ? "1x128 / 128x128 block" : "per-tensor")
      << " scales, " << (a.fp8_fast_accum ? "fast accumulation" : "fp32 promotion") << ")";
  else
    s << "bf16 -> " << name_of(a.d_dtype);
  s << ", epilogue " << name_of(a.epilogue) << ", heuristic algorithm (workspace " << impl_->workspace_bytes
    << " B)";
  return s.str();
}

}  // namespace aisp::kernels::gemm
