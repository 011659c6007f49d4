// The backward graph: a Node per recorded op (or per leaf, to accumulate its gradient), with
// edges to the nodes that produced its inputs. Nodes are numbered in creation order so the engine
// runs them in reverse order of the forward pass.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

class Node;

struct Edge {
  std::shared_ptr<Node> fn;  // null: the input needs no gradient
  int input_nr = 0;          // which of fn's gradient inputs this edge feeds
  bool valid() const { return fn != nullptr; }
};

// What a node must produce for one of its forward inputs: a gradient of this shape and dtype.
struct InputMeta {
  Shape shape;
  DType dtype = DType::float32;
  Device device;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  Node();
  // Releases the nodes behind this one iteratively: a graph as deep as a long recurrence or an
  // un-detached running sum would otherwise be freed by one nested destructor per node and
  // overflow the stack (PyTorch's deleteNode does the same).
  virtual ~Node();
  // Gradients w.r.t. the forward inputs (one per next edge; undefined = none) from the gradients
  // w.r.t. the forward outputs (undefined entries mean zero).
  virtual std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) = 0;
  virtual std::string name() const = 0;
  // Drops saved tensors once backward has used them (unless retain_graph).
  virtual void release_saved() {}
  // Whether apply() run in grad mode (create_graph) records a graph of the gradient computation
  // that is correct to differentiate again. The engine runs a node that says no without recording
  // and gives its results a history that raises when a further backward reaches it.
  virtual bool supports_double_backward() const { return false; }

  uint64_t sequence_nr() const { return sequence_nr_; }
  // The number the next node will get: nodes numbered from here on were made after this call.
  static uint64_t next_sequence_nr();
  std::vector<Edge> next_edges;
  std::vector<InputMeta> input_meta;  // parallel to next_edges
  int num_outputs = 1;
  // Hooks of non-leaf tensors this node produced: (output_nr, hook) run on the incoming gradient.
  std::vector<std::pair<int, std::function<Tensor(const Tensor&)>>> pre_hooks;
  // apply() runs a backward of its own (checkpoint's recompute), which can reach tensors the node
  // has no edge to (those the segment closes over): autograd.grad always runs it (keeping its saved
  // tensors when no edge shows it is needed).
  bool runs_nested_backward = false;

 private:
  uint64_t sequence_nr_;
};

// Brings a gradient that `node` computed for its input `i` to that input's shape and dtype (what
// the engine does with every gradient a node returns).
Tensor conform_gradient(Tensor g, const InputMeta& meta, const Node& node, size_t i);

// A tensor a derivative rule saved, and its storage's version then: an in-place write into it
// before backward makes the gradient wrong, which backward refuses (as PyTorch does).
// With create_graph, the detached alias the rule's closure holds gets back, for the time of the
// closure, the history the tensor had when saved: that of the node's input `input_nr`, or, for the
// node's own output `output_nr`, the node itself (kept as an index, not as a pointer to the node,
// which would be a reference cycle; PyTorch's SavedVariable does the same).
struct SavedVersion {
  Storage storage;
  uint64_t version = 0;
  Shape sizes;
  DType dtype = DType::float32;
  Tensor alias;        // the tensor the closure uses (undefined for entries made outside record())
  int input_nr = -1;   // >= 0: alias is the node's forward input input_nr
  int output_nr = -1;  // >= 0: alias is the node's forward output output_nr
};

// A node whose backward is a closure built by the op's derivative rule; the closure owns the
// saved tensors, so releasing it frees them.
class FunctionNode final : public Node {
 public:
  using Backward = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs)>;
  // Named as PyTorch names the node of `op`: the op in CamelCase, then "Backward0" (mul ->
  // MulBackward0, scaled_dot_product_attention -> ScaledDotProductAttentionBackward0), unless
  // `node_name` gives PyTorch's name outright (t() is a transpose that torch calls TBackward0).
  FunctionNode(std::string_view op, Backward backward, const char* node_name = nullptr);
  // The tensors the rule saved, checked before each apply: Error when one was modified in place
  // since. Also tells the node whether its closure holds any (see release_saved).
  void set_saved_versions(std::vector<SavedVersion> saved) {
    holds_saved_ = !saved.empty();
    saved_ = std::move(saved);
  }
  // The closure holds what torch would save as a tensor (saves_a_scalar): released as one.
  void mark_holds_saved() { holds_saved_ = true; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) override;
  std::string name() const override { return name_; }
  // The op this node differentiates ("mul"), for messages.
  const std::string& op() const { return op_; }
  // Set by the recorder for rules whose closure is made of differentiable ops and whose saved
  // tensors all have a known history; false for nodes built elsewhere (checkpointing, FP8, int8).
  void set_supports_double_backward(bool v) { double_backward_ = v; }
  // Calls the closure even when no output got a gradient (a custom function's backward, which
  // torch calls with zeros); other nodes then give every input none without running.
  void set_called_without_gradients(bool v) { called_without_gradients_ = v; }
  bool supports_double_backward() const override { return double_backward_; }
  // Frees the saved tensors by dropping the closure. A node whose rule saved none keeps it: a
  // second backward through it needs nothing that was freed, and PyTorch runs it (only a freed
  // saved tensor that is needed raises).
  void release_saved() override {
    if (!holds_saved_) return;
    backward_ = nullptr;
    saved_.clear();
  }

 private:
  std::string name_;
  std::string op_;
  Backward backward_;
  std::vector<SavedVersion> saved_;
  // Nodes built outside the recorder (checkpointing, the FP8 and int8 layers) never report what
  // they saved: they count as holding tensors, freed after the first backward.
  bool holds_saved_ = true;
  bool double_backward_ = false;
  bool called_without_gradients_ = false;
};

// A node standing for the gradient computation of a node that does not support double backward
// (create_graph): its results get this history, and a backward that reaches it raises
// NotImplementedError naming the op (never a silently zero second derivative).
class NoDoubleBackward final : public Node {
 public:
  NoDoubleBackward(std::string op, std::string node_name)
      : op_(std::move(op)), node_name_(std::move(node_name)) {}
  std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) override;
  std::string name() const override { return "NotImplemented"; }

 private:
  std::string op_, node_name_;
};

// Back-propagates `grads` from `roots` from inside a running backward pass: activation
// checkpointing recomputes a segment inside its node and runs this through the recomputed graph.
// Returns the gradients reaching `inputs` (leaves of that graph), then those reaching the
// `closure` edges (tensors of the enclosing graph the segment read: its node's other edges),
// undefined where none arrives, without accumulating them: the node passes them on. Whatever
// else the recompute reaches (a tensor it read without an op noting it) is treated as the
// enclosing pass treats it (a leaf into .grad under backward(), into the results of an enclosing
// autograd::grad()); outer-graph nodes the nested graph reaches are not released, so the
// enclosing pass can still run them.
std::vector<Tensor> nested_backward(const std::vector<Tensor>& roots,
                                    const std::vector<Tensor>& grads,
                                    const std::vector<Tensor>& inputs,
                                    const std::vector<Edge>& closure);

}  // namespace fabric
