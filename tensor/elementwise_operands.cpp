// The shared elementwise operand checks and cast of tensor/elementwise_operands.h.
#include "tensor/elementwise_operands.h"

#include <algorithm>

#include "tensor/error.h"

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

std::vector<int64_t> shared_transposed_order(const Shape& out,
                                             std::initializer_list<const Tensor*> operands) {
  constexpr int64_t kMinNumel = int64_t{1} << 14;  // below this the loop's order costs nothing
  const Tensor& first = **operands.begin();
  const auto nd = static_cast<int64_t>(out.size());
  if (nd < 2 || !first.device().is_cpu() || first.numel() < kMinNumel) return {};
  std::vector<int64_t> order(static_cast<size_t>(nd));
  for (int64_t d = 0; d < nd; ++d) order[static_cast<size_t>(d)] = d;
  // Outermost first: size-1 dims (any stride), then by decreasing stride.
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    const bool x1 = first.size(x) == 1, y1 = first.size(y) == 1;
    if (x1 != y1) return x1;
    return first.stride(x) > first.stride(y);
  });
  // Row-major already when the dims that move keep their order (size-1 dims go anywhere): the
  // plain loop is right, and the result keeps the standard strides.
  bool row_major = true;
  int64_t previous = -1;
  for (int64_t d : order) {
    if (first.size(d) == 1) continue;
    row_major = row_major && d > previous;
    previous = d;
  }
  if (row_major) return {};
  for (const Tensor* t : operands)
    if (t->sizes() != out || !t->detach().permute(order).is_contiguous()) return {};
  return order;
}

std::vector<int64_t> inverse_order(const std::vector<int64_t>& order) {
  std::vector<int64_t> inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i)
    inverse[static_cast<size_t>(order[i])] = static_cast<int64_t>(i);
  return inverse;
}

}  // namespace fabric
