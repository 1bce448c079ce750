#include "compiler/ir/builder.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler {
namespace {

Graph& graph_of(Tensor a, Tensor b) {
  if (a.graph != b.graph || a.graph == nullptr) throw Error("operands belong to different graphs");
  return *a.graph;
}

Tensor make(Graph& g, OpKind op, std::vector<NodeId> inputs, Shape shape, DType dtype) {
  Node n;
  n.op = op;
  n.inputs = std::move(inputs);
  n.shape = std::move(shape);
  n.dtype = dtype;
  return g.tensor(g.add(std::move(n)));
}

// The dtype two operands meet in: the same, or the wider float (bf16 + f16 meet in f32).
DType promote(DType a, DType b) {
  if (a == b) return a;
  if (a == DType::i32) return b;
  if (b == DType::i32) return a;
  return DType::f32;
}

Tensor unary(OpKind op, Tensor x) { return make(*x.graph, op, {x.id}, x.shape(), x.dtype()); }

Tensor binary(OpKind op, Tensor a, Tensor b) {
  Graph& g = graph_of(a, b);
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  const DType dt = promote(a.dtype(), b.dtype());
  a = broadcast_to(cast(a, dt), shape);
  b = broadcast_to(cast(b, dt), shape);
  return make(g, op, {a.id, b.id}, shape, dt);
}

Tensor reduce(OpKind op, Tensor x, std::vector<std::int64_t> axes, bool keepdim) {
  axes = normalize_axes(std::move(axes), x.rank());
  Node n;
  n.op = op;
  n.inputs = {x.id};
  n.dtype = x.dtype();
  n.keepdim = keepdim;
  for (std::size_t i = 0; i < x.rank(); ++i) {
    const bool reduced = std::find(axes.begin(), axes.end(), std::int64_t(i)) != axes.end();
    if (!reduced) n.shape.push_back(x.shape()[i]);
    else if (keepdim) n.shape.push_back(1);
  }
  n.axes = std::move(axes);
  return x.graph->tensor(x.graph->add(std::move(n)));
}

}  // namespace

Tensor neg(Tensor x) { return unary(OpKind::neg, x); }
Tensor exp(Tensor x) { return unary(OpKind::exp, x); }
Tensor log(Tensor x) { return unary(OpKind::log, x); }
Tensor sqrt(Tensor x) { return unary(OpKind::sqrt, x); }
Tensor rsqrt(Tensor x) { return unary(OpKind::rsqrt, x); }
Tensor tanh(Tensor x) { return unary(OpKind::tanh, x); }
Tensor erf(Tensor x) { return unary(OpKind::erf, x); }
Tensor abs(Tensor x) { return unary(OpKind::abs, x); }
Tensor relu(Tensor x) { return unary(OpKind::relu, x); }
Tensor sigmoid(Tensor x) { return unary(OpKind::sigmoid, x); }
Tensor cast(Tensor x, DType to) {
  if (x.dtype() == to) return x;
  return make(*x.graph, OpKind::cast, {x.id}, x.shape(), to);
}

Tensor add(Tensor a, Tensor b) { return binary(OpKind::add, a, b); }
Tensor sub(Tensor a, Tensor b) { return binary(OpKind::sub, a, b); }
Tensor mul(Tensor a, Tensor b) { return binary(OpKind::mul, a, b); }
Tensor div(Tensor a, Tensor b) { return binary(OpKind::div, a, b); }
Tensor maximum(Tensor a, Tensor b) { return binary(OpKind::max, a, b); }
Tensor minimum(Tensor a, Tensor b) { return binary(OpKind::min, a, b); }
Tensor pow(Tensor a, Tensor b) { return binary(OpKind::pow, a, b); }
Tensor lt(Tensor a, Tensor b) { return binary(OpKind::cmp_lt, a, b); }
Tensor gt(Tensor a, Tensor b) { return binary(OpKind::cmp_gt, a, b); }
Tensor eq(Tensor a, Tensor b) { return binary(OpKind::cmp_eq, a, b); }

Tensor where(Tensor cond, Tensor a, Tensor b) {
  Graph& g = graph_of(a, b);
  graph_of(cond, a);
  const Shape shape = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape()));
  const DType dt = promote(a.dtype(), b.dtype());
  cond = broadcast_to(cond, shape);
  a = broadcast_to(cast(a, dt), shape);
  b = broadcast_to(cast(b, dt), shape);
  return make(g, OpKind::where, {cond.id, a.id, b.id}, shape, dt);
}

Tensor scalar_like(Tensor like, double v) { return like.graph->full(like.shape(), v, like.dtype()); }

Tensor operator+(Tensor a, Tensor b) { return add(a, b); }
Tensor operator-(Tensor a, Tensor b) { return sub(a, b); }
Tensor operator*(Tensor a, Tensor b) { return mul(a, b); }
Tensor operator/(Tensor a, Tensor b) { return div(a, b); }
Tensor operator-(Tensor a) { return neg(a); }
Tensor operator+(Tensor a, double b) { return add(a, scalar_like(a, b)); }
Tensor operator-(Tensor a, double b) { return sub(a, scalar_like(a, b)); }
Tensor operator*(Tensor a, double b) { return mul(a, scalar_like(a, b)); }
Tensor operator/(Tensor a, double b) { return div(a, scalar_like(a, b)); }
Tensor operator+(double a, Tensor b) { return add(scalar_like(b, a), b); }
Tensor operator-(double a, Tensor b) { return sub(scalar_like(b, a), b); }
Tensor operator*(double a, Tensor b) { return mul(scalar_like(b, a), b); }
Tensor operator/(double a, Tensor b) { return div(scalar_like(b, a), b); }

