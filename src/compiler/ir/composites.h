// Composite ops, built from primitives in the builder: the passes and backends never see a
// "softmax" node, only the reductions and pointwise ops it decomposes into, and the fusion pass is
// what turns them back into one kernel. Low-precision inputs are upcast to f32 inside the composite
// and cast back at the end (what a careful eager implementation does too).
#pragma once

#include "compiler/ir/builder.h"

namespace aisp::compiler {

Tensor softmax(Tensor x, std::int64_t axis = -1);
Tensor layer_norm(Tensor x, Tensor weight, Tensor bias, double eps = 1e-5);  // over the last axis
Tensor rms_norm(Tensor x, Tensor weight, double eps = 1e-6);                 // over the last axis
Tensor gelu(Tensor x);                                                       // exact (erf) form
// q [..., Tq, D], k/v [..., Tk, D]; softmax(q k^T / sqrt(D)) v; causal masks key j > query i + Tk - Tq.
Tensor attention(Tensor q, Tensor k, Tensor v, bool causal);
// Mean over rows of logsumexp(logits) - logits[target]; logits [N, V], targets i32 [N] -> shape ().
Tensor cross_entropy(Tensor logits, Tensor targets);

}  // namespace aisp::compiler
