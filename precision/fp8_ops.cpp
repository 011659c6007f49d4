// FP8 scaled casts and the FP8 GEMM (the device's tensor-core kernel when it has one, else an
// exact emulation), built on the tensor ops and the copy kernel's saturating fp8 mode (so each
// device's kernels do the work).
#include "precision/fp8_ops.h"

#include <cmath>
#include <memory>
#include <vector>

#include "autograd/connect_node.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "precision/context_guard.h"
#include "tensor/autocast.h"
#include "tensor/copy_kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/quant_kernels.h"
#include "tensor/strided_loop.h"

namespace fabric::precision {

namespace {

void check_element_format(const char* op, Fp8Format f) {
  FABRIC_CHECK(f == Fp8Format::E4M3 || f == Fp8Format::E5M2, ValueError, op,
               ": element format must be E4M3 or E5M2, got ", fp8_format_name(f),
               " (HYBRID picks E4M3 forward and E5M2 backward: use the recipe's format_for)");
}

void check_fp8_operand(const char* op, const char* name, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, op, ": ", name, " is undefined");
  FABRIC_CHECK(is_fp8(t.dtype()), DTypeError, op, ": ", name,
               " must be float8_e4m3fn or float8_e5m2, got ", dtype_name(t.dtype()), " ",
               shape_str(t.shape()));
}

// The emulation runs in fp32 whatever autocast region the caller is in.
ContextGuard autocast_off(Device d) {
  return autocast_context(d.type, autocast_state(d.type).dtype, /*enabled=*/false);
}

}  // namespace

Tensor fp8_saturating_cast(const Tensor& x, Fp8Format element_format) {
  check_element_format("fp8_saturating_cast", element_format);
  FABRIC_CHECK(x.defined(), ValueError, "fp8_saturating_cast: undefined tensor");
  FABRIC_CHECK(x.is_floating_point(), DTypeError,
               "fp8_saturating_cast: expected a floating tensor, got ", dtype_name(x.dtype()), " ",
               shape_str(x.shape()));
  const DType dt = fp8_dtype(element_format);
  Tensor out = empty(x.shape(), {.dtype = dt, .device = x.device()});
  if (x.numel() == 0) return out;
  StridedLoop loop = make_strided_loop("fp8_saturating_cast", out, {&x});
  copy_stub(x.device())(loop, /*saturate_fp8=*/true);
  return out;
}

Fp8Quantized fp8_quantize(const Tensor& x, float scale, Fp8Format element_format) {
  check_element_format("fp8_quantize", element_format);
  FABRIC_CHECK(x.defined(), ValueError, "fp8_quantize: undefined tensor");
  FABRIC_CHECK(x.is_floating_point(), DTypeError, "fp8_quantize: expected a floating tensor, got ",
               dtype_name(x.dtype()), " ", shape_str(x.shape()));
  FABRIC_CHECK(std::isfinite(scale) && scale > 0.0f, ValueError,
               "fp8_quantize: scale must be finite and > 0, got ", scale);
  NoGradGuard no_grad;
  ContextGuard no_autocast = autocast_off(x.device());
  // x -> fp32 is exact for every floating input but fp64; the product is one fp32 rounding.
  Tensor scaled = mul(x.detach().to(DType::float32), static_cast<double>(scale));
  return {fp8_saturating_cast(scaled, element_format), fp8_scale_inv(scale)};
}

Fp8Quantized fp8_quantize(FP8Meta& meta, Fp8Direction d, int64_t slot, const Tensor& x) {
  meta.record_amax(d, slot, x);
  return fp8_quantize(x, meta.scale_at(d, slot), meta.format(d));
}

Tensor fp8_dequantize(const Tensor& q, float scale_inv, DType out_dtype) {
  check_fp8_operand("fp8_dequantize", "q", q);
  FABRIC_CHECK(is_floating(out_dtype) && !is_fp8(out_dtype), DTypeError,
               "fp8_dequantize: out_dtype must be float64, float32, float16 or bfloat16, got ",
               dtype_name(out_dtype));
  NoGradGuard no_grad;
  ContextGuard no_autocast = autocast_off(q.device());
  Tensor r = mul(q.detach().to(DType::float32), static_cast<double>(scale_inv));
  return r.to(out_dtype);
}

