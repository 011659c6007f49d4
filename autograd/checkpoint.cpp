// Activation checkpointing: a no-grad forward, and one graph node whose backward recomputes the
// segment with grad enabled (same RNG and autocast state) and back-propagates through it.
#include "autograd/checkpoint.h"

#include <algorithm>

#include "autograd/accumulate_grad.h"
#include "autograd/closure_reads.h"
#include "autograd/connect_node.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "tensor/autocast.h"

namespace fabric {
namespace {

constexpr DeviceType kDeviceTypes[] = {DeviceType::cpu, DeviceType::cuda};
constexpr size_t kNumDeviceTypes = std::size(kDeviceTypes);

// Enters autocast as `states` says and leaves it on exit. The no-grad forward runs with the
// weight-cast cache off: a cast it made would have no history and would hand later
// (grad-enabled) uses of the weight a tensor autograd cannot see through. The recompute uses the
// forward's cache setting, inside a PrivateAutocastCache: a weight used twice in the segment is
// cast once and its two gradients meet in the low dtype, as without checkpointing (and in
// torch), while a cast cached by the enclosing forward, which belongs to the enclosing graph,
// stays out of the recompute's.
enum class CastCacheUse : bool { off, as_recorded };

class AutocastReplay {
 public:
  AutocastReplay(const AutocastState (&states)[kNumDeviceTypes], CastCacheUse cache) {
    try {
      for (size_t d = 0; d < kNumDeviceTypes; ++d) {
        autocast_enter(kDeviceTypes[d], states[d].enabled, states[d].dtype,
                       cache == CastCacheUse::as_recorded && states[d].cache_enabled);
        ++entered_;
      }
    } catch (...) {
      exit_all();
      throw;
    }
  }
  ~AutocastReplay() { exit_all(); }
  AutocastReplay(const AutocastReplay&) = delete;
  AutocastReplay& operator=(const AutocastReplay&) = delete;

 private:
  void exit_all() {
    while (entered_ > 0) autocast_exit(kDeviceTypes[--entered_]);
  }
  size_t entered_ = 0;
};

// Puts the generators in their forward states for the recompute and back where they were after.
class RngReplay {
 public:
  RngReplay(const std::vector<Generator*>& gens, const std::vector<GeneratorState>& states)
      : gens_(gens) {
    for (size_t i = 0; i < gens_.size(); ++i) {
      now_.push_back(gens_[i]->state());
      gens_[i]->set_state(states[i]);
    }
  }
  ~RngReplay() {
    for (size_t i = 0; i < gens_.size(); ++i) gens_[i]->set_state(now_[i]);
  }
  RngReplay(const RngReplay&) = delete;
  RngReplay& operator=(const RngReplay&) = delete;

