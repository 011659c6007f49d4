// Activation checkpointing (torch.utils.checkpoint.checkpoint, use_reentrant=False semantics):
// run a segment without saving its activations and recompute it during backward.
#pragma once
#include <concepts>
#include <functional>
#include <type_traits>
#include <vector>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fabric {

struct CheckpointOptions {
  // Restore the default generator (and `generators`) to its forward state for the recompute, so
  // dropout draws the same masks; the stream is put back where it was afterwards.
  bool preserve_rng_state = true;
  // Other generators the segment draws from (e.g. a Dropout built with its own generator). Not
  // needed: every generator the forward draws from is noted and replayed (tensor/random.h's
  // GeneratorCapture); listing one only saves its state earlier.
  std::vector<Generator*> generators = {};
};

using CheckpointFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

// Runs fn(inputs) without recording it and returns its outputs, attached to the graph through one
// node. In backward that node re-runs fn with grad enabled on detached copies of `inputs` (same
// requires_grad), under the forward's RNG and autocast state, and back-propagates through the
// recomputed graph: the inputs get their gradients through the node's edges and the tensors fn
// closes over (module parameters) accumulate theirs as in an ordinary backward.
//
// - fn is kept until backward and called again then: whatever it references (a module captured
//   by reference) must still be alive, and it must compute the same thing (same output count,
//   shapes and dtypes; checked).
// - Every floating-point output requires grad (the forward records nothing, so it cannot know
//   which outputs depend on tensors requiring grad); integer/bool outputs and undefined entries
//   are returned as is.
// - Under no-grad, checkpoint just returns fn(inputs).
// - Inputs modified in place before backward are reported (the recompute would read new values).
// Throws ValueError when fn returns no (defined) tensor.
std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs,
                               const CheckpointOptions& options = {});

// A segment of one tensor in and one out: checkpoint([&](const Tensor& x) { return
// block->forward(x); }, x). (A template so that a call with a braced list, checkpoint(fn, {x}),
// never tries fn on a Tensor.)
template <typename F, typename T>
requires std::same_as<std::remove_cvref_t<T>, Tensor> &&
    std::is_invocable_r_v<Tensor, F&, const Tensor&>
        Tensor checkpoint(F&& fn, T&& input, const CheckpointOptions& options = {}) {
  CheckpointFn wrapped = [f = std::forward<F>(fn)](const std::vector<Tensor>& xs) mutable {
    return std::vector<Tensor>{f(xs[0])};
  };
  return checkpoint(wrapped, std::vector<Tensor>{input}, options)[0];
}

}  // namespace fabric
