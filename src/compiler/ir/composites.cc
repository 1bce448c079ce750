#include "compiler/ir/composites.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace aisp::compiler {
namespace {
Tensor to_f32(Tensor x) { return cast(x, DType::f32); }
}  // namespace

Tensor softmax(Tensor x, std::int64_t axis) {
  const Graph::CompositeScope scope(*x.graph);
  const Tensor xf = to_f32(x);
  const Tensor e = exp(xf - max(xf, {axis}, true));  // subtract the row max: exp never overflows
  return cast(e / sum(e, {axis}, true), x.dtype());
}

Tensor layer_norm(Tensor x, Tensor weight, Tensor bias, double eps) {
  const Graph::CompositeScope scope(*x.graph);
  const Tensor xf = to_f32(x);
  const Tensor xc = xf - mean(xf, {-1}, true);
  const Tensor rstd = rsqrt(mean(xc * xc, {-1}, true) + eps);  // two-pass variance: no cancellation
  return cast(xc * rstd * to_f32(weight) + to_f32(bias), x.dtype());
}

Tensor rms_norm(Tensor x, Tensor weight, double eps) {
  const Graph::CompositeScope scope(*x.graph);
  const Tensor xf = to_f32(x);
  return cast(xf * rsqrt(mean(xf * xf, {-1}, true) + eps) * to_f32(weight), x.dtype());
}

Tensor gelu(Tensor x) {
  const Graph::CompositeScope scope(*x.graph);
  const Tensor xf = to_f32(x);
  return cast(0.5 * xf * (1.0 + erf(xf * M_SQRT1_2)), x.dtype());
}

Tensor gelu_tanh(Tensor x) {
  const Graph::CompositeScope scope(*x.graph);
  const Tensor xf = to_f32(x);
  const double sqrt_2_over_pi = 0.7978845608028654;
  return cast(0.5 * xf * (1.0 + tanh(sqrt_2_over_pi * (xf + 0.044715 * (xf * xf * xf)))), x.dtype());
}

Tensor attention(Tensor q, Tensor k, Tensor v, bool causal, double scale) {
  const Graph::CompositeScope scope(*q.graph);
  Node n;
  n.op = OpKind::attention;
  n.inputs = {q.id, k.id, v.id};
  n.shape = q.shape();
  n.shape.back() = v.dim(-1);
  n.dtype = q.dtype();
  n.value = scale > 0 ? scale : 1.0 / std::sqrt(double(q.dim(-1)));
  n.causal = causal;
  return q.graph->tensor(q.graph->add(std::move(n)));
}

Tensor attention_probabilities(Tensor q, Tensor k, bool causal, double scale) {
  const std::int64_t tq = q.dim(-2), tk = k.dim(-2);
  Tensor s = to_f32(matmul(q, transpose(k, -1, -2))) * scale;
  if (causal) {
    Graph& g = *q.graph;
    const Tensor row = g.iota({tq, tk}, 0), col = g.iota({tq, tk}, 1);
    const Tensor masked = gt(col, row + double(tk - tq));
    s = where(masked, g.constant(-std::numeric_limits<double>::infinity()), s);
  }
  return softmax(s, -1);
}

Tensor attention_primitives(Tensor q, Tensor k, Tensor v, bool causal, double scale) {
  return matmul(cast(attention_probabilities(q, k, causal, scale), v.dtype()), v);
}

Tensor cross_entropy(Tensor logits, Tensor targets) {
  if (logits.rank() != 2 || targets.rank() != 1) throw Error("cross_entropy wants logits [N, V], targets [N]");
  Graph& g = *logits.graph;
  const Graph::CompositeScope scope(g);
  const Tensor x = to_f32(logits);
  const Tensor m = max(x, {-1}, true);
  const Tensor lse = reshape(m, {logits.dim(0)}) + log(sum(exp(x - m), {-1}));
  // logits[n, target[n]] as a masked row sum: a one-hot from iota, so it fuses like any reduction.
  const Tensor onehot = eq(g.iota(logits.shape(), 1), reshape(cast(targets, DType::f32), {-1, 1}));
  const Tensor picked = sum(x * onehot, {-1});
  return mean(lse - picked, {0});
}

}  // namespace aisp::compiler