Tensor sum(Tensor x, std::vector<std::int64_t> axes, bool keepdim) {
  return reduce(OpKind::reduce_sum, x, std::move(axes), keepdim);
}
Tensor max(Tensor x, std::vector<std::int64_t> axes, bool keepdim) {
  return reduce(OpKind::reduce_max, x, std::move(axes), keepdim);
}
Tensor mean(Tensor x, std::vector<std::int64_t> axes, bool keepdim) {
  return reduce(OpKind::reduce_mean, x, std::move(axes), keepdim);
}

Tensor reshape(Tensor x, Shape shape) {
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw Error("reshape with more than one -1");
      infer = int(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) shape[std::size_t(infer)] = known > 0 ? numel(x.shape()) / known : 0;
  if (shape == x.shape()) return x;
  if (numel(shape) != numel(x.shape()))
    throw Error(fmt::format("cannot reshape {} to {}", to_string(x.shape()), to_string(shape)));
  return make(*x.graph, OpKind::reshape, {x.id}, std::move(shape), x.dtype());
}

Tensor permute(Tensor x, std::vector<std::int64_t> perm) {
  for (auto& p : perm)
    if (p < 0) p += std::int64_t(x.rank());
  Node n;
  n.op = OpKind::permute;
  n.inputs = {x.id};
  n.dtype = x.dtype();
  for (auto p : perm) {
    if (p < 0 || p >= std::int64_t(x.rank())) throw Error("permute axis out of range");
    n.shape.push_back(x.shape()[std::size_t(p)]);
  }
  n.axes = std::move(perm);
  return x.graph->tensor(x.graph->add(std::move(n)));
}

Tensor transpose(Tensor x, std::int64_t a, std::int64_t b) {
  std::vector<std::int64_t> perm(x.rank());
  for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = std::int64_t(i);
  if (a < 0) a += std::int64_t(x.rank());
  if (b < 0) b += std::int64_t(x.rank());
  std::swap(perm.at(std::size_t(a)), perm.at(std::size_t(b)));
  return permute(x, std::move(perm));
}

Tensor slice(Tensor x, std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step) {
  if (axis < 0) axis += std::int64_t(x.rank());
  const std::int64_t dim = x.shape().at(std::size_t(axis));
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  end = std::min(end, dim);
  if (step < 1 || start < 0 || start >= end) throw Error("empty or invalid slice");
  Node n;
  n.op = OpKind::slice;
  n.inputs = {x.id};
  n.dtype = x.dtype();
  n.shape = x.shape();
  n.shape[std::size_t(axis)] = (end - start + step - 1) / step;
  n.starts.assign(x.rank(), 0);
  n.steps.assign(x.rank(), 1);
  n.starts[std::size_t(axis)] = start;
  n.steps[std::size_t(axis)] = step;
  return x.graph->tensor(x.graph->add(std::move(n)));
}

Tensor broadcast_to(Tensor x, Shape shape) {
  if (x.shape() == shape) return x;
  if (x.rank() > shape.size()) throw Error("broadcast_to a lower rank");
  if (x.rank() < shape.size()) {  // numpy: align trailing axes, missing leading axes are 1
    Shape s(shape.size() - x.rank(), 1);
    s.insert(s.end(), x.shape().begin(), x.shape().end());
    x = reshape(x, s);
    if (x.shape() == shape) return x;
  }
  return make(*x.graph, OpKind::broadcast, {x.id}, std::move(shape), x.dtype());
}

Tensor concat(const std::vector<Tensor>& xs, std::int64_t axis) {
  if (xs.empty()) throw Error("concat of nothing");
  if (axis < 0) axis += std::int64_t(xs[0].rank());
  if (xs.size() == 1) return xs[0];
  Node n;
  n.op = OpKind::concat;
  n.axis = axis;
  n.dtype = xs[0].dtype();
  n.shape = xs[0].shape();
  n.shape.at(std::size_t(axis)) = 0;
  for (const Tensor& t : xs) {
    graph_of(t, xs[0]);
    n.inputs.push_back(t.id);
    n.shape[std::size_t(axis)] += t.shape().at(std::size_t(axis));
  }
  return xs[0].graph->tensor(xs[0].graph->add(std::move(n)));
}

Tensor matmul(Tensor a, Tensor b) {
  Graph& g = graph_of(a, b);
  if (a.rank() < 2 || b.rank() < 2) throw Error("matmul needs operands of rank >= 2");
  const DType dt = promote(a.dtype(), b.dtype());
  a = cast(a, dt);
  b = cast(b, dt);
  if (b.rank() == 2 && a.rank() > 2) {  // x[..., K] @ W[K, N]: one GEMM over all rows of x
    Shape out = a.shape();
    out.back() = b.dim(1);
    Tensor flat = reshape(a, {-1, a.dim(-1)});
    return reshape(matmul(flat, b), out);
  }
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                 Shape(b.shape().begin(), b.shape().end() - 2));
  Shape sa = batch, sb = batch, out = batch;
  sa.insert(sa.end(), {a.dim(-2), a.dim(-1)});
  sb.insert(sb.end(), {b.dim(-2), b.dim(-1)});
  out.insert(out.end(), {a.dim(-2), b.dim(-1)});
  a = broadcast_to(a, sa);
  b = broadcast_to(b, sb);
  return make(g, OpKind::matmul, {a.id, b.id}, std::move(out), dt);
}

Tensor gather(Tensor table, Tensor indices) {
  Graph& g = graph_of(table, indices);
  Shape out = indices.shape();
  out.insert(out.end(), table.shape().begin() + 1, table.shape().end());
  return make(g, OpKind::gather, {table.id, indices.id}, std::move(out), table.dtype());
}

}  // namespace aisp::compiler
