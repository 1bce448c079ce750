#include "compiler/runtime/cuda/lt_matmul.h"

#include <cublasLt.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include <fmt/format.h>

#include "compiler/runtime/cuda/graph_timing.h"
#include "compiler/runtime/cuda/check_cuda.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {

void check_lt(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(fmt::format("cuBLASLt: {} failed: {} ({})", what, cublasGetStatusString(s), cublasGetStatusName(s)));
}

std::string to_hex(const cublasLtMatmulAlgo_t& algo) {
  std::string s;
  for (std::uint64_t w : algo.data) s += fmt::format("{:016x}", w);
  return s;
}

bool from_hex(const std::string& s, cublasLtMatmulAlgo_t& algo) {
  constexpr std::size_t kWords = sizeof(algo.data) / sizeof(algo.data[0]);
  if (s.size() != 16 * kWords) return false;
  for (std::size_t i = 0; i < kWords; ++i) {
    try {
      std::size_t used = 0;
      algo.data[i] = std::stoull(s.substr(16 * i, 16), &used, 16);
      if (used != 16) return false;
    } catch (const std::exception&) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string device_tuning_key() {
  int device = 0;
  cudaDeviceProp prop{};
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return fmt::format("{} sm_{}{} cuBLASLt {}", prop.name, prop.major, prop.minor, cublasLtGetVersion());
}

cudaDataType_t blas_data_type(DType dt) {
  switch (dt) {
    case DType::bf16: return CUDA_R_16BF;
    case DType::f16: return CUDA_R_16F;
    case DType::f32: return CUDA_R_32F;
    default: throw Error(fmt::format("matmul on the CUDA backend: dtype {} is not supported (bf16, f16, f32)", name_of(dt)));
  }
}

struct LtMatmul::Impl {
  cublasLtHandle_t lt = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  GemmCall plan;
  DType dtype = DType::bf16;
  std::int64_t es = 0;
  bool bias = false;
  bool residual = false;  // C = the residual, beta = 1 (else C is D's memory, unread: beta = 0)
  std::size_t workspace_bytes = 0;

  ~Impl() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }

  cublasStatus_t call(const cublasLtMatmulAlgo_t& with, const void* blas_a, const void* blas_b, const void* bias_ptr,
                      const void* residual_ptr, void* out, void* workspace, cudaStream_t stream) const {
    if (bias) check_lt(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof(bias_ptr)),
                       "set the bias pointer");
    const float alpha = 1.0f, beta = residual ? 1.0f : 0.0f;
    const void* c_ptr = residual ? residual_ptr : out;
    return cublasLtMatmul(lt, desc, &alpha, blas_a, a, blas_b, b, &beta, c_ptr, c, out, c, &with, workspace,
                          workspace_bytes, stream);
  }

  // Scratch operands of the plan's extents (strides included), a workspace and a stream: what
  // time() runs the candidates on.
  struct Bench {
    DeviceScratch a, b, c, bias, residual;
    void* workspace = nullptr;
    AutotuneStream timing_stream;
    cudaStream_t stream = timing_stream.get();
    explicit Bench(const Impl& m)
        : a(m.dtype, m.plan.lda * (m.plan.transa ? m.plan.m : m.plan.k), 1),
          b(m.dtype, m.plan.ldb * (m.plan.transb ? m.plan.k : m.plan.n), 2),
          c(m.dtype, m.plan.ldc * m.plan.n, 3),
          bias(m.dtype, m.plan.m, 4),
          residual(m.dtype, m.residual ? m.plan.ldc * m.plan.n : 1, 5) {
      check_cuda(cudaMalloc(&workspace, std::max<std::size_t>(m.workspace_bytes, 1)), "cudaMalloc of the autotune workspace");
    }
    ~Bench() {
      cudaFree(workspace);
    }
    Bench(const Bench&) = delete;
    Bench& operator=(const Bench&) = delete;
  };

  // ms per call of `with` on the bench's operands; -1 when cuBLASLt refuses it for this problem.
  double time(const cublasLtMatmulAlgo_t& with, const Bench& bench) const {
    auto run_once = [&] {
      return call(with, bench.a.p, bench.b.p, bench.bias.p, bench.residual.p, bench.c.p, bench.workspace, bench.stream);
    };
    if (run_once() != CUBLAS_STATUS_SUCCESS) return -1;
    return time_as_graph_ms(bench.stream, timing_reps(2 * plan.m * plan.n * plan.k), [&] { run_once(); });
  }
};

