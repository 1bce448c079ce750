#include "compiler/passes/layout.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace aisp::compiler {
namespace {

// Strides for viewing (shape, strides) as new_shape without copying, if possible; the algorithm of
// PyTorch's computeStride: walk both shapes from the back, matching chunks of contiguous dims.
std::optional<std::vector<std::int64_t>> reshape_strides(const Shape& shape, const std::vector<std::int64_t>& st,
                                                         const Shape& new_shape) {
  std::vector<std::int64_t> out(new_shape.size(), 1);
  if (shape.empty()) return std::vector<std::int64_t>(new_shape.size(), 0);
  int view_d = int(new_shape.size()) - 1;
  std::int64_t chunk_base = st.back(), tensor_numel = 1, view_numel = 1;
  for (int d = int(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[std::size_t(d)];
    if (d == 0 || (shape[std::size_t(d - 1)] != 1 && st[std::size_t(d - 1)] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[std::size_t(view_d)] == 1)) {
        out[std::size_t(view_d)] = view_numel * chunk_base;
        view_numel *= new_shape[std::size_t(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base = st[std::size_t(d - 1)];
        tensor_numel = view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

}  // namespace

bool Layout::contiguous() const {
  const auto c = contiguous_strides(shape);
  for (std::size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1 && strides[d] != c[d]) return false;
  return true;
}

std::string Layout::to_string() const {
  return fmt::format("({}):({})+{}", fmt::join(shape, ","), fmt::join(strides, ","), offset);
}

bool is_buffer_node(const Graph& g, NodeId id) {
  const OpKind op = g.node(id).op;
  return !is_view(op) && op != OpKind::constant && op != OpKind::iota;
}

bool is_free_view(const Graph& g, NodeId id) {
  const Node& n = g.node(id);
  if (!is_view(n.op)) return false;
  const NodeId src = n.inputs[0];
  return is_buffer_node(g, src) || is_free_view(g, src);
}

NodeId buffer_source(const Graph& g, NodeId id) {
  if (is_buffer_node(g, id)) return id;
  if (is_free_view(g, id)) return buffer_source(g, g.node(id).inputs[0]);
  return -1;
}

std::optional<Layout> layout_of(const Graph& g, NodeId id) {
  const Node& n = g.node(id);
  if (is_buffer_node(g, id)) return Layout{id, 0, n.shape, contiguous_strides(n.shape)};
  if (!is_free_view(g, id)) return std::nullopt;
  std::optional<Layout> in = layout_of(g, n.inputs[0]);
  if (!in) return std::nullopt;
  Layout out{in->source, in->offset, n.shape, {}};
  switch (n.op) {
    case OpKind::reshape: {
      auto st = reshape_strides(in->shape, in->strides, n.shape);
      if (!st) return std::nullopt;
      out.strides = *st;
      break;
    }
    case OpKind::permute:
      for (auto p : n.axes) out.strides.push_back(in->strides[std::size_t(p)]);
      break;
    case OpKind::slice:
      for (std::size_t d = 0; d < n.shape.size(); ++d) {
        out.offset += n.starts[d] * in->strides[d];
        out.strides.push_back(n.steps[d] * in->strides[d]);
      }
      break;
    case OpKind::broadcast:
      for (std::size_t d = 0; d < n.shape.size(); ++d)
        out.strides.push_back(in->shape[d] == 1 && n.shape[d] != 1 ? 0 : in->strides[d]);
      break;
    default:
      return std::nullopt;
  }
  return out;
}

bool output_can_alias_source(const Graph& g, NodeId id) {
  if (!is_free_view(g, id)) return false;
  const auto l = layout_of(g, id);
  return l && l->offset == 0 && l->contiguous() && g.node(l->source).op != OpKind::input;
}

std::vector<char> output_buffers(const Graph& g) {
  std::vector<char> out(g.size(), 0);
  for (NodeId o : g.outputs()) {
    out[std::size_t(o)] = 1;
    if (output_can_alias_source(g, o)) out[std::size_t(buffer_source(g, o))] = 1;
  }
  return out;
}

}  // namespace aisp::compiler
