// Pooling ops (NCHW, PyTorch's semantics and argument checks) and their gradient helpers for
// autograd. Kernels see contiguous tensors and a geometry struct (conv_kernels.h). Convolution
// itself is in ops_conv.cpp.
#include <algorithm>
#include <string>
#include <vector>

#include "tensor/conv_kernels.h"
#include "tensor/factory.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"

namespace fabric {
namespace {

using detail::cat;

std::string describe(const Tensor& t) {
  return cat(shape_str(t.sizes()), " ", dtype_name(t.dtype()));
}

// A 1- or 2-element argument (stride, padding, ...) as (h, w).
std::vector<int64_t> pair_arg(const char* op, const char* name, const std::vector<int64_t>& v) {
  FABRIC_CHECK(v.size() == 1 || v.size() == 2, ValueError, op, ": ", name,
               " must have 1 or 2 elements, got ", shape_str(v));
  return v.size() == 1 ? std::vector<int64_t>{v[0], v[0]} : v;
}

struct PoolSetup {
  Pool2dAttrs attrs;
  Pool2dDesc desc;
  Shape out_shape;
};

PoolSetup pool_setup(const char* op, const Shape& shape, DType dtype,
                     const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                     const std::vector<int64_t>& padding) {
  FABRIC_CHECK(dtype == DType::float32 || dtype == DType::float64 || dtype == DType::bfloat16 ||
                   dtype == DType::float16,
               DTypeError, op, ": input ", shape_str(shape), " ", dtype_name(dtype),
               " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
  const int64_t nd = static_cast<int64_t>(shape.size());
  FABRIC_CHECK(nd == 3 || nd == 4, ShapeError, op,
               ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got ", shape_str(shape), " ",
               dtype_name(dtype));
  // As PyTorch: every size but a 4-D input's batch must be non-zero.
  FABRIC_CHECK(std::all_of(shape.begin() + (nd == 4 ? 1 : 0), shape.end(), [](int64_t n) { return n > 0; }),
               ShapeError, op,
               ": expected a 3-D or 4-D (batch mode) input with non-zero sizes but an optional zero batch, "
               "got ", shape_str(shape));
  PoolSetup s;
  s.attrs.kernel = pair_arg(op, "kernel_size", kernel);
  s.attrs.stride = stride.empty() ? s.attrs.kernel : pair_arg(op, "stride", stride);
  s.attrs.padding = pair_arg(op, "padding", padding);
  const auto& k = s.attrs.kernel;
  const auto& st = s.attrs.stride;
  const auto& p = s.attrs.padding;
  FABRIC_CHECK(k[0] > 0 && k[1] > 0, ValueError, op, ": kernel_size must be positive, got ",
               shape_str(k));
  FABRIC_CHECK(st[0] > 0 && st[1] > 0, ValueError, op, ": stride must be positive, got ",
               shape_str(st));
  FABRIC_CHECK(p[0] >= 0 && p[1] >= 0, ValueError, op,
               ": pad must be non-negative, but got padding ", shape_str(p));
  FABRIC_CHECK(p[0] <= k[0] / 2 && p[1] <= k[1] / 2, ValueError, op,
               ": pad should be at most half of the kernel size, but got padding ", shape_str(p),
               " for kernel_size ", shape_str(k));
  const int64_t H = shape[nd - 2], W = shape[nd - 1];
  // 2 * p <= kernel_size fits; adding it to a huge H may not.
  const int64_t ph = checked_size_add(H, 2 * p[0], op), pw = checked_size_add(W, 2 * p[1], op);
  FABRIC_CHECK(ph >= k[0] && pw >= k[1], ShapeError, op, ": output size is too small: input ",
               shape_str(shape), " with kernel_size ", shape_str(k), ", stride ", shape_str(st),
               ", padding ", shape_str(p));
  const int64_t OH = (ph - k[0]) / st[0] + 1, OW = (pw - k[1]) / st[1] + 1;
  const int64_t planes = nd == 4 ? shape[0] * shape[1] : shape[0];
  s.desc = {planes, H, W, OH, OW, k[0], k[1], st[0], st[1], p[0], p[1], dtype};
  s.out_shape = shape;
  s.out_shape[nd - 2] = OH;
  s.out_shape[nd - 1] = OW;
  return s;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding) {
  FABRIC_CHECK(x.defined(), ValueError, "max_pool2d: undefined input");
  PoolSetup s = pool_setup("max_pool2d", x.sizes(), x.dtype(), kernel, stride, padding);
  Tensor out = empty(s.out_shape, {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    max_pool2d_forward_stub(x.device())(s.desc, xc.data_ptr(), out.data_ptr());
  }
  record_op(OpId::max_pool2d, {x}, {&out}, &s.attrs, "MaxPool2DWithIndicesBackward0");
  return out;
}

Tensor avg_pool2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding) {
  FABRIC_CHECK(x.defined(), ValueError, "avg_pool2d: undefined input");
  PoolSetup s = pool_setup("avg_pool2d", x.sizes(), x.dtype(), kernel, stride, padding);
  Tensor out = empty(s.out_shape, {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    avg_pool2d_forward_stub(x.device())(s.desc, xc.data_ptr(), out.data_ptr());
  }
  record_op(OpId::avg_pool2d, {x}, {&out}, &s.attrs, "AvgPool2DBackward0");
  return out;
}

Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& x, const Pool2dAttrs& attrs) {
  FABRIC_CHECK(x.defined(), ValueError, "max_pool2d_backward: undefined input");
  PoolSetup s = pool_setup("max_pool2d_backward", x.sizes(), x.dtype(), attrs.kernel, attrs.stride,
                           attrs.padding);
  FABRIC_CHECK(
      grad_out.defined() && grad_out.sizes() == s.out_shape && grad_out.dtype() == x.dtype(),
      ShapeError, "max_pool2d_backward: grad_out ",
      grad_out.defined() ? describe(grad_out) : "undefined", " must be ", shape_str(s.out_shape),
      " ", dtype_name(x.dtype()));
  Tensor dx = zeros(x.sizes(), {.dtype = x.dtype(), .device = x.device()});
  if (grad_out.numel() > 0) {
    Tensor dy = grad_out.detach().contiguous(), xc = x.detach().contiguous();
    max_pool2d_backward_stub(x.device())(s.desc, dy.data_ptr(), xc.data_ptr(), dx.data_ptr());
  }
  // Recorded (a no-op outside grad mode): under create_graph the gradient differentiates again.
  record_op(OpId::max_pool2d_backward, {grad_out, x}, {&dx}, &s.attrs);
  return dx;
}

Tensor max_pool2d_indices(const Tensor& x, const Pool2dAttrs& attrs) {
  FABRIC_CHECK(x.defined(), ValueError, "max_pool2d_indices: undefined input");
  PoolSetup s = pool_setup("max_pool2d_indices", x.sizes(), x.dtype(), attrs.kernel, attrs.stride,
                           attrs.padding);
  Tensor indices = empty(s.out_shape, {.dtype = DType::int64, .device = x.device()});
  if (indices.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    max_pool2d_indices_stub(x.device())(s.desc, xc.data_ptr(),
                                        static_cast<int64_t*>(indices.data_ptr()));
  }
  return indices;
}

Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape,
                           const Pool2dAttrs& attrs) {
  FABRIC_CHECK(grad_out.defined(), ValueError, "avg_pool2d_backward: undefined grad_out");
  PoolSetup s = pool_setup("avg_pool2d_backward", input_shape, grad_out.dtype(), attrs.kernel,
                           attrs.stride, attrs.padding);
  FABRIC_CHECK(grad_out.sizes() == s.out_shape, ShapeError, "avg_pool2d_backward: grad_out ",
               describe(grad_out), " must be ", shape_str(s.out_shape), " for input ",
               shape_str(input_shape));
  Tensor dx = zeros(input_shape, {.dtype = grad_out.dtype(), .device = grad_out.device()});
  if (grad_out.numel() > 0) {
    Tensor dy = grad_out.detach().contiguous();
    avg_pool2d_backward_stub(dx.device())(s.desc, dy.data_ptr(), dx.data_ptr());
  }
  record_op(OpId::avg_pool2d_backward, {grad_out}, {&dx}, &s.attrs);
  return dx;
}

}  // namespace fabric
