// aisp's skinny GEMM (kernels/gemm/gemm_bf16_skinny.h) as a max-autotune candidate for the CUDA
// backend's Linear GEMMs of at most 64 rows (a decode step, a small batch), beside cuBLASLt's
// algorithms. Where the tile kernel (aisp_gemm.h) is offered for the larger GEMMs, this one is
// offered for these instead; it takes every epilogue a matmul step has (bias, residual, the tanh
// GELU), so no step of a small model is left out.
//
// The search (max-autotune only) times each legal split count against cuBLASLt's chosen algorithm,
// by the same procedure (graph_timing.h), and takes the kernel only when it is at least kMinGain
// faster (aisp_gemm.h's settle_against_cublaslt).
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <optional>
#include <string>

#include "compiler/ir/op.h"
#include "compiler/runtime/autotune.h"
#include "compiler/runtime/gemm_plan.h"
#include "core/dtype.h"

namespace aisp::compiler {

// Empty when the skinny kernel can compute `plan` (bf16, the Linear layout of aisp_gemm_unfit, at
// most 64 rows, K within the kernel's limit, no GELU together with a residual), else the reason.
std::string skinny_gemm_unfit(DType dtype, const GemmCall& plan, bool residual, Activation act);

// A split count as a TuneResult token ("aisp skinny s4") and back.
std::string skinny_config_token(int splits);
std::optional<int> skinny_config_from_token(const std::string& token);

struct SkinnyGemmChoice {
  TuneResult decision;  // best: skinny_config_token(splits), or "cuBLASLt" when it stays
  int splits = 0;       // > 0 when the skinny kernel was chosen
  std::string summary;  // "aisp skinny s4: 0.003 ms vs cuBLASLt 0.006 ms (2.00x)"
};

// Times every legal split count on scratch operands of the plan's extents, then `cublaslt_ms`.
// `forced` (tests): the automatic split count, timed once, cuBLASLt not asked.
SkinnyGemmChoice choose_skinny_gemm(const GemmCall& plan, bool bias, bool residual, Activation act,
                                    const std::function<double()>& cublaslt_ms, bool forced);

// Runs the kernel: a, b: the graph's operands (the plan's offsets applied here), bias and residual
// as the step's addends (or null). False (nothing enqueued) when an operand is not 16-byte aligned
// at run time: the caller runs its cuBLASLt plan instead.
bool run_skinny_gemm(const GemmCall& plan, int splits, Activation act, const void* a, const void* b, const void* bias,
                     const void* residual, void* c, cudaStream_t stream);

}  // namespace aisp::compiler
