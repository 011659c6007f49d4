// gelu_mlp: the transformer MLP linear(gelu(linear(x, W1, b1), "tanh"), W2, b2) as one op and one
// autograd node (llm.c's fusion). A device whose GEMM has a GELU epilogue (gemm_gelu_stub,
// gemm_dgelu_stub) applies the GELU inside the first product and its derivative inside the product
// that makes the hidden layer's gradient; elsewhere the linear and gelu kernels run as parts, so
// that the values are those of the composition, bit for bit.
#include <tuple>

#include "tensor/activation_backward.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/linalg_kernels.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tensor/products_internal.h"

namespace fabric {
namespace {

using detail::as_rows;
using detail::batch_of;
using detail::raw_view;

bool is_gemm_float(DType t) {
  return t == DType::float32 || t == DType::float64 || t == DType::bfloat16 || t == DType::float16;
}

// The five operands after autocast: one floating dtype and one device, the (H, C) and (O, H)
// weights chained, biases 1-D of their layer's width.
void check_operands(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                    const Tensor& b2) {
  FABRIC_CHECK(x.defined() && w1.defined() && w2.defined(), ValueError,
               "gelu_mlp: x, fc_weight and proj_weight must be defined (the biases may be absent)");
  FABRIC_CHECK(is_gemm_float(x.dtype()), DTypeError, "gelu_mlp: not implemented for ",
               dtype_name(x.dtype()), "; supported: float64, float32, bfloat16, float16");
  const std::pair<const char*, const Tensor*> others[] = {
      {"fc_weight", &w1}, {"fc_bias", &b1}, {"proj_weight", &w2}, {"proj_bias", &b2}};
  for (const auto& [name, t] : others) {
    if (!t->defined()) continue;
    FABRIC_CHECK(t->dtype() == x.dtype(), DTypeError, "gelu_mlp: ", name, " is ",
                 dtype_name(t->dtype()), " but x is ", dtype_name(x.dtype()),
                 " (the operands are not promoted, as in linear)");
    FABRIC_CHECK(t->device() == x.device(), DeviceError, "gelu_mlp: ", name, " is on ", t->device(),
                 ", x on ", x.device());
  }
  FABRIC_CHECK(x.dim() >= 1, ShapeError, "gelu_mlp: x must be at least 1-D, got a 0-dim tensor");
  FABRIC_CHECK(w1.dim() == 2 && w2.dim() == 2, ShapeError,
               "gelu_mlp: fc_weight (H, C) and proj_weight (O, H) must be 2-D, got ",
               shape_str(w1.sizes()), " and ", shape_str(w2.sizes()));
  FABRIC_CHECK(x.size(-1) == w1.size(1), ShapeError, "gelu_mlp: x ", shape_str(x.sizes()), " has ",
               x.size(-1), " features but fc_weight ", shape_str(w1.sizes()), " expects ",
               w1.size(1));
  FABRIC_CHECK(w2.size(1) == w1.size(0), ShapeError, "gelu_mlp: proj_weight ",
               shape_str(w2.sizes()), " takes ", w2.size(1), " features but fc_weight ",
               shape_str(w1.sizes()), " makes ", w1.size(0));
  const std::pair<const Tensor*, int64_t> biases[] = {{&b1, w1.size(0)}, {&b2, w2.size(0)}};
  for (const auto& [b, width] : biases) {
    FABRIC_CHECK(!b->defined() || (b->dim() <= 1 && b->numel() == width), ShapeError,
                 "gelu_mlp: ", b == &b1 ? "fc_bias " : "proj_bias ", shape_str(b->sizes()),
                 " must be 1-D with ", width, " elements");
  }
}

Tensor detached(const Tensor& t) { return t.defined() ? t.detach() : Tensor(); }

// Whether `device` runs the GELU in the GEMM's epilogue for a product over K = k.
bool epilogue_gemm(Device device, int64_t k, bool backward) {
  if (k <= 0) return false;  // the epilogues need a product (K = 0 is the bias alone)
  return backward ? gemm_dgelu_stub.find(device) != nullptr
                  : gemm_gelu_stub.find(device) != nullptr;
}

}  // namespace

Tensor gelu_mlp(const Tensor& x_in, const Tensor& w1_in, const Tensor& b1_in, const Tensor& w2_in,
                const Tensor& b2_in) {
  Tensor x = x_in, w1 = w1_in, b1 = b1_in, w2 = w2_in, b2 = b2_in;
  apply_autocast(OpId::gelu_mlp, {&x, &w1, &b1, &w2, &b2});
  check_operands(x, w1, b1, w2, b2);
  // The parts run in the dtypes chosen above, and record nothing: the op records itself once.
  const detail::AutocastOff autocast_off(x.device());
  const bool record = grad_mode_enabled() && needs_record({&x, &w1, &b1, &w2, &b2});
  const Tensor b1v = b1.defined() && b1.dim() == 0 ? raw_view(b1, {1}, {1}) : detached(b1);
  Tensor pre, hidden;
  if (x.numel() > 0 && epilogue_gemm(x.device(), x.size(-1), false)) {
    Shape hidden_shape = x.sizes();
    hidden_shape.back() = w1.size(0);
    const TensorOptions opts{.dtype = x.dtype(), .device = x.device()};
    hidden = empty(hidden_shape, opts);
    // The pre-activation is kept only for the backward.
    if (record) pre = empty(hidden_shape, opts);
    const Tensor rows = as_rows(x);
    detail::GemmEpilogue gelu{.kind = detail::GemmEpilogue::Kind::gelu, .aux = pre};
    detail::gemm_into(rows, detail::transposed_matrix(w1), b1v, hidden, batch_of(rows), 1.f, 0.f,
                      &gelu);
    if (counting_flops()) detail::report_linear_flops(x, w1, b1);
  } else {
    pre = linear(x.detach(), w1.detach(), b1v);
    hidden = gelu(pre, "tanh");
  }
  Tensor out = linear(hidden, w2.detach(), detached(b2));
  if (record) {
    record_op(OpId::gelu_mlp, {x, w1, b1, w2, b2}, {&out, &pre, &hidden}, nullptr,
              "GeluMlpBackward0");
  }
  return out;
}

namespace {

// grad (..., O) @ W2 (O, H) times gelu'(pre): the hidden pre-activation's gradient, as linear's
// rule (its matmul) and gelu's (activation_backward) make it, or in one GEMM with the DGELU
// epilogue.
Tensor hidden_pre_grad(const Tensor& grad, const Tensor& w2, const Tensor& pre) {
  if (pre.numel() == 0 || !epilogue_gemm(grad.device(), w2.size(0), true))
    return activation_backward(ActGrad::gelu_tanh, matmul(grad, w2), pre);
  const Tensor pre_c = pre.contiguous();
  Tensor out = empty(pre_c.sizes(), {.dtype = pre_c.dtype(), .device = pre_c.device()});
  const Tensor rows = as_rows(grad);
  detail::GemmEpilogue dgelu{.kind = detail::GemmEpilogue::Kind::dgelu, .aux = pre_c};
  detail::gemm_into(rows, w2, Tensor(), out, batch_of(rows), 1.f, 0.f, &dgelu);
  if (counting_flops()) detail::report_matmul_flops(grad, w2, batch_of(rows));
  return out;
}


}  // namespace

GeluMlpGrads gelu_mlp_backward(const Tensor& grad_out, const Tensor& x, const Tensor& fc_weight,
                               const Tensor& proj_weight, const Tensor& pre, const Tensor& hidden,
                               const std::array<bool, 5>& needs) {
  GeluMlpGrads r;
  const Tensor g2 = detail::leading_rows(grad_out);
  std::tie(r.proj_weight, r.proj_bias) =
      linear_weight_bias_grads(g2, detail::leading_rows(hidden), needs[3], needs[4]);
  if (!needs[0] && !needs[1] && !needs[2]) return r;
  const Tensor gpre = hidden_pre_grad(grad_out, proj_weight, pre);
  if (needs[0]) r.x = matmul(gpre, fc_weight);
  std::tie(r.fc_weight, r.fc_bias) =
      linear_weight_bias_grads(detail::leading_rows(gpre), detail::leading_rows(x), needs[1], needs[2]);
  return r;
}

}  // namespace fabric
