// Node numbering and the closure-backed FunctionNode.
#include "autograd/node.h"

#include <algorithm>
#include <atomic>
#include <cctype>

#include "autograd/autograd_meta.h"
#include "autograd/grad_mode.h"
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

Node::~Node() {
  // Nodes only this one still owns are taken off their edges before they die, so each is
  // destroyed with no edges of its own left and none of their destructors recurses.
  std::vector<std::shared_ptr<Node>> last_owner;
  const auto take_edges = [&last_owner](std::vector<Edge>& edges) {
    for (Edge& e : edges)
      if (e.fn && e.fn.use_count() == 1) last_owner.push_back(std::move(e.fn));
    edges.clear();
  };
  take_edges(next_edges);
  while (!last_owner.empty()) {
    std::shared_ptr<Node> node = std::move(last_owner.back());
    last_owner.pop_back();
    take_edges(node->next_edges);
  }
}

uint64_t Node::next_sequence_nr() { return g_next_sequence_nr.load(std::memory_order_relaxed); }

FunctionNode::FunctionNode(std::string_view op, Backward backward, const char* node_name)
    : name_(node_name ? std::string(node_name) : torch_node_name(op)),
      op_(op),
      backward_(std::move(backward)) {}

namespace {

// For the time of a closure run with create_graph: the saved aliases carry the history their
// tensors had when saved, so the ops of the closure record against the forward graph. Taken off
// after, so that no alias keeps the node alive (an output's alias points at the node itself).
class SavedHistoryScope {
 public:
  SavedHistoryScope(FunctionNode& node, const std::vector<SavedVersion>& saved) : saved_(saved) {
    for (const SavedVersion& s : saved_) {
      if (!s.alias.defined() || !is_floating(s.alias.dtype())) continue;
      Edge e;
      if (s.input_nr >= 0) e = node.next_edges[s.input_nr];
      if (s.output_nr >= 0) e = {node.shared_from_this(), s.output_nr};
      if (!e.valid()) continue;
      AutogradMeta& m = autograd_meta(s.alias);
      m.grad_fn = std::move(e.fn);
      m.output_nr = e.input_nr;
      s.alias.impl()->requires_grad = true;
    }
  }
  ~SavedHistoryScope() {
    for (const SavedVersion& s : saved_) {
      if (!s.alias.defined()) continue;
      s.alias.impl()->autograd.reset();
      s.alias.impl()->requires_grad = false;
    }
  }
  SavedHistoryScope(const SavedHistoryScope&) = delete;
  SavedHistoryScope& operator=(const SavedHistoryScope&) = delete;

 private:
  const std::vector<SavedVersion>& saved_;
};

}  // namespace

std::vector<Tensor> FunctionNode::apply(std::vector<Tensor>&& grad_outputs) {
  // No gradient arrived at any output (an output used only through a path that gave none): every
  // input gets none either, without calling the rule, whose ops would get undefined tensors
  // (torch's generated nodes check any_grad_defined the same way).
  const bool any_defined = std::any_of(grad_outputs.begin(), grad_outputs.end(),
                                       [](const Tensor& g) { return g.defined(); });
  if (!any_defined && !called_without_gradients_) return std::vector<Tensor>(next_edges.size());
  FABRIC_CHECK(backward_ != nullptr, Error, "backward through ", name(),
               " a second time: its saved tensors were freed after the first backward (pass retain_graph = true)");
  for (const SavedVersion& s : saved_) {
    FABRIC_CHECK(s.storage->version() == s.version, Error, "backward through ", name(),
                 ": one of the variables needed for gradient computation has been modified by an inplace "
                 "operation: [", dtype_name(s.dtype), " ", shape_str(s.sizes), "] is at version ",
                 s.storage->version(), "; expected version ", s.version,
                 " instead (clone() it before the in-place op, or use the out-of-place op)");
  }
  if (!grad_enabled()) return backward_(grad_outputs);
  SavedHistoryScope history(*this, saved_);  // create_graph
  return backward_(grad_outputs);
}

std::vector<Tensor> NoDoubleBackward::apply(std::vector<Tensor>&&) {
  throw NotImplementedError(detail::cat(
      "double backward of ", op_, " is not supported: ", node_name_,
      " computes its gradient without recording a graph (a fused kernel, or a node built outside "
      "the op recorder), so the gradient taken with create_graph = true cannot be differentiated "
      "again"));
}

}  // namespace fabric
