// The graph builder: free functions on Tensor handles that record nodes, numpy-style.
//
//   Graph g;
//   Tensor x = g.input("x", {B, T, C}, DType::bf16);
//   Tensor y = gelu(matmul(x, w) + b);
//   g.output(y);
//
// Binary ops broadcast like numpy (the builder inserts reshape + broadcast nodes, so every node in
// the IR sees equal operand shapes) and promote dtypes (bf16 op f32 -> f32; a double operand takes
// the tensor's dtype). Axes may be negative.
#pragma once

#include <vector>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

// Pointwise unary.
Tensor neg(Tensor x);
Tensor exp(Tensor x);
Tensor log(Tensor x);
Tensor sqrt(Tensor x);
Tensor rsqrt(Tensor x);
Tensor tanh(Tensor x);
Tensor erf(Tensor x);
Tensor abs(Tensor x);
Tensor relu(Tensor x);
Tensor sigmoid(Tensor x);
Tensor cast(Tensor x, DType to);

// Pointwise binary (numpy broadcasting). Comparisons give 1/0 in the promoted dtype.
Tensor add(Tensor a, Tensor b);
Tensor sub(Tensor a, Tensor b);
Tensor mul(Tensor a, Tensor b);
Tensor div(Tensor a, Tensor b);
Tensor maximum(Tensor a, Tensor b);
Tensor minimum(Tensor a, Tensor b);
Tensor pow(Tensor a, Tensor b);
Tensor lt(Tensor a, Tensor b);
Tensor gt(Tensor a, Tensor b);
Tensor eq(Tensor a, Tensor b);
Tensor where(Tensor cond, Tensor a, Tensor b);

// A splat of `v` shaped and typed like `like` (how double operands enter the graph).
Tensor scalar_like(Tensor like, double v);

Tensor operator+(Tensor a, Tensor b);
Tensor operator-(Tensor a, Tensor b);
Tensor operator*(Tensor a, Tensor b);
Tensor operator/(Tensor a, Tensor b);
Tensor operator-(Tensor a);
Tensor operator+(Tensor a, double b);
Tensor operator-(Tensor a, double b);
Tensor operator*(Tensor a, double b);
Tensor operator/(Tensor a, double b);
Tensor operator+(double a, Tensor b);
Tensor operator-(double a, Tensor b);
Tensor operator*(double a, Tensor b);
Tensor operator/(double a, Tensor b);

// Reductions (numpy names: max reduces, maximum is the binary op).
Tensor sum(Tensor x, std::vector<std::int64_t> axes, bool keepdim = false);
Tensor max(Tensor x, std::vector<std::int64_t> axes, bool keepdim = false);
Tensor mean(Tensor x, std::vector<std::int64_t> axes, bool keepdim = false);

// Views. reshape accepts one -1. slice is [start, end) with a step along one axis.
Tensor reshape(Tensor x, Shape shape);
Tensor permute(Tensor x, std::vector<std::int64_t> perm);
Tensor transpose(Tensor x, std::int64_t a, std::int64_t b);
Tensor slice(Tensor x, std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step = 1);
Tensor broadcast_to(Tensor x, Shape shape);
Tensor concat(const std::vector<Tensor>& xs, std::int64_t axis);

// a [..., M, K] @ b [..., K, N]; batch dims broadcast; a 2-D b is applied to the flattened rows of a.
Tensor matmul(Tensor a, Tensor b);
// Embedding lookup: table [V, ...] rows picked by i32 indices -> indices.shape + table.shape[1:].
Tensor gather(Tensor table, Tensor indices);

}  // namespace aisp::compiler
