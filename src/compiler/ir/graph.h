// A graph under construction or after a pass: nodes in topological order plus the ordered list of
// outputs. Tensor is the builder's handle (graph + node id); builder.h defines the ops on it.
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/node.h"

namespace aisp::compiler {

class Graph;

struct Tensor {
  Graph* graph = nullptr;
  NodeId id = -1;

  const Node& node() const;
  const Shape& shape() const { return node().shape; }
  DType dtype() const { return node().dtype; }
  std::size_t rank() const { return shape().size(); }
  std::int64_t dim(int i) const { return shape()[i < 0 ? i + int(rank()) : i]; }
};

class Graph {
 public:
  // Leaves.
  Tensor input(std::string name, Shape shape, DType dtype = DType::f32);
  Tensor constant(double value, DType dtype = DType::f32);  // a scalar, shape ()
  Tensor full(Shape shape, double value, DType dtype = DType::f32);
  Tensor iota(Shape shape, std::int64_t axis, DType dtype = DType::f32);

  // Marks t as the next output; outputs keep the order they were marked in.
  void output(Tensor t);

  // Low level: appends a node whose shape/dtype are already set (passes and the builder use it).
  // Checks the node (verifier rules) and throws aisp::Error if it is malformed.
  NodeId add(Node n);
  Tensor tensor(NodeId id) { return Tensor{this, id}; }

  const Node& node(NodeId id) const { return nodes_[std::size_t(id)]; }
  const std::vector<Node>& nodes() const { return nodes_; }
  std::size_t size() const { return nodes_.size(); }
  const std::vector<NodeId>& outputs() const { return outputs_; }
  std::vector<NodeId>& mutable_outputs() { return outputs_; }
  std::vector<NodeId> inputs() const;  // input nodes in creation order (the binding order)

  // While a CompositeScope is alive, nodes added without a composite id get the scope's id. Scopes
  // nest: an inner composite (attention's softmax) belongs to the outermost one.
  class CompositeScope {
   public:
    explicit CompositeScope(Graph& g);
    // Reopens an existing composite (a pass expanding one op into the primitives of the same call).
    CompositeScope(Graph& g, std::int32_t id);
    ~CompositeScope();
    CompositeScope(const CompositeScope&) = delete;
    CompositeScope& operator=(const CompositeScope&) = delete;

   private:
    Graph& g_;
    bool outermost_;
  };

 private:
  std::vector<Node> nodes_;
  std::vector<NodeId> outputs_;
  std::int32_t open_composite_ = -1;
  std::int32_t next_composite_ = 0;
};

inline const Node& Tensor::node() const { return graph->node(id); }

}  // namespace aisp::compiler
