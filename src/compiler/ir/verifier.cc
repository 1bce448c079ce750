#include "compiler/ir/verifier.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/ir/dtype_util.h"
#include "compiler/ir/printer.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {

std::size_t arity(OpKind k) {
  if (is_leaf(k)) return 0;
  if (is_unary(k) || is_reduction(k) || is_view(k)) return 1;
  if (is_binary(k) || k == OpKind::matmul || k == OpKind::gather) return 2;
  if (k == OpKind::where || k == OpKind::attention) return 3;
  return 0;  // concat: any number >= 1, checked below
}

std::string check_shapes(const Graph& g, const Node& n) {
  auto in = [&](std::size_t i) -> const Node& { return g.node(n.inputs[i]); };
  const std::size_t rank = n.shape.size();
  switch (n.op) {
    case OpKind::input:
      return n.name.empty() ? "an input needs a name" : "";
    case OpKind::constant:
      return "";
    case OpKind::iota:
      return n.axis >= 0 && n.axis < std::int64_t(rank) ? "" : "iota axis out of range";
    default:
      break;
  }
  if (is_unary(n.op)) {
    if (in(0).shape != n.shape) return "unary op changes the shape";
    if (n.op != OpKind::cast && in(0).dtype != n.dtype) return "unary op changes the dtype (use cast)";
    return "";
  }
  if (is_binary(n.op)) {
    if (in(0).shape != n.shape || in(1).shape != n.shape)
      return fmt::format("operand shapes {} and {} differ from the output {} (broadcast first)",
                         to_string(in(0).shape), to_string(in(1).shape), to_string(n.shape));
    if (in(0).dtype != n.dtype || in(1).dtype != n.dtype) return "operand dtypes differ (cast first)";
    return "";
  }
  if (n.op == OpKind::where) {
    for (int i = 0; i < 3; ++i)
      if (in(i).shape != n.shape) return "where operands must have the output's shape";
    if (in(1).dtype != n.dtype || in(2).dtype != n.dtype) return "where branches must have the output dtype";
    return "";
  }
  if (is_reduction(n.op)) {
    const Shape& s = in(0).shape;
    if (n.axes.empty()) return "reduction over no axes";
    if (!std::is_sorted(n.axes.begin(), n.axes.end()) ||
        std::adjacent_find(n.axes.begin(), n.axes.end()) != n.axes.end() || n.axes.front() < 0 ||
        n.axes.back() >= std::int64_t(s.size()))
      return "reduction axes must be sorted, unique and in range";
    Shape expect;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const bool reduced = std::find(n.axes.begin(), n.axes.end(), std::int64_t(i)) != n.axes.end();
      if (!reduced) expect.push_back(s[i]);
      else if (n.keepdim) expect.push_back(1);
    }
    if (expect != n.shape) return fmt::format("reduced shape should be {}", to_string(expect));
    return in(0).dtype == n.dtype ? "" : "reduction changes the dtype";
  }
  if (is_view(n.op) && in(0).dtype != n.dtype) return "a view changes the dtype";
  switch (n.op) {
    case OpKind::reshape:
      return numel(in(0).shape) == numel(n.shape) ? "" : "reshape changes the element count";
    case OpKind::permute: {
      const Shape& s = in(0).shape;
      if (n.axes.size() != s.size()) return "permutation has the wrong length";
      std::vector<std::int64_t> sorted = n.axes;
      std::sort(sorted.begin(), sorted.end());
      for (std::size_t i = 0; i < sorted.size(); ++i)
        if (sorted[i] != std::int64_t(i)) return "not a permutation";
      for (std::size_t i = 0; i < s.size(); ++i)
        if (n.shape[i] != s[std::size_t(n.axes[i])]) return "permuted shape is wrong";
      return "";
    }
    case OpKind::slice: {
      const Shape& s = in(0).shape;
      if (n.starts.size() != s.size() || n.steps.size() != s.size() || rank != s.size())
        return "slice needs a start and step per axis";
      for (std::size_t i = 0; i < s.size(); ++i) {
        if (n.steps[i] < 1 || n.starts[i] < 0 || n.shape[i] < 1) return "bad slice start/step/extent";
        if (n.starts[i] + (n.shape[i] - 1) * n.steps[i] >= s[i]) return "slice runs past the end";
      }
      return "";
    }
    case OpKind::broadcast: {
      const Shape& s = in(0).shape;
      if (s.size() != rank) return "broadcast keeps the rank (reshape to add unit axes first)";
      for (std::size_t i = 0; i < rank; ++i)
        if (s[i] != n.shape[i] && s[i] != 1) return "broadcast only expands axes of size 1";
      return "";
    }
    case OpKind::concat: {
      if (n.inputs.empty()) return "concat of nothing";
      std::int64_t total = 0;
      for (std::size_t i = 0; i < n.inputs.size(); ++i) {
        const Node& x = in(i);
        if (x.shape.size() != rank || x.dtype != n.dtype) return "concat operands differ in rank/dtype";
        for (std::size_t d = 0; d < rank; ++d)
          if (std::int64_t(d) != n.axis && x.shape[d] != n.shape[d]) return "concat operands differ off-axis";
        total += x.shape[std::size_t(n.axis)];
      }
      return total == n.shape[std::size_t(n.axis)] ? "" : "concat extent is not the sum";
    }
    case OpKind::matmul: {
      if (is_fp8(n.dtype) || is_fp8(in(0).dtype) || is_fp8(in(1).dtype))
        return "a matmul in fp8 storage (e4m3/e5m2) is not built (an fp8 GEMM needs scales: kernels/gemm's "
               "gemm_fp8); cast its operands to bf16";
      const Shape& a = in(0).shape;
      const Shape& b = in(1).shape;
      if (a.size() < 2 || a.size() != b.size() || rank != a.size()) return "matmul operands need equal rank >= 2";
      for (std::size_t i = 0; i + 2 < rank; ++i)
        if (a[i] != b[i] || n.shape[i] != a[i]) return "matmul batch dims differ (broadcast first)";
      if (a[rank - 1] != b[rank - 2]) return fmt::format("matmul inner dims {} vs {}", a[rank - 1], b[rank - 2]);
      if (n.shape[rank - 2] != a[rank - 2] || n.shape[rank - 1] != b[rank - 1]) return "matmul output shape";
      if (n.activation != Activation::none && !is_floating(n.dtype)) return "a matmul activation needs a float dtype";
      for (std::size_t i = 2; i < n.inputs.size(); ++i)
        if (in(i).shape != n.shape || in(i).dtype != n.dtype) return "a matmul addend has the output's shape and dtype";
      return in(0).dtype == n.dtype && in(1).dtype == n.dtype ? "" : "matmul dtypes differ";
    }
    case OpKind::gather: {
      const Shape& table = in(0).shape;
      if (table.empty() || in(1).dtype != DType::i32) return "gather needs a table and i32 indices";
      Shape expect = in(1).shape;
      expect.insert(expect.end(), table.begin() + 1, table.end());
      if (expect != n.shape) return "gather shape is indices.shape + table.shape[1:]";
      return in(0).dtype == n.dtype ? "" : "gather changes the dtype";
    }
    case OpKind::attention: {
      if (is_fp8(n.dtype)) return "attention in fp8 storage (e4m3/e5m2) is not built: cast q, k and v to bf16";
      const Shape &q = in(0).shape, &k = in(1).shape, &v = in(2).shape;
      if (q.size() < 2 || k.size() != q.size() || v.size() != q.size() || rank != q.size())
        return "attention operands need equal rank >= 2 (q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv])";
      // The result as [..., Tq, Dv]; with axes {0, 2, 1, 3} the node's shape is its permutation.
      Shape out = n.shape;
      if (!n.axes.empty()) {
        if (rank != 4 || n.axes != std::vector<std::int64_t>{0, 2, 1, 3})
          return "attention's output permutation must be [0,2,1,3] of a rank-4 result";
        std::swap(out[1], out[2]);
      }
      for (std::size_t i = 0; i + 2 < rank; ++i)
        if (k[i] != q[i] || v[i] != q[i] || out[i] != q[i]) return "attention batch dims differ";
      if (k[rank - 1] != q[rank - 1]) return "attention: q and k head dims differ";
      if (v[rank - 2] != k[rank - 2]) return "attention: k and v lengths differ";
      if (out[rank - 2] != q[rank - 2] || out[rank - 1] != v[rank - 1]) return "attention output shape";
      if (!(n.value > 0)) return "attention scale must be positive";
      if (n.causal && q[rank - 2] > k[rank - 2])
        return "causal attention needs Tq <= Tk (the first queries would see no key)";
      for (int i = 0; i < 3; ++i)
        if (in(std::size_t(i)).dtype != n.dtype || !is_floating(n.dtype)) return "attention dtypes differ";
      return "";
    }
    default:
      return "";
  }
}

}  // namespace

