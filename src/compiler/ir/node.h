// The one node type of the IR. A graph is a vector of nodes in topological order (inputs always
// have smaller ids), so every pass is a single forward walk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/ir/op.h"
#include "compiler/ir/shape.h"
#include "core/dtype.h"

namespace aisp::compiler {

using NodeId = std::int32_t;

struct Node {
  OpKind op = OpKind::input;
  DType dtype = DType::f32;  // storage dtype of the output; compute is fp32 (float64 in the interpreter)
  Shape shape;               // static output shape
  std::vector<NodeId> inputs;

  // Attributes; which ones mean something depends on op.
  std::vector<std::int64_t> axes;    // reduce_*: reduced axes (sorted); permute: the permutation;
                                     // attention: empty, or {0, 2, 1, 3}: the [B, H, T, D] result
                                     // comes out permuted, as [B, T, H, D] (passes/materialize.h)
  std::vector<std::int64_t> starts;  // slice: first index per axis
  std::vector<std::int64_t> steps;   // slice: step per axis (>= 1)
  std::int64_t axis = 0;             // concat, iota: the axis
  bool keepdim = false;              // reduce_*
  double value = 0.0;                // constant: the splat value; attention: the score scale
  bool causal = false;               // attention: query i sees keys j <= i + Tk - Tq
  Activation activation = Activation::none;  // matmul: applied after the addend (passes/epilogue.h)
  std::string name;                  // input: the name the caller binds
  // Which composite call (softmax, layer_norm, gelu, attention, ...) created the node: an id unique
  // within its graph, -1 for ops the user called directly. Not part of the computation (CSE ignores
  // it); the eager plan fuses only within one composite, as an eager framework's native kernels do.
  std::int32_t composite = -1;
};

// Two nodes compute the same thing (CSE): same op, dtype, shape, inputs and attributes.
inline bool same_computation(const Node& a, const Node& b) {
  return a.op == b.op && a.dtype == b.dtype && a.shape == b.shape && a.inputs == b.inputs &&
         a.axes == b.axes && a.starts == b.starts && a.steps == b.steps && a.axis == b.axis &&
         a.keepdim == b.keepdim && a.causal == b.causal && a.activation == b.activation && (a.value == b.value || (a.value != a.value && b.value != b.value)) &&
         a.name == b.name;
}

}  // namespace aisp::compiler
