#include "compiler/ir/graph.h"

#include <algorithm>

#include <fmt/format.h>

#include "compiler/ir/verifier.h"
#include "core/error.h"

namespace aisp::compiler {

Tensor Graph::input(std::string name, Shape shape, DType dtype) {
  for (NodeId id : inputs())
    if (node(id).name == name) throw Error(fmt::format("graph already has an input named '{}'", name));
  Node n;
  n.op = OpKind::input;
  n.name = std::move(name);
  n.shape = std::move(shape);
  n.dtype = dtype;
  return tensor(add(std::move(n)));
}

Tensor Graph::constant(double value, DType dtype) { return full({}, value, dtype); }

Tensor Graph::full(Shape shape, double value, DType dtype) {
  Node n;
  n.op = OpKind::constant;
  n.shape = std::move(shape);
  n.dtype = dtype;
  n.value = value;
  return tensor(add(std::move(n)));
}

Tensor Graph::iota(Shape shape, std::int64_t axis, DType dtype) {
  Node n;
  n.op = OpKind::iota;
  n.shape = std::move(shape);
  n.axis = axis < 0 ? axis + std::int64_t(n.shape.size()) : axis;
  n.dtype = dtype;
  return tensor(add(std::move(n)));
}

void Graph::output(Tensor t) {
  if (t.graph != this) throw Error("output() of a tensor from another graph");
  outputs_.push_back(t.id);
}

NodeId Graph::add(Node n) {
  const NodeId id = NodeId(nodes_.size());
  if (std::string err = check_node(*this, n, id); !err.empty())
    throw Error(fmt::format("malformed {} node: {}", name_of(n.op), err));
  if (n.composite < 0) n.composite = open_composite_;
  next_composite_ = std::max(next_composite_, n.composite + 1);  // ids copied by a pass stay unique
  nodes_.push_back(std::move(n));
  return id;
}

Graph::CompositeScope::CompositeScope(Graph& g) : g_(g), outermost_(g.open_composite_ < 0) {
  if (outermost_) g_.open_composite_ = g_.next_composite_++;
}

Graph::CompositeScope::CompositeScope(Graph& g, std::int32_t id) : g_(g), outermost_(g.open_composite_ < 0) {
  if (outermost_) {
    g_.open_composite_ = id;
    g_.next_composite_ = std::max(g_.next_composite_, id + 1);
  }
}

Graph::CompositeScope::~CompositeScope() {
  if (outermost_) g_.open_composite_ = -1;
}

std::vector<NodeId> Graph::inputs() const {
  std::vector<NodeId> ids;
  for (NodeId i = 0; i < NodeId(nodes_.size()); ++i)
    if (nodes_[i].op == OpKind::input) ids.push_back(i);
  return ids;
}

}  // namespace aisp::compiler
