// aisp's sm_90a bf16 GEMM (kernels/gemm/gemm_bf16.h) as a max-autotune candidate for the CUDA
// backend's single GEMMs, beside cuBLASLt's algorithms (lt_matmul.h).
//
// A planned GEMM (runtime/gemm_plan.h) is the kernel's problem when it is a Linear layer in bf16:
// the graph's A is (M, K) row-major, its B is the transposed (N, K) weight (`x @ w.T`, BLAS "T,N"),
// C (M, N) contiguous, no batch, K a multiple of 8 and 16-byte aligned operand offsets (TMA). The
// kernel's bias epilogue is cuBLASLt's BIAS (bias[n] added in fp32 before the one rounding).
//
// The search (max-autotune only): cuBLASLt's chosen algorithm is timed again next to each of the
// kernel's configs, by the same procedure (graph_timing.h), and the kernel is taken only when its
// best config is at least kMinGain faster: a kernel switch for a gain inside the run-to-run noise
// would only make plans differ between compiles.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler/runtime/autotune.h"
#include "compiler/runtime/gemm_plan.h"
#include "core/dtype.h"
#include "kernels/gemm/gemm_bf16.h"

namespace aisp::compiler {

using kernels::gemm::GemmConfig;

// Empty when aisp's kernel can compute `plan` (see above; the GPU is checked when it is timed), else
// the reason.
std::string aisp_gemm_unfit(DType dtype, const GemmCall& plan);

// The configs max-autotune tries: the kernel's default first, the 128-wide tile, the 2-CTA
// cluster, then every `best` of an `aisp gemm sweep --out` report in `sweep_file` (if it exists).
std::vector<GemmConfig> aisp_gemm_candidates(const std::string& sweep_file);

// A config as JSON (what `aisp gemm sweep --out` writes) and back; nullopt for a malformed one.
nlohmann::json gemm_config_json(const GemmConfig& c);
std::optional<GemmConfig> gemm_config_from_json(const nlohmann::json& j);
// A config as one token for a TuneResult ("aisp 128x256x64 s4 c1 g8 persistent") and back.
std::string gemm_config_token(const GemmConfig& c);
std::optional<GemmConfig> gemm_config_from_token(const std::string& token);

struct AispGemmChoice {
  TuneResult decision;              // best: gemm_config_token(config), or "cuBLASLt" when it stays
  std::optional<GemmConfig> config;  // set when aisp's kernel was chosen
  std::string summary;              // "aisp tile 128x256 ... 0.190 ms vs cuBLASLt 0.201 ms (1.06x)"
};

inline constexpr double kMinGain = 1.02;

// Times `cublaslt_ms` (a callable timing cuBLASLt's choice now) against each legal config on scratch
// operands of the plan's extents; never throws for a config that cannot run (its record says why).
AispGemmChoice choose_aisp_gemm(const GemmCall& plan, bool bias, const std::vector<GemmConfig>& configs,
                                const std::function<double()>& cublaslt_ms);

// The end of a search of aisp's candidates against cuBLASLt: puts cuBLASLt's time (`lt_ms`) first in
// `decision`'s records and takes `best` (the fastest candidate's token, `best_ms`; empty when none
// ran) only when it is at least kMinGain faster. Sets decision.best and a one-line `summary`; true
// when the candidate was taken. (The skinny GEMM's search, skinny_gemm.h, ends the same way.)
bool settle_against_cublaslt(TuneResult& decision, const std::string& best, double best_ms, double lt_ms,
                             std::string& summary);

// Runs the chosen kernel: a, b: the graph's operands (the plan's offsets are applied here).
// False (nothing enqueued) when an operand is not 16-byte aligned at run time: the caller runs its
// cuBLASLt plan instead.
bool run_aisp_gemm(const GemmCall& plan, const GemmConfig& config, const void* a, const void* b, const void* bias,
                   void* c, cudaStream_t stream);

}  // namespace aisp::compiler
