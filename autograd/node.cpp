// Node numbering and the closure-backed FunctionNode.
#include "autograd/node.h"

#include <atomic>

#include "tensor/error.h"

namespace fabric {
namespace {
std::atomic<uint64_t> g_next_sequence_nr{0};
}

Node::Node() : sequence_nr_(g_next_sequence_nr.fetch_add(1, std::memory_order_relaxed)) {}

std::vector<Tensor> FunctionNode::apply(std::vector<Tensor>&& grad_outputs) {
  FABRIC_CHECK(backward_ != nullptr, Error, "backward through ", name(),
               " a second time: its saved tensors were freed after the first backward (pass retain_graph = true)");
  return backward_(grad_outputs);
}

}  // namespace fabric
