// The host-run elementwise plumbing of host_elementwise.h.
#include "tensor/host_elementwise.h"

#include "tensor/elementwise_operands.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/shape.h"
#include "tensor/strided_loop.h"

namespace fabric {
namespace {

// t detached, in dtype ct, on the host.
Tensor host_operand(const Tensor& t, DType ct) { return t.detach().to(Device::cpu()).to(ct); }

// Runs `launch(loop)` over (out, a[, b]) on the host and returns out on a's device.
template <typename Launch>
Tensor run_host(const char* op, const Tensor& a, const Tensor* b, DType ct, const Launch& launch) {
  const Shape shape = b ? broadcast_shapes(a.sizes(), b->sizes(), op) : a.sizes();
  const Tensor ha = host_operand(a, ct);
  const Tensor hb = b ? host_operand(*b, ct) : Tensor();
  // Laid out from the originals' strides (the host copies keep them for CPU tensors).
  Tensor out = b ? empty_like_operands(shape, {.dtype = ct, .device = Device::cpu()}, {&a, b})
                 : empty_like_operands(shape, {.dtype = ct, .device = Device::cpu()}, {&a});
  if (out.numel() > 0) {
    const StridedLoop loop =
        b ? make_strided_loop(op, out, {&ha, &hb}) : make_strided_loop(op, out, {&ha});
    launch(loop);
  }
  return a.device().is_cpu() ? out : out.to(a.device());
}

}  // namespace

void check_host_operands(const char* op, const Tensor& a, const Tensor* b) {
  check_elementwise_operand(op, a);
  if (!b) return;
  check_elementwise_operand(op, *b);
  FABRIC_CHECK(a.device() == b->device() || b->dim() == 0, DeviceError, op,
               ": tensors on different devices (", a.device(), " and ", b->device(), ")");
}

Tensor run_extra_unary(const char* op, ExtraUnaryOp kernel, const Tensor& a, DType ct,
                       const ExtraUnaryArgs& args) {
  return run_host(op, a, nullptr, ct, [&](const StridedLoop& loop) {
    extra_unary_stub(Device::cpu())(kernel, loop, args);
  });
}

Tensor run_extra_binary(const char* op, ExtraBinaryOp kernel, const Tensor& a, const Tensor& b,
                        DType ct, const ExtraBinaryArgs& args) {
  return run_host(op, a, &b, ct, [&](const StridedLoop& loop) {
    extra_binary_stub(Device::cpu())(kernel, loop, args);
  });
}

Tensor run_bitwise(const char* op, BitwiseOp kernel, const Tensor& a, const Tensor& b, DType ct) {
  return run_host(op, a, &b, ct,
                  [&](const StridedLoop& loop) { bitwise_stub(Device::cpu())(kernel, loop); });
}

Tensor wrapped_scalar(const Tensor& a, const Scalar& s, DType ct) {
  const DType own = s.is_floating() ? DType::float64 : s.is_bool() ? DType::bool_ : DType::int64;
  return full({}, s, {.dtype = own, .device = a.device()}).to(ct);
}

}  // namespace fabric
