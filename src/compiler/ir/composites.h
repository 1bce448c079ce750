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
// The tanh approximation (GPT-2's, PyTorch's GELU(approximate="tanh")): the form cuBLASLt's GELU
// epilogue computes, so the compiler can fold it into the GEMM before it (passes/epilogue.h).
Tensor gelu_tanh(Tensor x);
// q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv]: softmax(q kᵀ · scale) v, scale 1/sqrt(D) unless
// given; causal masks key j > query i + Tk - Tq. The exception to the rule above: one `attention` node
// (so a backend can run it as one flash kernel); the expand pass turns it into attention_primitives
// where the backend has no such kernel.
Tensor attention(Tensor q, Tensor k, Tensor v, bool causal, double scale = 0);
// The decomposition: matmul, scale, mask, softmax (in f32), matmul; what eager frameworks launch.
Tensor attention_primitives(Tensor q, Tensor k, Tensor v, bool causal, double scale);
// Its softmax(q kᵀ · scale + mask) in f32 (the autodiff rule recomputes it).
Tensor attention_probabilities(Tensor q, Tensor k, bool causal, double scale);
// Mean over rows of logsumexp(logits) - logits[target]; logits [N, V], targets i32 [N] -> shape ().
Tensor cross_entropy(Tensor logits, Tensor targets);

}  // namespace aisp::compiler
