// The backward engine: counts dependencies in the graph reachable from the roots, then runs
// nodes from a max-heap on sequence number (reverse creation order), summing gradients that
// reach a node along several paths, and frees each node's saved tensors after it ran.
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd/accumulate_grad.h"
#include "autograd/anomaly_mode.h"
#include "autograd/autograd.h"
#include "autograd/autograd_meta.h"
#include "autograd/derivatives.h"
#include "autograd/view_history.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {

Tensor conform_gradient(Tensor g, const InputMeta& meta, const Node& node, size_t i) {
  if (!g.defined()) return g;
  if (g.sizes() != meta.shape) {
    FABRIC_CHECK(numel_of(meta.shape) == g.numel() || g.dim() >= static_cast<int64_t>(meta.shape.size()), ShapeError,
                 "backward: ", node.name(), " returned a gradient of shape ", shape_str(g.sizes()), " for input ", i,
                 " of shape ", shape_str(meta.shape));
    g = g.numel() == numel_of(meta.shape) ? g.reshape(meta.shape) : sum_to(g, meta.shape);
  }
  if (g.dtype() != meta.dtype) g = g.to(meta.dtype);
  return g;
}

namespace {

struct NodeTask {
  std::vector<Tensor> buffer;  // gradient per node output
  int pending = 0;             // edges still to deliver
  bool needed = true;          // runs (autograd.grad: only nodes on a path to a captured edge)
  // autograd.grad: runs only because a checkpoint below it might lead to a captured tensor
  // through its closure; keeps its saved tensors, as a node torch would not run keeps them.
  bool keep_saved = false;
};

// autograd.grad runs only the nodes from which a captured edge can be reached, as torch's
// init_to_execute: a node below every input is neither run nor freed, and its hooks do not fire.
// A checkpoint reaches the tensors its segment closes over only through its recompute, which its
// edges do not show. So a checkpoint (and what leads to it) runs unless every captured tensor was
// computed from its output (the checkpoint is reachable from each, so none can be in its
// closure), keeping its saved tensors unless it is also on a path the edges show. `tasks` holds
// the whole reachable graph (a DAG); each node is visited once, children first.
void mark_needed(const std::vector<Node*>& starts, const std::vector<Edge>& capture,
                 std::unordered_map<Node*, NodeTask>& tasks) {
  std::unordered_set<const Node*> targets, entered;
  for (const Edge& e : capture)
    if (e.valid()) targets.insert(e.fn.get());
  // A leaf may be in any closure; otherwise a checkpoint is left alone when every target is among
  // its ancestors (one upward search per checkpoint, over parent lists built once, when asked).
  bool leaf_target = false;
  for (const Node* t : targets) leaf_target |= dynamic_cast<const AccumulateGrad*>(t) != nullptr;
  std::unordered_map<const Node*, std::vector<const Node*>> parents;
  const auto closure_may_hold_a_target = [&](const Node& checkpoint) {
    if (leaf_target) return true;
    if (parents.empty())
      for (const auto& [n, task] : tasks)
        for (const Edge& e : n->next_edges)
          if (e.valid()) parents[e.fn.get()].push_back(n);
    std::unordered_set<const Node*> seen{&checkpoint};
    std::vector<const Node*> stack{&checkpoint};
    size_t found = targets.count(&checkpoint);  // its own output is computed from it
    while (!stack.empty() && found < targets.size()) {
      const Node* n = stack.back();
      stack.pop_back();
      auto it = parents.find(n);
      if (it == parents.end()) continue;
      for (const Node* p : it->second) {
        if (!seen.insert(p).second) continue;
        found += targets.count(p);
        stack.push_back(p);
      }
    }
    return found < targets.size();
  };
  std::unordered_set<const Node*> on_path, via_checkpoint;  // edges to a target / a checkpoint
  std::vector<std::pair<Node*, size_t>> stack;  // (node, next edge to look at)
  for (Node* s : starts) {
    if (!entered.insert(s).second) continue;
    stack.emplace_back(s, 0);
    while (!stack.empty()) {
      auto& [n, i] = stack.back();
      if (i < n->next_edges.size()) {
        Node* child = n->next_edges[i++].fn.get();
        if (child && entered.insert(child).second) stack.emplace_back(child, 0);
        continue;
      }
      bool path = false, checkpoint = n->runs_nested_backward && closure_may_hold_a_target(*n);
      for (const Edge& e : n->next_edges) {
        if (!e.valid()) continue;
        path |= targets.count(e.fn.get()) > 0 || on_path.count(e.fn.get()) > 0;
        checkpoint |= via_checkpoint.count(e.fn.get()) > 0;
      }
      if (path) on_path.insert(n);
      if (checkpoint) via_checkpoint.insert(n);
      NodeTask& t = tasks[n];
      t.needed = path || checkpoint;
      t.keep_saved = !path && checkpoint;
      stack.pop_back();
    }
  }
}

void accumulate_into(std::vector<Tensor>& buffer, int slot, Tensor g) {
  if (!g.defined()) return;
  Tensor& cur = buffer[slot];
  cur = cur.defined() ? add(cur, g) : std::move(g);
}

// The autograd::grad pass running on this thread, so that a backward nested inside one of its
// nodes (checkpointing) sends leaf gradients to its results instead of into .grad.
struct GradCapture {
  const std::vector<Edge>* edges;
  std::vector<Tensor>* results;
};
thread_local const GradCapture* t_grad_capture = nullptr;

// While a node runs without graph under create_graph (apply_without_graph), the outside tensors a
// backward nested in it reaches: its leaves and the nodes that existed before the node ran (a
// checkpoint's closure; not the recomputed graph). Its results depend on them, so its stand-in
// history must reach them: differentiating again then raises, where it would treat them as
// constants.
struct ClosureSink {
  std::vector<Edge>* edges = nullptr;
  uint64_t older_than = 0;  // the first sequence number given out while the node runs
  const Node* node = nullptr;  // the node running (its name and inputs)
};
thread_local ClosureSink t_closure_sink;

struct GradCaptureScope {
  explicit GradCaptureScope(const GradCapture* c) : prev(t_grad_capture) { t_grad_capture = c; }
  ~GradCaptureScope() { t_grad_capture = prev; }
  const GradCapture* prev;
};

}  // namespace

