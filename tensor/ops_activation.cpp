// The parameterised activations of torch.nn.functional: leaky_relu, elu/selu/celu, softplus,
// hardtanh/relu6, mish, hardswish, hardsigmoid. Floating tensors only (as torch, whose kernels
// are not built for integers); one kernel stub, tensor/activation_kernels.h.
#include "tensor/activation_kernels.h"
#include "tensor/autocast.h"
#include "tensor/elementwise_operands.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"

namespace fabric {

FABRIC_DEFINE_STUB(activation_stub, ActivationFn);

namespace {

// selu's constants, as torch's (Klambauer et al. 2017).
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

Tensor activation(OpId id, const char* name, ActivationOp op, const ActivationParams& params,
                  const Tensor& a_in, const void* attrs = nullptr,
                  const char* node_name = nullptr) {
  Tensor a = a_in;
  apply_autocast(id, {&a});
  check_floating_operand(name, a);
  Tensor out = empty_like_operands(a.sizes(), {.dtype = a.dtype(), .device = a.device()}, {&a});
  if (out.numel() > 0) {
    const StridedLoop loop = make_strided_loop(name, out, {&a});
    activation_stub(out.device())(op, params, loop);
  }
  record_op(id, {a}, {&out}, attrs, node_name);
  return out;
}

Tensor elu_form(const char* name, const EluAttrs& attrs, const Tensor& a,
                const char* node_name = nullptr) {
  ActivationParams p;
  p.alpha = attrs.alpha.to_double();
  p.scale = attrs.scale.to_double();
  p.input_scale = attrs.input_scale.to_double();
  return activation(OpId::elu, name, ActivationOp::elu, p, a, &attrs, node_name);
}

}  // namespace

Tensor leaky_relu(const Tensor& a, const Scalar& negative_slope) {
  const LeakyReluAttrs attrs{negative_slope};
  ActivationParams p;
  p.negative_slope = negative_slope.to_double();
  return activation(OpId::leaky_relu, "leaky_relu", ActivationOp::leaky_relu, p, a, &attrs);
}

Tensor elu(const Tensor& a, const Scalar& alpha) {
  return elu_form("elu", EluAttrs{alpha, 1.0, 1.0}, a);
}

Tensor selu(const Tensor& a) { return elu_form("selu", EluAttrs{kSeluAlpha, kSeluScale, 1.0}, a); }

Tensor celu(const Tensor& a, const Scalar& alpha) {
  const double al = alpha.to_double();
  FABRIC_CHECK(al != 0.0, ValueError, "celu: alpha cannot be 0 (celu divides by it), got ", al);
  return elu_form("celu", EluAttrs{alpha, 1.0, 1.0 / al}, a, "CeluBackward0");
}

Tensor softplus(const Tensor& a, const Scalar& beta, const Scalar& threshold) {
  const SoftplusAttrs attrs{beta, threshold};
  ActivationParams p;
  p.beta = beta.to_double();
  p.threshold = threshold.to_double();
  return activation(OpId::softplus, "softplus", ActivationOp::softplus, p, a, &attrs);
}

// No check of min_val <= max_val: torch's functional has none (min_val > max_val gives max_val
// everywhere, as clamp); nn::Hardtanh checks, as torch.nn.Hardtanh.
Tensor hardtanh(const Tensor& a, const Scalar& min_val, const Scalar& max_val) {
  const HardtanhAttrs attrs{min_val, max_val};
  ActivationParams p;
  p.min_val = min_val.to_double();
  p.max_val = max_val.to_double();
  return activation(OpId::hardtanh, "hardtanh", ActivationOp::hardtanh, p, a, &attrs);
}

Tensor relu6(const Tensor& a) {
  check_floating_operand("relu6", a);  // in its own name, not hardtanh's
  return hardtanh(a, 0.0, 6.0);
}

Tensor mish(const Tensor& a) { return activation(OpId::mish, "mish", ActivationOp::mish, {}, a); }

Tensor hardswish(const Tensor& a) {
  return activation(OpId::hardswish, "hardswish", ActivationOp::hardswish, {}, a);
}

Tensor hardsigmoid(const Tensor& a) {
  return activation(OpId::hardsigmoid, "hardsigmoid", ActivationOp::hardsigmoid, {}, a);
}

}  // namespace fabric
