// One planned cuBLASLt matmul of the CUDA backend: a single GEMM (GemmCall with no batch) with an
// optional bias epilogue (CUBLASLT_EPILOGUE_BIAS: D = A·B + bias[n] in one pass), an optional
// residual (the C operand with beta = 1: D = A·B + R [+ bias], R laid out as D) and an optional
// activation (the tanh GELU: CUBLASLT_EPILOGUE_GELU(_BIAS), GELU of the fp32 sum before the one
// rounding), the epilogues passes/epilogue.h folds. Descriptors, layouts and the algorithm are chosen once, when the plan is
// built (never during a CUDA-graph capture); run() only binds pointers and calls cublasLtMatmul.
//
// Algorithm: cuBLASLt's heuristic first choice; with autotune, each of its first kAutotuneCandidates
// proposals is timed on scratch operands and the fastest is kept (max-autotune). The decision is a
// TuneResult (runtime/autotune.h) whose `best` is the algorithm's bytes in hex, so the compiler can
// cache it on disk per device and cuBLASLt version (device_tuning_key) and hand it back
// (use_algorithm), after cuBLASLt has checked that it still fits the problem.
#pragma once

#include <cuda_runtime_api.h>
#include <library_types.h>

#include <memory>
#include <string>

#include "compiler/runtime/autotune.h"
#include "compiler/ir/op.h"
#include "compiler/runtime/gemm_plan.h"
#include "core/dtype.h"

namespace aisp::compiler {

// cuBLAS's data type for a storage dtype (bf16, f16, f32); aisp::Error for the others.
cudaDataType_t blas_data_type(DType dt);

class LtMatmul {
 public:
  static constexpr int kAutotuneCandidates = 8;

  // `lt`: a cublasLtHandle_t; `workspace_bytes`: what run()'s workspace holds.
  LtMatmul(void* lt, DType dtype, const GemmCall& plan, bool bias, bool residual, Activation activation,
           std::size_t workspace_bytes, bool autotune);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // a, b: the graph's operands (buffers; the plan's offsets are applied here); bias: [n] or null;
  // residual: laid out as c (the plan's c offset is not applied: pass its element) or null.
  void run(const void* a, const void* b, const void* bias, const void* residual, void* c, void* workspace,
           cudaStream_t stream) const;

  // Takes the algorithm `tuned` chose for the same problem (a model's layers share GEMM shapes).
  void adopt_algorithm(const LtMatmul& tuned);
  // Takes a decision loaded from disk; false (heuristic kept) when cuBLASLt rejects it for this problem.
  bool use_algorithm(const TuneResult& decision);
  // The autotune decision (empty `best` without autotune).
  const TuneResult& decision() const { return decision_; }

  // "heuristic first choice" or "autotuned: algo 3 of 8, 0.412 ms (heuristic first 0.437 ms)".
  const std::string& choice() const { return choice_; }
  double autotune_ms() const { return autotune_ms_; }
  // Times the chosen algorithm now, on scratch operands, as the autotune search times its candidates
  // (graph_timing.h): what another GEMM candidate (aisp's kernel) is compared with.
  double measure_ms() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string choice_;
  double autotune_ms_ = 0;
  TuneResult decision_;
};

// "<GPU name> sm_XY cuBLASLt <version>": where a timed GEMM decision holds.
std::string device_tuning_key();

}  // namespace aisp::compiler