Edge gradient_edge(const Tensor& t) {
  sync_view_history(t);
  AutogradMeta* m = autograd_meta_if(t);
  if (m && m->grad_fn) return {m->grad_fn, m->output_nr};
  if (t.requires_grad()) return {grad_accumulator(t), 0};
  return {};
}

namespace {

// A stand-in for `node`'s gradient computation over `depends_on`: differentiating through it
// raises (double backward of that node is not supported).
std::shared_ptr<NoDoubleBackward> stand_in_for(const Node& node, std::vector<Edge> depends_on,
                                               int outputs) {
  auto* fn = dynamic_cast<const FunctionNode*>(&node);
  auto stand_in = std::make_shared<NoDoubleBackward>(fn ? fn->op() : node.name(), node.name());
  stand_in->next_edges = std::move(depends_on);
  stand_in->input_meta.resize(stand_in->next_edges.size());
  stand_in->num_outputs = outputs;
  return stand_in;
}

// t's values with output `nr` of `fn` as their history: a new handle, since t may be an incoming
// gradient itself (identity rules).
Tensor with_history(const Tensor& t, const std::shared_ptr<Node>& fn, int nr) {
  Tensor out = t.detach();
  AutogradMeta& m = autograd_meta(out);
  m.grad_fn = fn;
  m.output_nr = nr;
  out.impl()->requires_grad = true;
  return out;
}

}  // namespace

