// Node numbering and the closure-backed FunctionNode.
#include "autograd/node.h"

#include <atomic>
#include <cctype>

#include "tensor/error.h"

namespace fabric {
namespace {
std::atomic<uint64_t> g_next_sequence_nr{0};

std::string torch_node_name(std::string_view op) {
  std::string out;
  bool upper = true;
  for (char c : op) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out + "Backward0";
}
}  // namespace

Node::Node() : sequence_nr_(g_next_sequence_nr.fetch_add(1, std::memory_order_relaxed)) {}

uint64_t Node::next_sequence_nr() { return g_next_sequence_nr.load(std::memory_order_relaxed); }

FunctionNode::FunctionNode(std::string_view op, Backward backward, const char* node_name)
    : name_(node_name ? std::string(node_name) : torch_node_name(op)),
      backward_(std::move(backward)) {}

std::vector<Tensor> FunctionNode::apply(std::vector<Tensor>&& grad_outputs) {
  FABRIC_CHECK(backward_ != nullptr, Error, "backward through ", name(),
               " a second time: its saved tensors were freed after the first backward (pass retain_graph = true)");
  for (const SavedVersion& s : saved_) {
    FABRIC_CHECK(s.storage->version() == s.version, Error, "backward through ", name(),
                 ": one of the variables needed for gradient computation has been modified by an inplace "
                 "operation: [", dtype_name(s.dtype), " ", shape_str(s.sizes), "] is at version ",
                 s.storage->version(), "; expected version ", s.version,
                 " instead (clone() it before the in-place op, or use the out-of-place op)");
  }
  return backward_(grad_outputs);
}

}  // namespace fabric
