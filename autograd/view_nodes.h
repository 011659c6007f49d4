// The nodes of an in-place write into a view, as PyTorch has them: CopySlices is the base's history
// after the write, AsStridedBackward0 a view's history as a view of its base's current history.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "tensor/tensor.h"

namespace fabric {

// Where a tensor's elements lie in its storage: what finds a view's elements inside a gradient
// laid out as its base.
struct ViewGeometry {
  Shape sizes;
  Strides strides;
  int64_t offset = 0;  // in elements
};

// A view's gradient put at the view's elements of a zero gradient for its base (summed where the
// view repeats an element, as an expanded view does).
class AsStridedBackward final : public Node {
 public:
  AsStridedBackward(const Tensor& base, const Tensor& view, Edge base_edge);
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  std::string name() const override { return "AsStridedBackward0"; }

 private:
  ViewGeometry base_, view_;
};

// The base's history after an in-place op wrote into one of its views. The op's own nodes (the
// ones recorded while it computed its result from the view's old value) run here on the view's
// part of the base's gradient. What they return for the view's old value replaces that part, and
// the base's gradient goes on to the base's previous history (next edge 0); what they return for
// the op's other inputs goes to those (next edges 1...).
class CopySlices final : public Node {
 public:
  // `result`: the edge of the op's result; `op_nodes`: the op's nodes, which only this node runs;
  // `view_edge`: the view's history before the write (undefined when it had none).
  CopySlices(const Tensor& base, const Tensor& view, Edge base_edge, const Edge& result,
             std::vector<std::shared_ptr<Node>> op_nodes, const Edge& view_edge);
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  std::string name() const override { return "CopySlices"; }
  void release_saved() override;

 private:
  // Where a gradient an op node returns goes: another op node, the view's old value, or one of
  // this node's next edges.
  struct Route {
    enum Kind { none, op_node, view, out } kind = none;
    size_t index = 0;  // op node or next edge
    int input_nr = 0;  // the op node's output it feeds
  };
  Route route_to(const Edge& e, const InputMeta& meta);
  // Runs the op's nodes from the gradient of its result; adds what reaches next edges 1... to
  // `out` and returns the gradient for the view's old value (undefined: zero).
  Tensor run_op(Tensor result_grad, std::vector<Tensor>& out);

  ViewGeometry base_, view_;
  Route result_route_;
  std::vector<std::shared_ptr<Node>> op_nodes_;  // newest first: a node feeds only older ones
  std::vector<std::vector<Route>> routes_;       // per op node, per next edge
  Edge view_edge_;
};

}  // namespace fabric
