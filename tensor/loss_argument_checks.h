// What torch 1.13 says about a loss's arguments beyond their shapes and dtypes: a weight it has
// no derivative for (refused), a target that broadcasts against the input (a warning).
#pragma once
#include "tensor/error.h"
#include "tensor/op_record.h"
#include "tensor/tensor.h"
#include "tensor/warning.h"

namespace fabric::detail {

// torch refuses such an argument while autograd records ("not differentiable with respect to
// argument 'weight'"), rather than train it silently; under no-grad it is only read.
inline void check_no_derivative_needed(const char* op, const char* what, const Tensor& t) {
  FABRIC_CHECK(!(t.defined() && t.requires_grad() && grad_mode_enabled()), NotImplementedError, op,
               ": the derivative for '", what, "' is not implemented, and this ", what,
               " requires grad; pass ", what, ".detach() (or call the loss under NoGradGuard)");
}

// mse/l1/smooth_l1/huber broadcast a target of another size, which is rarely what was meant
// (a (N, 1) output against a (N) target makes an (N, N) loss): torch warns, and so do these.
inline void warn_if_target_size_differs(const char* op, const Tensor& input, const Tensor& target) {
  if (target.sizes() == input.sizes()) return;
  warn(cat(op, ": using a target size ", shape_str(target.sizes()),
           " that is different to the input size ", shape_str(input.sizes()),
           ". This will likely lead to incorrect results due to broadcasting. Please ensure they "
           "have the same size."));
}

}  // namespace fabric::detail
