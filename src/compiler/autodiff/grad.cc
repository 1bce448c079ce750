#include "compiler/autodiff/grad.h"

#include <cmath>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "compiler/ir/composites.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {

constexpr DType kAdjoint = DType::f32;

Tensor f32(Tensor x) { return x.dtype() == kAdjoint ? x : cast(x, kAdjoint); }
Tensor zeros(Graph& g, const Shape& s) { return g.full(s, 0.0, kAdjoint); }

// The adjoint of a reduction's output, viewed with the reduced axes kept (size 1) and broadcast back
// over the input's shape.
Tensor spread(Tensor gy, const Node& reduce, const Shape& in_shape) {
  Shape kept = in_shape;
  for (std::int64_t a : reduce.axes) kept[std::size_t(a)] = 1;
  return broadcast_to(reshape(gy, kept), in_shape);
}

// Sum an adjoint of `out_shape` back to a broadcast's input shape (same rank; size-1 axes expanded).
Tensor unbroadcast(Tensor gy, const Shape& in_shape) {
  std::vector<std::int64_t> axes;
  for (std::size_t i = 0; i < in_shape.size(); ++i)
    if (in_shape[i] == 1 && gy.shape()[i] != 1) axes.push_back(std::int64_t(i));
  return axes.empty() ? gy : sum(gy, axes, true);
}

class Reverse {
 public:
  explicit Reverse(Graph& g) : g_(g), adjoint_(g.size()) {}

  void seed(NodeId loss) { adjoint_[std::size_t(loss)] = g_.full({}, 1.0, kAdjoint); }

  // Walks the forward nodes from `loss` down (ids are topological), applying each node's rule.
  void run(NodeId loss, const std::vector<char>& needed) {
    for (NodeId id = loss; id >= 0; --id) {
      if (!needed[std::size_t(id)] || !adjoint_[std::size_t(id)]) continue;
      backward(id, *adjoint_[std::size_t(id)]);
    }
  }

  std::optional<Tensor> adjoint(NodeId id) const { return adjoint_[std::size_t(id)]; }

 private:
  Tensor in(const Node& n, std::size_t i) { return g_.tensor(n.inputs[i]); }
  Tensor out(NodeId id) { return g_.tensor(id); }

  void accumulate(NodeId id, Tensor g) {
    if (!is_floating(g_.node(id).dtype)) return;  // integer and mask inputs carry no adjoint
    g = f32(g);
    auto& a = adjoint_[std::size_t(id)];
    a = a ? *a + g : g;
  }