namespace {

// A (..., K) @ B (K, N) through the device's FP8 GEMM kernel (fp8_gemm_stub), or undefined when
// the device has none or declines the problem. The kernel takes B as (N, K) with K contiguous,
// as a Linear's weight is stored: wq.t() is viewed back for free, other layouts are copied (one
// byte per element). The two dequantizing scales go to the device with the operands, so that the
// kernel reads them there.
Tensor fp8_gemm_on_tensor_cores(const Tensor& a_q, float scale_inv_a, const Tensor& b_q,
                                float scale_inv_b, DType out_dtype) {
  const Fp8GemmFn kernel = fp8_gemm_stub.find(a_q.device());
  if (!kernel || b_q.dim() != 2 || a_q.numel() == 0 || b_q.numel() == 0) return Tensor();
  const int64_t K = a_q.size(-1), N = b_q.size(1), M = a_q.numel() / K;
  const Tensor a = a_q.detach().contiguous();
  const Tensor bt = b_q.detach().t().contiguous();  // (N, K)
  std::vector<float> host_scales(2 * kFp8GemmScaleStride, 0.f);  // 16 bytes apart
  host_scales[0] = scale_inv_a;
  host_scales[kFp8GemmScaleStride] = scale_inv_b;
  const Tensor scales = from_vector<float>(host_scales).to(a_q.device());
  Shape out_shape = a_q.sizes();
  out_shape.back() = N;
  Tensor c = empty(out_shape, {.dtype = out_dtype, .device = a_q.device()});
  if (!kernel(M, N, K, a.dtype(), a.data_ptr(), bt.dtype(), bt.data_ptr(), scales.data<float>(),
              out_dtype, c.data_ptr()))
    return Tensor();
  return c;
}

}  // namespace

Tensor fp8_gemm(const Tensor& a_q, float scale_inv_a, const Tensor& b_q, float scale_inv_b,
                DType out_dtype) {
  check_fp8_operand("fp8_gemm", "A", a_q);
  check_fp8_operand("fp8_gemm", "B", b_q);
  FABRIC_CHECK(is_floating(out_dtype) && !is_fp8(out_dtype), DTypeError,
               "fp8_gemm: out_dtype must be float64, float32, float16 or bfloat16, got ",
               dtype_name(out_dtype));
  FABRIC_CHECK(a_q.dim() >= 1 && b_q.dim() >= 1, ShapeError,
               "fp8_gemm: operands must have at least one dim, got A ", shape_str(a_q.shape()),
               " and B ", shape_str(b_q.shape()));
  const int64_t ka = a_q.size(-1);
  const int64_t kb = b_q.dim() == 1 ? b_q.size(0) : b_q.size(-2);
  FABRIC_CHECK(ka == kb, ShapeError, "fp8_gemm: inner dims differ: A ", shape_str(a_q.shape()),
               " @ B ", shape_str(b_q.shape()), " (", ka, " vs ", kb, ")");
  FABRIC_CHECK(a_q.device() == b_q.device(), DeviceError,
               "fp8_gemm: operands on different devices");
  NoGradGuard no_grad;
  ContextGuard no_autocast = autocast_off(a_q.device());
  if (Tensor c = fp8_gemm_on_tensor_cores(a_q, scale_inv_a, b_q, scale_inv_b, out_dtype);
      c.defined())
    return c;
  // fp8 -> fp32 is exact, so the fp32 GEMM sees exactly the tensor-core inputs.
  Tensor acc = matmul(a_q.detach().to(DType::float32), b_q.detach().to(DType::float32));
  acc = mul(mul(acc, static_cast<double>(scale_inv_a)), static_cast<double>(scale_inv_b));
  return acc.to(out_dtype);
}

namespace {

void check_linear_operand(const char* name, const Tensor& t) {
  FABRIC_CHECK(t.is_floating_point() && !is_fp8(t.dtype()), DTypeError, "fp8_linear: ", name,
               " must be float64/32/16 or bfloat16 (the layer casts to fp8 itself), got ",
               dtype_name(t.dtype()));
}

// Wires `out` to a node whose backward is `fn`, with edges to the inputs that require grad.
void attach_node(Tensor& out, const std::vector<Tensor>& inputs, FunctionNode::Backward fn) {
  auto node = std::make_shared<FunctionNode>("Fp8Linear", std::move(fn));
  node->num_outputs = 1;
  add_input_edges(*node, inputs);
  set_grad_fn(out, node, 0);
}

}  // namespace

