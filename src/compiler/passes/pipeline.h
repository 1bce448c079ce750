// The compilation pipeline, read top to bottom:
//
//   expand        ops the backend cannot run whole -> primitives      (graph -> graph)
//   simplify      constant folding, identities, CSE, dead code        (graph -> graph)
//   materialize   copies where a value needs its own buffer           (graph -> graph)
//   epilogue      bias adds folded into their matmuls (CUDA only)     (graph -> graph)
//   fuse          kernel and library steps, with reasons              (graph -> FusionPlan)
//   plan_memory   arena offsets by liveness                           (plan  -> MemoryPlan)
//
// then a backend generates one kernel per kernel step (codegen/), compiles them (runtime/) and runs
// the steps in order. The verifier runs after every graph pass; each pass's IR is kept for inspect.
#pragma once

#include <string>
#include <vector>

#include "compiler/passes/epilogue.h"
#include "compiler/passes/expand.h"
#include "compiler/passes/fusion.h"
#include "compiler/passes/memory_plan.h"

namespace aisp::compiler {

struct PipelineOptions {
  bool fuse = true;
  bool fuse_within_composites_only = false;  // the eager plan (FusionOptions::within_composites_only)
  bool verify_each_pass = true;
  bool keep_ir = true;  // store the printed IR after each pass (for inspect and tests)
  // passes/epilogue.h: the backend's epilogue GEMM (bias, and outside the eager plan the tanh GELU);
  // empty: off
  CanFoldBias fold_matmul_bias;
  KeepAttention keep_attention;  // the backend's flash-attention predicate; empty: expand every attention
  bool strided_attention = false;  // the backend's flash kernel reads [B, H, T, D] views in place (materialize.h)
};

struct PassRecord {
  std::string name;
  std::string summary;
  std::string ir_after;  // empty unless keep_ir
  double ms = 0;
};

struct Lowered {
  Graph graph;  // after the graph passes: what the plan's node ids refer to
  FusionPlan fusion;
  MemoryPlan memory;
  std::vector<PassRecord> passes;
  double total_ms = 0;
};

Lowered lower(const Graph& g, const PipelineOptions& options = {});

}  // namespace aisp::compiler
