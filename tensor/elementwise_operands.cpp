// The shared elementwise operand checks and cast of tensor/elementwise_operands.h.
#include "tensor/elementwise_operands.h"

#include <algorithm>
#include <vector>

#include "tensor/error.h"
#include "tensor/factory.h"

namespace fabric {

void check_elementwise_operand(const char* op, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(
      !is_fp8(t.dtype()), DTypeError, op, ": ", dtype_name(t.dtype()),
      " tensors are not supported (fp8 is a storage format here; cast to a wider dtype first)");
}

void check_floating_operand(const char* op, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": got an undefined tensor");
  const DType dt = t.dtype();
  FABRIC_CHECK(is_floating(dt) && !is_fp8(dt), DTypeError, op,
               ": expects a float64, float32, float16 or bfloat16 tensor, got ", dtype_name(dt),
               is_fp8(dt) ? " (fp8 is a storage format here; cast to a wider dtype first)"
                          : " (cast with .to(float32) first)");
}

Tensor cast_for_kernel(const Tensor& t, DType dt) {
  return t.dtype() == dt ? t : t.detach().to(dt);
}

namespace {

// The dim order, outermost first, in which `t` is contiguous when that order is not the row-major
// one (size-1 dims placed outermost: their strides address nothing); empty for a row-major or
// non-dense tensor.
std::vector<int64_t> permuted_dense_order(const Tensor& t) {
  const int64_t nd = t.dim();
  if (nd < 2) return {};
  std::vector<int64_t> order(static_cast<size_t>(nd));
  for (int64_t d = 0; d < nd; ++d) order[static_cast<size_t>(d)] = d;
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    const bool x1 = t.size(x) == 1, y1 = t.size(y) == 1;
    if (x1 != y1) return x1;
    return t.stride(x) > t.stride(y);
  });
  bool row_major = true;
  int64_t previous = -1;
  for (int64_t d : order) {
    if (t.size(d) == 1) continue;
    row_major = row_major && d > previous;
    previous = d;
  }
  if (row_major) return {};
  int64_t expected = 1;  // the stride a dense tensor has at each dim, innermost first
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    if (t.size(*it) == 1) continue;
    if (t.stride(*it) != expected) return {};
    expected *= t.size(*it);
  }
  return order;
}

}  // namespace

Tensor empty_like_operands(const Shape& out, const TensorOptions& options,
                           std::initializer_list<const Tensor*> operands) {
  std::vector<int64_t> order;
  for (const Tensor* t : operands) {
    if (t->dim() == 0) continue;  // a 0-d operand broadcasts: it has no say, as in torch
    if (t->sizes() != out) return empty(out, options);
    std::vector<int64_t> o = permuted_dense_order(*t);
    if (o.empty()) return empty(out, options);
    if (order.empty()) {
      order = std::move(o);
    } else if (o != order && !t->detach().permute(order).is_contiguous()) {
      return empty(out, options);
    }
  }
  if (order.empty()) return empty(out, options);
  Shape permuted(out.size());
  std::vector<int64_t> inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    permuted[i] = out[static_cast<size_t>(order[i])];
    inverse[static_cast<size_t>(order[i])] = static_cast<int64_t>(i);
  }
  return empty(permuted, options).permute(inverse);
}

}  // namespace fabric