  void backward(NodeId id, Tensor gy) {
    const Node n = g_.node(id);  // a copy: the rules append nodes to g_
    const double kTwoOverSqrtPi = 2.0 / std::sqrt(M_PI);
    switch (n.op) {
      case OpKind::input:
      case OpKind::constant:
      case OpKind::iota:
      case OpKind::cmp_lt:
      case OpKind::cmp_gt:
      case OpKind::cmp_eq:
        return;
      case OpKind::neg: return accumulate(n.inputs[0], -gy);
      case OpKind::exp: return accumulate(n.inputs[0], gy * f32(out(id)));
      case OpKind::log: return accumulate(n.inputs[0], gy / f32(in(n, 0)));
      case OpKind::sqrt: return accumulate(n.inputs[0], gy * 0.5 / f32(out(id)));
      case OpKind::rsqrt: return accumulate(n.inputs[0], gy * -0.5 * f32(out(id)) / f32(in(n, 0)));
      case OpKind::tanh: {
        const Tensor y = f32(out(id));
        return accumulate(n.inputs[0], gy * (1.0 - y * y));
      }
      case OpKind::erf: {
        const Tensor x = f32(in(n, 0));
        return accumulate(n.inputs[0], gy * kTwoOverSqrtPi * exp(-(x * x)));
      }
      case OpKind::abs: {
        const Tensor x = f32(in(n, 0));
        return accumulate(n.inputs[0], gy * (gt(x, scalar_like(x, 0)) - lt(x, scalar_like(x, 0))));
      }
      case OpKind::relu: {
        const Tensor x = f32(in(n, 0));
        return accumulate(n.inputs[0], gy * gt(x, scalar_like(x, 0)));
      }
      case OpKind::sigmoid: {
        const Tensor y = f32(out(id));
        return accumulate(n.inputs[0], gy * y * (1.0 - y));
      }
      case OpKind::cast: return accumulate(n.inputs[0], gy);
      case OpKind::add:
        accumulate(n.inputs[0], gy);
        return accumulate(n.inputs[1], gy);
      case OpKind::sub:
        accumulate(n.inputs[0], gy);
        return accumulate(n.inputs[1], -gy);
      case OpKind::mul:
        accumulate(n.inputs[0], gy * f32(in(n, 1)));
        return accumulate(n.inputs[1], gy * f32(in(n, 0)));
      case OpKind::div: {
        const Tensor a = f32(in(n, 0)), b = f32(in(n, 1));
        accumulate(n.inputs[0], gy / b);
        return accumulate(n.inputs[1], -(gy * a) / (b * b));
      }
      case OpKind::max:
      case OpKind::min: {
        // Ties send the whole adjoint to the first operand.
        const Tensor a = f32(in(n, 0)), b = f32(in(n, 1));
        const Tensor second = n.op == OpKind::max ? lt(a, b) : gt(a, b);
        accumulate(n.inputs[0], gy * (1.0 - second));
        return accumulate(n.inputs[1], gy * second);
      }
      case OpKind::pow: {
        const Tensor a = f32(in(n, 0)), b = f32(in(n, 1));
        accumulate(n.inputs[0], gy * b * pow(a, b - 1.0));
        return accumulate(n.inputs[1], gy * log(a) * f32(out(id)));
      }
      case OpKind::where: {
        const Tensor c = in(n, 0);
        const Tensor z = zeros(g_, n.shape);
        accumulate(n.inputs[1], where(c, gy, z));
        return accumulate(n.inputs[2], where(c, z, gy));
      }
      case OpKind::reduce_sum: return accumulate(n.inputs[0], spread(gy, n, g_.node(n.inputs[0]).shape));
      case OpKind::reduce_mean: {
        const Shape& s = g_.node(n.inputs[0]).shape;
        std::int64_t count = 1;
        for (std::int64_t a : n.axes) count *= s[std::size_t(a)];
        return accumulate(n.inputs[0], spread(gy, n, s) * (1.0 / double(count)));
      }
      case OpKind::reduce_max: {
        const Shape& s = g_.node(n.inputs[0]).shape;
        const Tensor x = f32(in(n, 0));
        const Tensor hit = eq(x, spread(f32(out(id)), n, s));
        const Tensor ties = sum(hit, n.axes, true);
        return accumulate(n.inputs[0], spread(gy, n, s) * hit / broadcast_to(ties, s));
      }
      case OpKind::reshape: return accumulate(n.inputs[0], reshape(gy, g_.node(n.inputs[0]).shape));
      case OpKind::permute: {
        std::vector<std::int64_t> inverse(n.axes.size());
        for (std::size_t i = 0; i < n.axes.size(); ++i) inverse[std::size_t(n.axes[i])] = std::int64_t(i);
        return accumulate(n.inputs[0], permute(gy, inverse));
      }
      case OpKind::broadcast: return accumulate(n.inputs[0], unbroadcast(gy, g_.node(n.inputs[0]).shape));
      case OpKind::slice: {
        const Shape& s = g_.node(n.inputs[0]).shape;
        Tensor padded = gy;
        for (std::size_t axis = 0; axis < s.size(); ++axis) {
          if (n.steps[axis] != 1)
            throw Error("grad: a slice with a step > 1 has no adjoint yet (it needs a strided scatter)");
          const std::int64_t before = n.starts[axis], after = s[axis] - n.starts[axis] - n.shape[axis];
          std::vector<Tensor> parts;
          Shape pad = padded.shape();
          if (before > 0) {
            pad[axis] = before;
            parts.push_back(zeros(g_, pad));
          }
          parts.push_back(padded);
          if (after > 0) {
            pad[axis] = after;
            parts.push_back(zeros(g_, pad));
          }
          padded = concat(parts, std::int64_t(axis));
        }
        return accumulate(n.inputs[0], padded);
      }
      case OpKind::concat: {
        std::int64_t offset = 0;
        for (std::size_t i = 0; i < n.inputs.size(); ++i) {
          const std::int64_t size = g_.node(n.inputs[i]).shape[std::size_t(n.axis)];
          accumulate(n.inputs[i], slice(gy, n.axis, offset, offset + size));
          offset += size;
        }
        return;
      }
      case OpKind::matmul: {
        if (n.activation != Activation::none)  // set by passes/epilogue.h, after differentiation
          throw Error("autodiff: a matmul with an activation epilogue has no rule; differentiate the graph before lowering it");
        const Tensor a = f32(in(n, 0)), b = f32(in(n, 1));
        for (std::size_t k = 2; k < n.inputs.size(); ++k) accumulate(n.inputs[k], gy);  // the addends
        accumulate(n.inputs[0], matmul(gy, transpose(b, -1, -2)));
        return accumulate(n.inputs[1], matmul(transpose(a, -1, -2), gy));
      }
      case OpKind::gather: {
        const Shape& table = g_.node(n.inputs[0]).shape;
        const Tensor idx = in(n, 1);
        const std::int64_t count = numel(idx.shape()), vocab = table[0];
        const std::int64_t row = numel(table) / std::max<std::int64_t>(vocab, 1);
        const Tensor onehot = eq(g_.iota({count, vocab}, 1, kAdjoint), reshape(cast(idx, kAdjoint), {count, 1}));
        const Tensor g_rows = reshape(gy, {count, row});
        return accumulate(n.inputs[0], reshape(matmul(transpose(onehot, 0, 1), g_rows), table));
      }
      case OpKind::attention: {
        if (!n.axes.empty())  // only the CUDA backend's materialize pass writes it (after autodiff)
          throw Error("grad: attention with a permuted output (a lowered graph) has no adjoint rule here");
        // Recompute P in f32 (as flash backward kernels do) and apply the softmax adjoint:
        // dS = P ∘ (dP − rowsum(dP ∘ P)); masked entries have P = 0, so they get no gradient.
        const Tensor q = f32(in(n, 0)), k = f32(in(n, 1)), v = f32(in(n, 2));
        const Tensor p = attention_probabilities(q, k, n.causal, n.value);
        const Tensor dp = matmul(gy, transpose(v, -1, -2));
        const Tensor ds = p * (dp - sum(dp * p, {-1}, true));
        accumulate(n.inputs[0], matmul(ds, k) * n.value);
        accumulate(n.inputs[1], matmul(transpose(ds, -1, -2), q) * n.value);
        return accumulate(n.inputs[2], matmul(transpose(p, -1, -2), gy));
      }
    }
    throw Error(fmt::format("grad: no adjoint rule for {}", name_of(n.op)));
  }