Tensor fp8_linear(FP8Meta& meta, int64_t gemm, const Tensor& x, const Tensor& weight,
                  const Tensor& bias) {
  FABRIC_CHECK(x.defined() && weight.defined(), ValueError,
               "fp8_linear: x and weight must be defined");
  FABRIC_CHECK(gemm >= 0 && gemm < meta.num_gemms(), IndexError, "fp8_linear: gemm ", gemm,
               " out of range for a meta of ", meta.num_gemms(), " GEMMs");
  check_linear_operand("x", x);
  check_linear_operand("weight", weight);
  FABRIC_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1), ShapeError,
               "fp8_linear: x ", shape_str(x.shape()), " and weight ", shape_str(weight.shape()),
               " do not match: expected x (..., in) and weight (out, in)");
  const int64_t in = weight.size(1), out_features = weight.size(0);
  if (bias.defined()) {
    check_linear_operand("bias", bias);
    FABRIC_CHECK(bias.shape() == Shape{out_features}, ShapeError, "fp8_linear: bias ",
                 shape_str(bias.shape()), ", expected (", out_features, ") for weight ",
                 shape_str(weight.shape()));
  }
  const bool needs_grad = grad_enabled() && (x.requires_grad() || weight.requires_grad() ||
                                             (bias.defined() && bias.requires_grad()));
  const DType act = x.dtype();
  Shape out_shape = x.shape();
  out_shape.back() = out_features;

  Tensor y;
  Fp8Quantized xq, wq;
  {
    NoGradGuard no_grad;
    ContextGuard no_autocast = autocast_off(x.device());
    Tensor x2 = x.detach().reshape({-1, in});  // (M, in)
    xq = fp8_quantize(meta, Fp8Direction::forward, FP8Meta::index(gemm, Fp8ForwardSlot::input), x2);
    wq = fp8_quantize(meta, Fp8Direction::forward, FP8Meta::index(gemm, Fp8ForwardSlot::weight),
                      weight);
    if (bias.defined()) {
      // Transformer Engine adds the bias (in the activation dtype) in the GEMM's float32
      // epilogue: the output is rounded once, not after the product and again after the sum.
      y = fp8_gemm(xq.q, xq.scale_inv, wq.q.t(), wq.scale_inv, DType::float32);
      y = add(y, bias.detach().to(act).to(DType::float32)).to(act);
    } else {
      y = fp8_gemm(xq.q, xq.scale_inv, wq.q.t(), wq.scale_inv, act);  // (M, out)
    }
    y = y.reshape(out_shape);
  }
  if (!needs_grad) return y;

  const Shape x_shape = x.shape();
  const DType w_dtype = weight.dtype();
  const DType b_dtype = bias.defined() ? bias.dtype() : DType::float32;
  const bool want_x = x.requires_grad(), want_w = weight.requires_grad();
  const bool want_b = bias.defined() && bias.requires_grad();
  FP8Meta* m = &meta;
  attach_node(y, {x, weight, bias}, [=](const std::vector<Tensor>& grads) -> std::vector<Tensor> {
    std::vector<Tensor> result(3);
    if (grads.empty() || !grads[0].defined()) return result;
    NoGradGuard no_grad;
    ContextGuard no_autocast = autocast_off(grads[0].device());
    Tensor g = grads[0].reshape({-1, out_features});  // (M, out)
    Fp8Quantized gq = fp8_quantize(*m, Fp8Direction::backward,
                                   FP8Meta::index(gemm, Fp8BackwardSlot::grad_output), g);
    if (want_x) {
      result[0] = fp8_gemm(gq.q, gq.scale_inv, wq.q, wq.scale_inv, act).reshape(x_shape);
    }
    if (want_w) result[1] = fp8_gemm(gq.q.t(), gq.scale_inv, xq.q, xq.scale_inv, w_dtype);
    if (want_b) result[2] = sum(g.to(DType::float32), {0}).to(b_dtype);
    return result;
  });
  return y;
}

}  // namespace fabric::precision
