// expand: replaces each op a backend cannot run as one step by the primitives it is made of. Today
// that is `attention`: a backend with a flash kernel keeps the nodes its predicate accepts (the CUDA
// backend: bf16, head dim 64 or 128, a GPU the kernel is built for); every other attention node —
// all of them on the CPU backend — becomes attention_primitives (matmul, mask, softmax, matmul) in
// the same composite, so the eager plan and the fusion pass treat it like any other composite.
#pragma once

#include <functional>
#include <string>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

// Which attention nodes stay whole; empty: none.
using KeepAttention = std::function<bool(const Graph&, const Node&)>;

Graph expand(const Graph& g, const KeepAttention& keep, std::string* summary = nullptr);

}  // namespace aisp::compiler