// Runs a node that does not support double backward under create_graph: without recording, its
// results then taking a NoDoubleBackward history over the edges the gradient really depends on
// (the node's inputs and the incoming gradients), so that differentiating them again raises.
std::vector<Tensor> apply_without_graph(Node& node, std::vector<Tensor>&& buffer) {
  std::vector<Edge> depends_on;
  for (const Edge& e : node.next_edges)
    if (e.valid()) depends_on.push_back(e);
  for (const Tensor& g : buffer)
    if (g.defined() && g.requires_grad()) depends_on.push_back(gradient_edge(g));
  std::vector<Tensor> out;
  std::vector<Edge> closure;
  {
    NoGradGuard no_grad;
    struct SinkScope {
      ClosureSink saved = t_closure_sink;
      ~SinkScope() { t_closure_sink = saved; }
    } scope;
    t_closure_sink = {&closure, Node::next_sequence_nr(), &node};
    out = node.apply(std::move(buffer));
  }
  depends_on.insert(depends_on.end(), closure.begin(), closure.end());
  if (depends_on.empty()) return out;
  const auto stand_in = stand_in_for(node, std::move(depends_on), static_cast<int>(out.size()));
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].defined() && is_floating(out[i].dtype()))
      out[i] = with_history(out[i], stand_in, static_cast<int>(i));
  return out;
}

// How one backward pass runs (backward(), grad(), a checkpoint's nested pass).
struct PassOptions {
  bool retain_graph = false;
  bool create_graph = false;
  // Non-empty: gradients arriving at these edges are stored in `captured` instead of flowing on
  // into leaves (autograd.grad), and only the nodes on a path to one run.
  const std::vector<Edge>* capture = nullptr;
  std::vector<Tensor>* captured = nullptr;
  // A nested backward under backward(): only the captured leaves are skipped; the others still
  // accumulate into .grad.
  bool into_leaves = false;
  // The first `taking` captures (a nested backward's own: the checkpoint's input copies and
  // closure edges, whose node passes them on) take their gradient out of the flow: the node
  // behind such an edge runs with what is left (not at all when nothing is), and a later capture
  // of the same edge (the enclosing autograd.grad's) gets none of it, since the enclosing pass
  // delivers it there.
  size_t taking = 0;
  // backward(inputs=): only the nodes on a path to these edges run, and the nodes behind them
  // too (a leaf accumulates into .grad, a non-leaf's retained .grad takes its gradient).
  const std::vector<Edge>* only_to = nullptr;
  // Under create_graph, where a node that runs without graph notes what its nested pass reached.
  const ClosureSink* reached = nullptr;
};