  Graph& g_;
  std::vector<std::optional<Tensor>> adjoint_;
};

}  // namespace

std::vector<Tensor> grad(Tensor loss, const std::vector<Tensor>& wrt) {
  if (!loss.graph) throw Error("grad: the loss is not a graph tensor");
  Graph& g = *loss.graph;
  if (!loss.shape().empty()) throw Error(fmt::format("grad: the loss must be a scalar (shape ()), not {}", to_string(loss.shape())));
  for (const Tensor& w : wrt) {
    if (w.graph != &g) throw Error("grad: a wrt tensor belongs to another graph");
    if (!is_floating(w.dtype()))
      throw Error(fmt::format("grad: cannot differentiate with respect to a {} tensor", name_of(w.dtype())));
  }
  // Only nodes the loss depends on, and only up to the forward graph's end (backward nodes appended
  // later are never walked).
  const NodeId last = loss.id;
  std::vector<char> needed(std::size_t(last) + 1, 0);
  needed[std::size_t(last)] = 1;
  for (NodeId id = last; id >= 0; --id)
    if (needed[std::size_t(id)])
      for (NodeId i : g.node(id).inputs) needed[std::size_t(i)] = 1;

  Reverse r(g);
  r.seed(last);
  r.run(last, needed);
  std::vector<Tensor> out;
  for (const Tensor& w : wrt) {
    std::optional<Tensor> a = w.id <= last ? r.adjoint(w.id) : std::nullopt;
    Tensor t = a ? *a : zeros(g, w.shape());
    out.push_back(t.dtype() == w.dtype() ? t : cast(t, w.dtype()));
  }
  return out;
}

}  // namespace aisp::compiler
