// Wiring a node into the graph: its edges to the inputs and its place as the outputs' grad_fn.
// The op table's recorder does this for every recorded op; nodes built by hand (a fused module
// op's own backward: checkpoint, embedding_bag, SyncBatchNorm, the int8 and FP8 linears) use the
// same two steps.
#pragma once
#include <initializer_list>
#include <memory>
#include <span>

#include "autograd/node.h"
#include "tensor/tensor.h"

namespace fabric {

// One edge per input, in order: to the input's gradient function (or accumulator) with its
// shape, dtype and device, or an empty edge where the input is undefined or needs no gradient.
void add_input_edges(Node& node, std::span<const Tensor> inputs);
inline void add_input_edges(Node& node, std::initializer_list<Tensor> inputs) {
  add_input_edges(node, std::span<const Tensor>(inputs.begin(), inputs.size()));
}

// Makes `out` output `output_nr` of `node`: requires_grad set and `node` as its grad_fn. `out`
// must be a handle of its own (callers detach() a tensor that may be shared).
void set_grad_fn(Tensor& out, const std::shared_ptr<Node>& node, int output_nr);

}  // namespace fabric