// Runs backward from `roots` as `opt` says.
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  const PassOptions& opt) {
  const bool retain_graph = opt.retain_graph, create_graph = opt.create_graph,
             into_leaves = opt.into_leaves;
  const std::vector<Edge> no_edges;
  const std::vector<Edge>& capture = opt.capture ? *opt.capture : no_edges;
  std::vector<Tensor>* captured = opt.captured;
  const ClosureSink* reached = opt.reached;
  const size_t taking = opt.taking;
  // Backward itself is recorded only with create_graph (the gradient then has a history).
  GradModeGuard grad_mode(create_graph);
  GradCapture capture_ctx{&capture, captured};
  GradCaptureScope capture_scope(captured && !into_leaves ? &capture_ctx : nullptr);
  std::unordered_map<Node*, NodeTask> tasks;
  std::vector<std::pair<Edge, Tensor>> starts;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    Edge e = gradient_edge(r);
    FABRIC_CHECK(e.valid(), ValueError,
                 "backward: tensor ", i, " of shape ", shape_str(r.sizes()),
                 " does not require grad and has no grad_fn (was it computed under no_grad, or from tensors that "
                 "don't require grad?)");
    Tensor g = i < grads.size() ? grads[i] : Tensor();
    if (!g.defined()) {
      FABRIC_CHECK(r.numel() == 1, ValueError, "backward: grad can be implicitly created only for tensors with one "
                   "element; got shape ", shape_str(r.sizes()), " (pass a gradient)");
      g = ones_like(r);
    } else {
      FABRIC_CHECK(g.sizes() == r.sizes(), ShapeError, "backward: gradient ", i, " has shape ",
                   shape_str(g.sizes()), " but output ", i, " has shape ", shape_str(r.sizes()));
      // torch's validate_outputs: a gradient of another dtype is cast to the output's, so the
      // pass computes (and a leaf root stores) in the output's dtype.
      if (g.dtype() != r.dtype()) g = g.to(r.dtype());
    }
    starts.emplace_back(e, g);
  }
  // Dependencies: how many edges of the reachable graph point at each node.
  std::vector<Node*> stack;
  for (auto& [e, g] : starts) {
    if (!tasks.count(e.fn.get())) {
      tasks[e.fn.get()];
      stack.push_back(e.fn.get());
    }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.valid()) continue;
      auto [it, inserted] = tasks.try_emplace(e.fn.get());
      it->second.pending++;
      if (inserted) stack.push_back(e.fn.get());
    }
  }
  if ((captured && !into_leaves) || opt.only_to) {
    std::vector<Node*> start_nodes;
    for (auto& [e, g] : starts) start_nodes.push_back(e.fn.get());
    mark_needed(start_nodes, opt.only_to ? *opt.only_to : capture, tasks);
    if (opt.only_to)
      for (const Edge& e : *opt.only_to)
        if (auto it = tasks.find(e.fn.get()); it != tasks.end()) it->second.needed = true;
  }
  auto by_seq = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence_nr() < b->sequence_nr();
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(by_seq)> ready(by_seq);
  for (auto& [e, g] : starts) {
    NodeTask& t = tasks[e.fn.get()];
    if (t.buffer.empty()) t.buffer.resize(e.fn->num_outputs);
    accumulate_into(t.buffer, e.input_nr, g);
  }
  for (auto& [e, g] : starts) {
    NodeTask& t = tasks[e.fn.get()];
    if (t.pending == 0) {
      t.pending = -1;  // queued
      ready.push(e.fn);
    }
  }

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    NodeTask& task = tasks[node.get()];
    std::vector<Tensor> buffer = std::move(task.buffer);
    if (buffer.empty()) buffer.resize(node->num_outputs);
    if (reached && (dynamic_cast<AccumulateGrad*>(node.get()) != nullptr ||
                    node->sequence_nr() < reached->older_than))
      reached->edges->push_back(Edge{node, 0});
    bool skip = !task.needed;
    if (captured) {
      // Captured before the tensor's hooks run, as torch 1.13's autograd.grad: the hooks belong to
      // the node's execution (for a leaf as for a non-leaf).
      bool hit = false;
      std::vector<bool> taken(buffer.size(), false);
      for (size_t c = 0; c < capture.size(); ++c) {
        if (capture[c].fn.get() != node.get()) continue;
        const int slot = capture[c].input_nr;
        if (c >= taking && taken[slot]) continue;
        hit = true;
        Tensor g = buffer[slot];
        (*captured)[c] = (*captured)[c].defined() && g.defined() ? add((*captured)[c], g) : g;
        if (c < taking) taken[slot] = true;
      }
      bool any_taken = false, any_left = false;
      for (size_t slot = 0; slot < buffer.size(); ++slot) {
        if (taken[slot]) buffer[slot] = Tensor();
        any_taken |= taken[slot];
        any_left |= buffer[slot].defined();
      }
      // Leaves are never accumulated into by autograd.grad, nor captured ones by a nested backward.
      if (dynamic_cast<AccumulateGrad*>(node.get()) != nullptr && (hit || !into_leaves))
        skip = true;
      if (any_taken && !any_left) skip = true;
    }
    if (!skip) {
      for (auto& [nr, hook] : node->pre_hooks) {
        if (!buffer[nr].defined()) continue;
        Tensor replaced = hook(buffer[nr]);
        if (replaced.defined()) buffer[nr] = replaced;
      }
    }
    std::vector<Tensor> out;
    if (!skip) {
      out = create_graph && !node->supports_double_backward()
                ? apply_without_graph(*node, std::move(buffer))
                : node->apply(std::move(buffer));
      FABRIC_CHECK(out.size() == node->next_edges.size(), Error, "backward: ", node->name(), " returned ",
                   out.size(), " gradients for ", node->next_edges.size(), " inputs");
      if (anomaly_detection_enabled()) check_finite_gradients(*node, out);
      if (!retain_graph && !task.keep_saved) node->release_saved();
    }
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const Edge& e = node->next_edges[i];
      if (!e.valid()) continue;
      NodeTask& next = tasks[e.fn.get()];
      if (next.buffer.empty()) next.buffer.resize(e.fn->num_outputs);
      if (!skip)
        accumulate_into(next.buffer, e.input_nr,
                        conform_gradient(std::move(out[i]), node->input_meta[i], *node, i));
      if (--next.pending == 0) ready.push(e.fn);
    }
  }
}

