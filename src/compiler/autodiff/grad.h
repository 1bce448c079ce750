// Reverse-mode automatic differentiation on the graph IR (what training needs from the compiler):
//
//   Graph g; ... Tensor loss = cross_entropy(logits, targets);           // a scalar, shape ()
//   std::vector<Tensor> grads = grad(loss, {w1, b1, ...});              // appended to g
//   g.output(loss); for (Tensor t : grads) g.output(t);
//
// The backward nodes are ordinary IR nodes appended to the same graph, so the interpreter checks them,
// and fusion, codegen and every backend compile forward and backward together (one training step).
// Adjoints are accumulated in f32 whatever the storage dtype (as mixed-precision training keeps
// fp32 gradients before the optimizer); each gradient is returned in its input's dtype.
//
// Rules: every pointwise op, where, reductions (a max sends its adjoint to every element equal to the
// max, split evenly among ties), views (a slice's adjoint is zero-padded by concatenating zeros;
// slices with a step > 1 are refused), concat, matmul (gy·Bᵀ, Aᵀ·gy), gather (the table's adjoint
// is onehot(indices)ᵀ·gy: a dense matmul, exact but O(N·V·C); a scatter-add op would be the fast
// path). Comparisons, iota and constants have no adjoint; i32/u8 inputs cannot be differentiated.
// Errors (a non-scalar loss, a wrt from another graph, an integer wrt) raise aisp::Error.
#pragma once

#include <vector>

#include "compiler/ir/builder.h"

namespace aisp::compiler {

// d(loss)/d(wrt[i]) for each i (zeros when loss does not depend on it), appended to loss's graph.
std::vector<Tensor> grad(Tensor loss, const std::vector<Tensor>& wrt);

}  // namespace aisp::compiler