LtMatmul::LtMatmul(void* lt, DType dtype, const GemmCall& plan, bool bias, bool residual, Activation activation,
                   std::size_t workspace_bytes, bool autotune)
    : impl_(std::make_unique<Impl>()) {
  if (plan.batch != 1 || !plan.outer.empty() || plan.calls.size() != 1)
    throw Error("internal: LtMatmul plans a single GEMM (no batch)");
  Impl& m = *impl_;
  m.lt = static_cast<cublasLtHandle_t>(lt);
  m.plan = plan;
  m.dtype = dtype;
  m.es = std::int64_t(size_of(dtype));
  m.bias = bias;
  m.residual = residual;
  if (residual && activation != Activation::none)
    throw Error("internal: a residual matmul with an activation (the activation would apply to the residual too)");
  m.workspace_bytes = workspace_bytes;
  const cudaDataType_t t = blas_data_type(dtype);
  check_lt(cublasLtMatmulDescCreate(&m.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t ta = plan.transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = plan.transb ? CUBLAS_OP_T : CUBLAS_OP_N;
  check_lt(cublasLtMatmulDescSetAttribute(m.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "set transa");
  check_lt(cublasLtMatmulDescSetAttribute(m.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "set transb");
  // The bias is per row of the column-major D: per graph column. cuBLASLt's GELU is the tanh form
  // (Activation::gelu_tanh; the ch14 gemm test CublasLtGeluIsTheTanhForm measures it).
  const bool gelu = activation == Activation::gelu_tanh;
  const cublasLtEpilogue_t epilogue = bias && gelu ? CUBLASLT_EPILOGUE_GELU_BIAS
                                      : bias      ? CUBLASLT_EPILOGUE_BIAS
                                      : gelu      ? CUBLASLT_EPILOGUE_GELU
                                                  : CUBLASLT_EPILOGUE_DEFAULT;
  check_lt(cublasLtMatmulDescSetAttribute(m.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)),
           "set the epilogue");
  if (bias)
    check_lt(cublasLtMatmulDescSetAttribute(m.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &t, sizeof(t)),
             "set the bias type");
  // Column-major as stored: op(A') is m x k, op(B') k x n (gemm_plan.h: A' is the graph's B operand).
  check_lt(cublasLtMatrixLayoutCreate(&m.a, t, plan.transa ? plan.k : plan.m, plan.transa ? plan.m : plan.k, plan.lda),
           "layout of A");
  check_lt(cublasLtMatrixLayoutCreate(&m.b, t, plan.transb ? plan.n : plan.k, plan.transb ? plan.k : plan.n, plan.ldb),
           "layout of B");
  check_lt(cublasLtMatrixLayoutCreate(&m.c, t, plan.m, plan.n, plan.ldc), "layout of C");

  cublasLtMatmulPreference_t pref = nullptr;
  check_lt(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                                sizeof(workspace_bytes)),
           "set the workspace limit");
  std::vector<cublasLtMatmulHeuristicResult_t> found(std::size_t(autotune ? kAutotuneCandidates : 1));
  int returned = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(m.lt, m.desc, m.a, m.b, m.c, m.c, pref, int(found.size()),
                                                           found.data(), &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  check_lt(hs, "cublasLtMatmulAlgoGetHeuristic");
  if (returned == 0)
    throw Error(fmt::format("cuBLASLt has no algorithm for {}{}{}{}", plan.to_string(), bias ? " + bias" : "",
                            residual ? " + residual" : "", gelu ? " + GELU" : ""));
  m.algo = found[0].algo;
  choice_ = "heuristic first choice";
  if (!autotune || returned == 1) return;

  // max-autotune: time each proposal on scratch operands of the plan's extents (strides included).
  const auto t0 = std::chrono::steady_clock::now();
  const Impl::Bench bench(m);
  double best = -1, first = -1;
  int best_index = 0;
  for (int i = 0; i < returned; ++i) {
    TuneRecord record{fmt::format("proposal {}", i), "", 0};
    const double ms = m.time(found[std::size_t(i)].algo, bench);
    if (ms < 0) {  // a proposal that cannot run here is skipped
      record.rejected = "cublasLtMatmul refused it";
      decision_.records.push_back(record);
      continue;
    }
    record.ms = ms;
    decision_.records.push_back(record);
    if (i == 0) first = ms;
    if (best < 0 || ms < best) best = ms, best_index = i;
  }
  if (best < 0) throw Error(fmt::format("cuBLASLt: no proposed algorithm ran for {}", plan.to_string()));
  m.algo = found[std::size_t(best_index)].algo;
  decision_.best = to_hex(m.algo);
  choice_ = fmt::format("autotuned: proposal {} of {}, {:.3f} ms (heuristic first {:.3f} ms)", best_index, returned,
                        best, first);
  autotune_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double LtMatmul::measure_ms() const {
  const Impl::Bench bench(*impl_);
  return impl_->time(impl_->algo, bench);
}

LtMatmul::~LtMatmul() = default;

void LtMatmul::adopt_algorithm(const LtMatmul& tuned) {
  impl_->algo = tuned.impl_->algo;
  decision_ = tuned.decision_;
  choice_ = tuned.choice_ + " (same problem as an earlier step)";
}

bool LtMatmul::use_algorithm(const TuneResult& decision) {
  cublasLtMatmulAlgo_t algo{};
  if (!from_hex(decision.best, algo)) return false;
  const Impl& m = *impl_;
  cublasLtMatmulHeuristicResult_t check{};
  if (cublasLtMatmulAlgoCheck(m.lt, m.desc, m.a, m.b, m.c, m.c, &algo, &check) != CUBLAS_STATUS_SUCCESS ||
      check.workspaceSize > m.workspace_bytes)
    return false;
  impl_->algo = algo;
  decision_ = decision;
  choice_ = "autotuned earlier (decision cache)";
  return true;
}

void LtMatmul::run(const void* a, const void* b, const void* bias, const void* residual, void* c, void* workspace,
                   cudaStream_t stream) const {
  const Impl& m = *impl_;
  const GemmCall::Offsets& o = m.plan.calls[0];
  if (m.bias && !bias) throw Error("internal: a bias matmul without its bias");
  if (m.residual && !residual) throw Error("internal: a residual matmul without its residual");
  check_lt(m.call(m.algo, static_cast<const char*>(b) + o.b * m.es, static_cast<const char*>(a) + o.a * m.es, bias,
                  residual, static_cast<char*>(c) + o.c * m.es, workspace, stream),
           "cublasLtMatmul");
}

}  // namespace aisp::compiler