std::vector<Tensor> nested_backward(const std::vector<Tensor>& roots,
                                    const std::vector<Tensor>& grads,
                                    const std::vector<Tensor>& inputs,
                                    const std::vector<Edge>& closure) {
  const GradCapture* outer = t_grad_capture;
  std::vector<Edge> capture;
  std::vector<int> slot(inputs.size() + closure.size(), -1);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined() || !inputs[i].requires_grad()) continue;
    slot[i] = static_cast<int>(capture.size());
    capture.push_back(gradient_edge(inputs[i]));
  }
  const size_t n_inputs = capture.size();
  for (size_t k = 0; k < closure.size(); ++k) {
    if (!closure[k].valid()) continue;
    slot[inputs.size() + k] = static_cast<int>(capture.size());
    capture.push_back(closure[k]);
  }
  const size_t n_own = capture.size();
  if (outer) capture.insert(capture.end(), outer->edges->begin(), outer->edges->end());
  std::vector<Tensor> captured(capture.size());
  // retain_graph: a nested graph can reach nodes of the enclosing graph (a non-leaf tensor the
  // segment closes over); the enclosing pass runs those again with its own share of the gradient
  // (which sums correctly, backward being linear), so they must keep their saved tensors. The
  // nested graph's own nodes are freed with its outputs.
  // Under create_graph (a sink is open), what the nested graph reached outside itself, but for the
  // segment's own input copies, joins the enclosing node's dependencies.
  std::vector<Edge> reached;
  const ClosureSink sink{&reached, t_closure_sink.older_than, t_closure_sink.node};
  run_backward(roots, grads,
               {.retain_graph = true,
                .capture = &capture,
                .captured = &captured,
                .into_leaves = outer == nullptr,
                .taking = n_own,
                .reached = t_closure_sink.edges ? &sink : nullptr});
  std::vector<Edge> outside;  // what the segment's gradients depend on outside its own graph
  for (const Edge& e : reached) {
    bool input_copy = false;
    for (size_t c = 0; c < n_inputs; ++c) input_copy |= capture[c].fn == e.fn;
    if (!input_copy) outside.push_back(e);
  }
  if (t_closure_sink.edges)
    t_closure_sink.edges->insert(t_closure_sink.edges->end(), outside.begin(), outside.end());
  if (outer) {
    // Under create_graph, the share of an enclosing autograd.grad's result that the segment
    // gives (the gradient of a tensor it closes over) was computed without a graph: it takes a
    // history that refuses to be differentiated, over what it depends on (the running node's
    // inputs and what the recompute reached), and joins the result's other share with grad mode
    // on, so neither share is differentiated as a constant.
    const ClosureSink& sink_now = t_closure_sink;
    for (size_t c = 0; c < outer->edges->size(); ++c) {
      Tensor g = captured[n_own + c];
      if (!g.defined()) continue;
      Tensor& dst = (*outer->results)[c];
      if (sink_now.edges && sink_now.node && is_floating(g.dtype())) {
        // Everything gathered while the node runs (deeper checkpoints' closures included), its
        // inputs, and the history an inner checkpoint already gave g.
        std::vector<Edge> deps = *sink_now.edges;
        for (const Edge& e : sink_now.node->next_edges)
          if (e.valid()) deps.push_back(e);
        if (g.requires_grad()) deps.push_back(gradient_edge(g));
        g = with_history(g, stand_in_for(*sink_now.node, std::move(deps), 1), 0);
        GradModeGuard record(true);
        dst = dst.defined() ? add(dst, g) : g;
      } else {
        dst = dst.defined() ? add(dst, g) : g;
      }
    }
  }
  std::vector<Tensor> result(slot.size());
  for (size_t i = 0; i < slot.size(); ++i)
    if (slot[i] >= 0) result[i] = captured[slot[i]];
  return result;
}

