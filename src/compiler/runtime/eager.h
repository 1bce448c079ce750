// The CPU eager executor: the baseline the compiled path is measured against. One precompiled loop
// per op (OpenMP-parallel, fp32 math), every intermediate materialized and rounded to its storage
// dtype, freed after its last use; matmul through a blocked fp32 loop. It runs the graph as written
// (no simplification), like an eager framework. The CPU has no flash-attention kernel: attention runs
// as its primitives (passes/expand.h), as in the compiled CPU plan.
//
// Sharp edge: values are held in fp32 arrays even for bf16/f16 nodes (rounded to the dtype, so the
// numbers are those of bf16 storage, but the memory traffic is that of fp32), and views are copies.
#pragma once

#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/ir/host_tensor.h"
#include "compiler/passes/expand.h"

namespace aisp::compiler {

class EagerExecutor {
 public:
  explicit EagerExecutor(const Graph& g) : g_(expand(g, {})) {}
  std::vector<HostTensor> run(const std::vector<HostTensor>& inputs) const;
  int ops_per_call() const;  // kernels an eager framework would launch: every node that is not a leaf or a view

 private:
  Graph g_;
};

}  // namespace aisp::compiler