 private:
  const std::vector<Generator*>& gens_;
  std::vector<GeneratorState> now_;
};

struct OutputMeta {
  bool defined = false;
  Shape shape;
  DType dtype = DType::float32;
};

// Everything the recompute needs; owned by the node's closure, so freed with it.
struct Segment {
  CheckpointFn fn;
  std::vector<Tensor> inputs;  // detached: the node's edges carry the history
  std::vector<bool> requires_grad;
  std::vector<uint64_t> versions;  // storage versions when the forward read them
  std::vector<Generator*> generators;
  std::vector<GeneratorState> rng_states;
  AutocastState autocast[kNumDeviceTypes];
  std::vector<OutputMeta> outputs;
  // The node's edges after the inputs': to the tensors requiring grad the forward read besides
  // its inputs (closure_reads.h). The recompute hands their gradients back along them.
  std::vector<Edge> closure;
  // Set while its recompute's backward runs: reaching the same checkpoint again from there means
  // its closure's history now leads back to its own output (an in-place write made after the
  // forward), which would recompute forever.
  mutable bool recomputing = false;
};

std::string describe(const Tensor& t) {
  return detail::cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

std::vector<Tensor> recompute_backward(const Segment& seg,
                                       const std::vector<Tensor>& grad_outputs) {
  const size_t n = seg.inputs.size();
  for (size_t i = 0; i < n; ++i) {
    const Tensor& x = seg.inputs[i];
    if (!x.defined()) continue;
    FABRIC_CHECK(x.storage()->version() == seg.versions[i], Error, "checkpoint: input ", i, " (",
                 describe(x),
                 ") was modified in place after the checkpointed forward read it (version ",
                 seg.versions[i], ", now ", x.storage()->version(),
                 "); the recompute in backward would see the new values. "
                 "Clone it before modifying it, or pass the segment a copy");
  }
  const size_t n_edges = n + seg.closure.size();
  if (std::none_of(grad_outputs.begin(), grad_outputs.end(),
                   [](const Tensor& g) { return g.defined(); }))
    return std::vector<Tensor>(n_edges);
  FABRIC_CHECK(!seg.recomputing, Error,
               "checkpoint: backward reached this checkpoint again from inside its own recompute: "
               "a tensor the segment closes over was modified in place after the checkpointed "
               "forward, with values computed from the segment's output. Clone that tensor "
               "before modifying it");
  struct Recomputing {
    const Segment& seg;
    explicit Recomputing(const Segment& s) : seg(s) { seg.recomputing = true; }
    ~Recomputing() { seg.recomputing = false; }
  } recomputing(seg);

  std::vector<Tensor> copies(n);
  for (size_t i = 0; i < n; ++i) {
    if (!seg.inputs[i].defined()) continue;
    copies[i] = seg.inputs[i].detach();
    if (seg.requires_grad[i]) copies[i].set_requires_grad(true);
  }
  std::vector<Tensor> outs;
  {
    EnableGradGuard grad_on;  // the engine runs nodes under no-grad
    RngReplay rng(seg.generators, seg.rng_states);
    PrivateAutocastCache casts;
    AutocastReplay autocast(seg.autocast, CastCacheUse::as_recorded);
    outs = seg.fn(copies);
  }
  FABRIC_CHECK(outs.size() == seg.outputs.size(), Error,
               "checkpoint: the recompute in backward returned ", outs.size(),
               " outputs, the forward returned ", seg.outputs.size(),
               " (the checkpointed function must compute the same thing both times)");
  std::vector<Tensor> roots, grads;
  for (size_t k = 0; k < outs.size(); ++k) {
    const OutputMeta& m = seg.outputs[k];
    const Tensor& o = outs[k];
    FABRIC_CHECK(
        o.defined() == m.defined && (!m.defined || (o.sizes() == m.shape && o.dtype() == m.dtype)),
        Error, "checkpoint: output ", k, " of the recompute in backward is ",
        o.defined() ? describe(o) : std::string("undefined"), ", in the forward it was ",
        m.defined ? detail::cat(shape_str(m.shape), " ", dtype_name(m.dtype))
                  : std::string("undefined"),
        " (the checkpointed function must compute the same thing both times)");
    // An output that depends on nothing requiring grad contributes no gradient (the forward had
    // to mark it as requiring grad without knowing).
    if (k < grad_outputs.size() && grad_outputs[k].defined() && o.requires_grad()) {
      roots.push_back(o);
      grads.push_back(grad_outputs[k]);
    }
  }
  if (roots.empty()) return std::vector<Tensor>(n_edges);
  return nested_backward(roots, grads, copies, seg.closure);
}

// The tensors the forward read that are not its inputs (those reach the recompute as copies),
// each edge once.
std::vector<Tensor> closed_over(const ClosureReads& reads, const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out;
  std::vector<Edge> edges;
  for (const Tensor& t : reads.tensors) {
    const bool input = std::any_of(inputs.begin(), inputs.end(),
                                   [&](const Tensor& x) { return x.impl() == t.impl(); });
    if (input) continue;
    const Edge e = gradient_edge(t);
    const bool seen = std::any_of(edges.begin(), edges.end(), [&](const Edge& o) {
      return o.fn == e.fn && o.input_nr == e.input_nr;
    });
    if (!e.valid() || seen) continue;
    edges.push_back(e);
    out.push_back(t);
  }
  return out;
}

}  // namespace

std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs,
                               const CheckpointOptions& options) {
  FABRIC_CHECK(fn != nullptr, ValueError, "checkpoint: the function to checkpoint is empty");
  auto no_tensors = [](const std::vector<Tensor>& outs) {
    return std::none_of(outs.begin(), outs.end(), [](const Tensor& t) { return t.defined(); });
  };
  auto no_tensors_error = [](const std::vector<Tensor>& outs) {
    return ValueError(detail::cat("checkpoint: the checkpointed function returned no tensors (",
                                  outs.size(),
                                  " outputs, none defined); it must return at least one"));
  };
  if (!grad_enabled()) {
    std::vector<Tensor> outs = fn(inputs);
    if (no_tensors(outs)) throw no_tensors_error(outs);
    return outs;
  }

  auto seg = std::make_shared<Segment>();
  seg->fn = fn;
  for (size_t d = 0; d < kNumDeviceTypes; ++d) seg->autocast[d] = autocast_state(kDeviceTypes[d]);
  for (const Tensor& x : inputs) {
    seg->inputs.push_back(x.defined() ? x.detach() : Tensor());
    seg->requires_grad.push_back(x.defined() && x.requires_grad());
    seg->versions.push_back(x.defined() ? x.storage()->version() : 0);
  }
  if (options.preserve_rng_state) {
    seg->generators.push_back(&default_generator());
    for (Generator* g : options.generators) {
      if (g &&
          std::find(seg->generators.begin(), seg->generators.end(), g) == seg->generators.end())
        seg->generators.push_back(g);
    }
    for (Generator* g : seg->generators) seg->rng_states.push_back(g->state());
  }

  std::vector<Tensor> outs;
  GeneratorCapture drawn;
  ClosureReads reads;
  {
    NoGradGuard no_grad;
    AutocastReplay autocast(seg->autocast, CastCacheUse::off);  // the current state
    GeneratorCaptureScope capture(drawn);
    ClosureReadsScope noting(reads);
    outs = fn(inputs);
  }
  if (options.preserve_rng_state) {
    // Generators fn drew from that nobody listed (a layer's own Dropout generator): replayed from
    // their state before their first draw in the segment, as the listed ones.
    for (const GeneratorCapture::Entry& e : drawn.drawn) {
      if (std::find(seg->generators.begin(), seg->generators.end(), e.generator) !=
          seg->generators.end())
        continue;
      seg->generators.push_back(e.generator);
      seg->rng_states.push_back(e.before);
    }
  }
  if (no_tensors(outs)) throw no_tensors_error(outs);
  for (const Tensor& o : outs) {
    seg->outputs.push_back(o.defined() ? OutputMeta{true, o.sizes(), o.dtype()} : OutputMeta{});
  }

  auto node =
      std::make_shared<FunctionNode>("Checkpoint", [seg](const std::vector<Tensor>& grad_outputs) {
        return recompute_backward(*seg, grad_outputs);
      });
  node->num_outputs = static_cast<int>(outs.size());
  // Closed-over tensors are reached only by the recompute: those an op noted get edges (so the
  // enclosing pass accumulates each leaf once, after this node); any other is still reached.
  node->runs_nested_backward = true;
  std::vector<Tensor> edge_tensors = inputs;
  for (const Tensor& t : closed_over(reads, inputs)) {
    seg->closure.push_back(gradient_edge(t));
    edge_tensors.push_back(t);
  }
  add_input_edges(*node, edge_tensors);
  for (size_t k = 0; k < outs.size(); ++k) {
    Tensor& o = outs[k];
    if (!o.defined() || !is_floating(o.dtype())) continue;
    // A fresh handle: fn may have returned one of its inputs or a tensor it closes over, whose
    // own autograd identity must not change.
    o = o.detach();
    set_grad_fn(o, node, static_cast<int>(k));
  }
  return outs;
}

}  // namespace fabric
