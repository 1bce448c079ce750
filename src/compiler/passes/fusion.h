// fusion: partitions the lowered graph into steps, the unit of execution:
//   * kernel steps: a fusion group compiled into one generated kernel. Either pointwise (a vertical
//     chain of pointwise ops and views over one output shape, the "domain") or a row reduction (one or
//     more reductions over the same rows, with their pointwise prologue and epilogue: one kernel per
//     LayerNorm / softmax row);
//   * library steps: matmul/bmm, gather, concat (matmul epilogue fusion comes with the GPU path).
// Leaves (inputs, splats, iota) and free views belong to no step: kernels fold them into loads.
// Every merge or refusal is recorded with its reason (shown by `aisp inspect`).
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/passes/fusion_rules.h"

namespace aisp::compiler {

struct FusionOptions {
  bool fuse = true;  // false: one kernel per op
  // Merge only nodes created by the same composite call (Node::composite): one kernel per
  // LayerNorm, softmax, GELU or attention-softmax, one per user op -- the eager plan, like the
  // native kernels of an eager framework. No effect when fuse is false.
  bool within_composites_only = false;
};

struct Step {
  enum class Kind { kernel, library } kind = Kind::kernel;
  std::vector<NodeId> nodes;    // computed here, topological order
  std::vector<NodeId> outputs;  // materialized here (used by later steps or graph outputs)
  std::vector<NodeId> reads;    // buffers read: inputs, library results or earlier steps' outputs

  // Kernel steps: the iteration space. Pointwise: `domain` is the output shape. Reduction: `domain` is
  // the reductions' input shape and `reduce_axes` its reduced axes (the rest are the rows).
  Shape domain;
  std::vector<std::int64_t> reduce_axes;
  std::vector<Domain> domains;  // per node in `nodes`: how the kernel evaluates it (fusion_rules.h)
  bool is_reduction() const { return !reduce_axes.empty(); }
};

struct FusionPlan {
  std::vector<Step> steps;            // in execution order
  std::vector<int> step_of;           // node -> step index, -1 for leaves and free views
  std::vector<std::string> decisions; // why each merge happened or did not

  int kernel_count() const;
  int library_count() const;
};

FusionPlan fuse(const Graph& g, const FusionOptions& options = {});

// Whether a step reads, computes or stores a value of dtype `t` (code generators add that dtype's
// conversions to a kernel only where it needs them).
bool step_uses_dtype(const Graph& g, const Step& s, DType t);

std::string describe(const Graph& g, const FusionPlan& plan);  // steps, members, decisions

}  // namespace aisp::compiler