std::string check_node(const Graph& g, const Node& n, NodeId id) {
  if (!is_supported(n.dtype)) return fmt::format("unsupported dtype {}", name_of(n.dtype));
  if (n.activation != Activation::none && n.op != OpKind::matmul)
    return fmt::format("activation {} on a {} (only a matmul has one)", name_of(n.activation), name_of(n.op));
  for (auto d : n.shape)
    if (d < 1) return fmt::format("dimension {} in {}", d, to_string(n.shape));
  for (NodeId in : n.inputs)
    if (in < 0 || in >= id) return fmt::format("input %{} is not an earlier node", in);
  const std::size_t want = arity(n.op);
  // concat takes any number; matmul up to two addends (passes/epilogue.h: a bias, a residual).
  if (n.op == OpKind::concat ? n.inputs.empty()
      : n.op == OpKind::matmul ? n.inputs.size() < 2 || n.inputs.size() > 4
                               : n.inputs.size() != want)
    return fmt::format("{} inputs, expected {}", n.inputs.size(), want);
  return check_shapes(g, n);
}

void verify(const Graph& g, std::string_view stage) {
  for (NodeId id = 0; id < NodeId(g.size()); ++id)
    if (std::string err = check_node(g, g.node(id), id); !err.empty())
      throw Error(fmt::format("IR check failed {}: {} -> {}", stage, format_node(g, id), err));
  for (NodeId out : g.outputs())
    if (out < 0 || out >= NodeId(g.size())) throw Error(fmt::format("IR check failed {}: bad output", stage));
}

}  // namespace aisp::compiler
