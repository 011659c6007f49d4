// See connect_node.h.
#include "autograd/connect_node.h"

#include "autograd/accumulate_grad.h"
#include "autograd/autograd_meta.h"

namespace fabric {

void add_input_edges(Node& node, std::span<const Tensor> inputs) {
  node.next_edges.reserve(node.next_edges.size() + inputs.size());
  node.input_meta.reserve(node.input_meta.size() + inputs.size());
  for (const Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) {
      node.next_edges.push_back(gradient_edge(t));
      node.input_meta.push_back({t.sizes(), t.dtype(), t.device()});
    } else {
      node.next_edges.push_back({});
      node.input_meta.push_back({});
    }
  }
}

void set_grad_fn(Tensor& out, const std::shared_ptr<Node>& node, int output_nr) {
  out.impl()->requires_grad = true;
  AutogradMeta& m = autograd_meta(out);
  m.grad_fn = node;
  m.output_nr = output_nr;
}

}  // namespace fabric