namespace {
// One gradient per tensor, or none at all (each an implicit 1), as torch.autograd.backward/grad.
void check_gradient_count(const char* api, size_t tensors, size_t gradients) {
  FABRIC_CHECK(
      gradients == 0 || gradients == tensors, ValueError, api, ": got ", tensors, " tensors and ",
      gradients,
      " gradients; expected one gradient per tensor (undefined for an implicit 1) or none");
}
}  // namespace

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients,
              std::optional<bool> retain_graph, bool create_graph,
              const std::vector<Tensor>& inputs) {
  check_gradient_count("backward", roots.size(), gradients.size());
  PassOptions opt{.retain_graph = retain_graph.value_or(create_graph),
                  .create_graph = create_graph};
  std::vector<Edge> only_to;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    FABRIC_CHECK(t.defined() && t.requires_grad(), ValueError, "backward: input ", i,
                 " does not require grad (every tensor in `inputs` must)");
    // As torch: a non-leaf input keeps its .grad (retain_grad), which is where it accumulates.
    if (!is_leaf(t)) retain_grad(t);
    only_to.push_back(gradient_edge(t));
  }
  if (!inputs.empty()) opt.only_to = &only_to;
  run_backward(roots, gradients, opt);
}

void backward(const Tensor& root, const Tensor& gradient, std::optional<bool> retain_graph,
              bool create_graph, const std::vector<Tensor>& inputs) {
  backward(std::vector<Tensor>{root}, std::vector<Tensor>{gradient}, retain_graph, create_graph,
           inputs);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, std::optional<bool> retain_graph,
                         bool create_graph, bool allow_unused) {
  check_gradient_count("grad", outputs.size(), grad_outputs.size());
  FABRIC_CHECK(!inputs.empty(), ValueError, "grad requires non-empty inputs.");
  std::vector<Edge> capture;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Edge e = gradient_edge(inputs[i]);
    FABRIC_CHECK(e.valid(), ValueError, "grad: input ", i, " does not require grad");
    capture.push_back(e);
  }
  std::vector<Tensor> result(inputs.size());
  run_backward(outputs, grad_outputs,
               {.retain_graph = retain_graph.value_or(create_graph),
                .create_graph = create_graph,
                .capture = &capture,
                .captured = &result});
  GradModeGuard grad_mode(create_graph);  // the reduction below is part of the gradient's graph
  for (size_t i = 0; i < result.size(); ++i) {
    FABRIC_CHECK(result[i].defined() || allow_unused, ValueError, "grad: input ", i,
                 " was not used in the graph of the outputs (pass allow_unused = true)");
    if (result[i].defined() && result[i].sizes() != inputs[i].sizes()) result[i] = sum_to(result[i], inputs[i].sizes());
  }
  return result;
}

}  // namespace fabric
