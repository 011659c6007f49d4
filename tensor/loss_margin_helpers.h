// What the margin, embedding and likelihood losses (ops_loss_margin*.cpp) share: the reduction,
// argument checks and torch's "clamp under no_grad" written as a differentiable composition.
#pragma once
#include <string_view>

#include "tensor/error.h"
#include "tensor/loss_reduction.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace fabric::detail {

// torch's apply_loss_reduction: the mean of no elements is NaN, as torch's.
inline Tensor apply_loss_reduction(const Tensor& losses, LossReduction r) {
  if (r == LossReduction::sum) return sum(losses);
  if (r == LossReduction::mean) return mean(losses);
  return losses;
}

inline void check_floating_arg(const char* op, const char* what, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": ", what, " is undefined");
  FABRIC_CHECK(is_floating(t.dtype()) && !is_fp8(t.dtype()), DTypeError, op, ": expected a ", what,
               " of a floating dtype (float64/float32/float16/bfloat16), got ",
               dtype_name(t.dtype()), " of shape ", shape_str(t.sizes()));
}

// Targets holding labels (1/-1) may be integers too, as torch's arithmetic takes them; bool and
// fp8 may not.
inline void check_label_arg(const char* op, const char* what, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": ", what, " is undefined");
  FABRIC_CHECK((is_floating(t.dtype()) && !is_fp8(t.dtype())) || is_integral(t.dtype()), DTypeError,
               op, ": expected a ", what, " of a floating or integer dtype (labels 1/-1), got ",
               dtype_name(t.dtype()), " of shape ", shape_str(t.sizes()));
}

// Class-index targets: int64, as torch's kernels read them ("expected scalar type Long").
inline void check_index_arg(const char* op, const char* what, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": ", what, " is undefined");
  FABRIC_CHECK(t.dtype() == DType::int64, DTypeError, op, ": expected a ", what,
               " of class indices of dtype int64, got ", dtype_name(t.dtype()), " of shape ",
               shape_str(t.sizes()));
}

// torch clamps some values in place under no_grad (gaussian_nll_loss's var, cosine_similarity's
// squared norms): the value is max(t, lo) but the gradient passes to t unchanged, even where the
// clamp acted. t - t.detach() is exactly 0 and carries t's gradient, so the clamped elements are
// exactly lo; the others are t itself.
inline Tensor clamp_min_straight_through(const Tensor& t, double lo) {
  const Tensor d = t.detach();
  return where(lt(d, lo), add(sub(t, d), lo), t);
}

}  // namespace fabric::detail
