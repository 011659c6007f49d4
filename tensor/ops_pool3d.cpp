// max_pool3d, avg_pool3d, adaptive_avg_pool3d and adaptive_max_pool3d/2d (torch's semantics and
// argument checks) and the 3-d pools' gradients as recorded ops. Kernels see contiguous (D, H, W)
// planes and a Pool3dDesc (pool3d_kernels.h); adaptive_max_pool2d is a 3-d pool with D = 1.
// max_pool3d keeps its positions for its backward, which scatters to them (max_pool3d_saved.h).
#include <algorithm>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/max_pool3d_saved.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_pooling3d.h"
#include "tensor/pool3d_kernels.h"

namespace fabric {
namespace {

using detail::cat;

struct Pool3dSetup {
  Pool2dAttrs attrs;
  Pool3dDesc desc;
  Shape out_shape;
};

void check_pool_dtype(const char* op, const Shape& shape, DType dtype) {
  FABRIC_CHECK(dtype == DType::float32 || dtype == DType::float64 || dtype == DType::bfloat16 ||
                   dtype == DType::float16,
               DTypeError, op, ": input ", shape_str(shape), " ", dtype_name(dtype),
               " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
}

// `spatial` trailing dims after C, an optional batch before: every size but the batch non-zero.
// torch's adaptive pools check every dim but the first whatever the rank, so an unbatched input
// may have no channels there (`adaptive_max_pool2d` of (0, 3, 3) is (0, 2, 2)).
void check_pool_rank(const char* op, const Shape& shape, int64_t spatial, bool adaptive = false) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  FABRIC_CHECK(nd == spatial + 1 || nd == spatial + 2, ShapeError, op, ": expected a ", spatial + 1,
               "-D (C, ", spatial == 3 ? "D, " : "", "H, W) or ", spatial + 2, "-D (N, C, ",
               spatial == 3 ? "D, " : "", "H, W) input, got ", shape_str(shape));
  for (int64_t i = nd == spatial + 2 || adaptive ? 1 : 0; i < nd; ++i)
    FABRIC_CHECK(shape[i] > 0, ShapeError, op,
                 ": expected the input to have non-zero sizes for the non-batch dimensions, "
                 "but input ",
                 shape_str(shape), " has dimension ", i, " empty");
}

// A 1- or 3-element argument as (d, h, w).
std::vector<int64_t> triple_arg(const char* op, const char* name, const std::vector<int64_t>& v) {
  FABRIC_CHECK(v.size() == 1 || v.size() == 3, ValueError, op, ": ", name,
               " must have 1 or 3 elements, got ", shape_str(v));
  return v.size() == 1 ? std::vector<int64_t>{v[0], v[0], v[0]} : v;
}

Pool3dSetup pool3d_setup(const char* op, const Shape& shape, DType dtype,
                         const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                         const std::vector<int64_t>& padding) {
  check_pool_dtype(op, shape, dtype);
  check_pool_rank(op, shape, 3);
  Pool3dSetup s;
  s.attrs.kernel = triple_arg(op, "kernel_size", kernel);
  s.attrs.stride = stride.empty() ? s.attrs.kernel : triple_arg(op, "stride", stride);
  s.attrs.padding = triple_arg(op, "padding", padding);
  const auto &k = s.attrs.kernel, &st = s.attrs.stride, &p = s.attrs.padding;
  const int64_t nd = static_cast<int64_t>(shape.size());
  for (int i = 0; i < 3; ++i) {
    FABRIC_CHECK(k[i] > 0, ValueError, op, ": kernel_size must be positive, got ", shape_str(k));
    FABRIC_CHECK(st[i] > 0, ValueError, op, ": stride must be positive, got ", shape_str(st));
    FABRIC_CHECK(p[i] >= 0, ValueError, op, ": pad must be non-negative, but got padding ",
                 shape_str(p));
    FABRIC_CHECK(p[i] <= k[i] / 2, ValueError, op,
                 ": pad should be at most half of the kernel size, but got padding ", shape_str(p),
                 " for kernel_size ", shape_str(k));
  }
  for (int i = 0; i < 3; ++i) {
    const int64_t n = shape[nd - 3 + i], padded = checked_size_add(n, 2 * p[i], op);
    FABRIC_CHECK(padded >= k[i], ShapeError, op, ": output size is too small: input ",
                 shape_str(shape), " with kernel_size ", shape_str(k), ", stride ", shape_str(st),
                 ", padding ", shape_str(p));
    s.desc.in[i] = n;
    s.desc.out[i] = (padded - k[i]) / st[i] + 1;
    s.desc.kernel[i] = k[i];
    s.desc.stride[i] = st[i];
    s.desc.pad[i] = p[i];
  }
  s.desc.planes = nd == 5 ? shape[0] * shape[1] : shape[0];
  s.desc.dtype = dtype;
  s.out_shape = shape;
  for (int i = 0; i < 3; ++i) s.out_shape[nd - 3 + i] = s.desc.out[i];
  return s;
}

// torch's adaptive windows over the last `spatial` (2 or 3) dims; a 2-d pool gets D = 1.
Pool3dSetup adaptive_setup(const char* op, const Shape& shape, DType dtype,
                           std::vector<int64_t> output_size, int64_t spatial) {
  FABRIC_CHECK(output_size.size() == 1 || static_cast<int64_t>(output_size.size()) == spatial,
               ValueError, op, ": output_size must have 1 or ", spatial, " elements, got ",
               shape_str(output_size));
  if (output_size.size() == 1) output_size.assign(static_cast<size_t>(spatial), output_size[0]);
  for (int64_t o : output_size)
    FABRIC_CHECK(o >= 0, ValueError, op,
                 ": elements of output_size must be greater than or equal to 0, got ",
                 shape_str(output_size));
  check_pool_rank(op, shape, spatial, /*adaptive=*/true);
  check_pool_dtype(op, shape, dtype);
  Pool3dSetup s;
  s.desc.adaptive = true;
  const int64_t nd = static_cast<int64_t>(shape.size()), skip = 3 - spatial;
  for (int64_t i = 0; i < spatial; ++i) {
    s.desc.in[skip + i] = shape[nd - spatial + i];
    s.desc.out[skip + i] = output_size[i];
  }
  s.desc.planes = nd == spatial + 2 ? shape[0] * shape[1] : shape[0];
  s.desc.dtype = dtype;
  s.out_shape = shape;
  for (int64_t i = 0; i < spatial; ++i) s.out_shape[nd - spatial + i] = output_size[i];
  return s;
}

// Positions (unless want_idx is false: then an undefined tensor) and, when y is defined, values
// of each window's maximum.
Tensor max_positions(const Pool3dSetup& s, const Tensor& x, Tensor* y, bool want_idx = true) {
  Tensor idx =
      want_idx ? empty(s.out_shape, {.dtype = DType::int64, .device = x.device()}) : Tensor();
  if (numel_of(s.out_shape) > 0) {
    Tensor xc = x.detach().contiguous();
    pool3d_max_stub(x.device())(s.desc, xc.data_ptr(), y ? y->data_ptr() : nullptr,
                                want_idx ? static_cast<int64_t*>(idx.data_ptr()) : nullptr);
  }
  return idx;
}

// grad_out added into zeros of x's shape at idx, plane by plane (records nothing).
Tensor scatter_to_positions(const Pool3dDesc& d, const Tensor& grad_out, const Tensor& idx,
                            const Shape& x_shape) {
  if (grad_out.numel() == 0 || numel_of(x_shape) == 0)
    return zeros(x_shape, {.dtype = grad_out.dtype(), .device = grad_out.device()});
  Tensor dx = empty(x_shape, {.dtype = grad_out.dtype(), .device = grad_out.device()});
  Tensor g = grad_out.detach().contiguous(), at = idx.detach().contiguous();
  pool3d_max_backward_stub(dx.device())(d, g.data_ptr(), static_cast<const int64_t*>(at.data_ptr()),
                                        dx.data_ptr());
  return dx;
}

void check_grad_out(const char* op, const Tensor& grad_out, const Shape& expected, DType dtype) {
  FABRIC_CHECK(grad_out.defined() && grad_out.sizes() == expected && grad_out.dtype() == dtype,
               ShapeError, op, ": grad_out ",
               grad_out.defined()
                   ? cat(shape_str(grad_out.sizes()), " ", dtype_name(grad_out.dtype()))
                   : std::string("undefined"),
               " must be ", shape_str(expected), " ", dtype_name(dtype));
}

// adaptive_max_pool2d (spatial 2: a 3-d pool with D = 1) or adaptive_max_pool3d: values and the
// positions of each window's maximum in its plane, recorded with torch's node name.
std::tuple<Tensor, Tensor> adaptive_max_pool(const Tensor& x, std::vector<int64_t> output_size,
                                             int64_t spatial) {
  const bool is3d = spatial == 3;
  const char* op = is3d ? "adaptive_max_pool3d" : "adaptive_max_pool2d";
  FABRIC_CHECK(x.defined(), ValueError, op, ": undefined input");
  const Pool3dSetup s = adaptive_setup(op, x.sizes(), x.dtype(), std::move(output_size), spatial);
  Tensor values = empty(s.out_shape, {.dtype = x.dtype(), .device = x.device()});
  Tensor indices = max_positions(s, x, &values);
  record_op(is3d ? OpId::adaptive_max_pool3d : OpId::adaptive_max_pool2d, {x}, {&values, &indices},
            nullptr, is3d ? "AdaptiveMaxPool3DBackward0" : "AdaptiveMaxPool2DBackward0");
  return {values, indices};
}

}  // namespace

Tensor max_pool3d(const Tensor& x_in, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding) {
  Tensor x = x_in;
  apply_autocast(OpId::max_pool3d, {&x});
  FABRIC_CHECK(x.defined(), ValueError, "max_pool3d: undefined input");
  const Pool3dSetup s = pool3d_setup("max_pool3d", x.sizes(), x.dtype(), kernel, stride, padding);
  Tensor out = empty(s.out_shape, {.dtype = x.dtype(), .device = x.device()});
  // The positions only serve the backward: written when one will be recorded.
  const bool keep = needs_record({&x}) && grad_mode_enabled();
  const MaxPool3dRecord rec{s.attrs, max_positions(s, x, &out, keep)};
  record_op(OpId::max_pool3d, {x}, {&out}, &rec, "MaxPool3DWithIndicesBackward0");
  return out;
}

Tensor avg_pool3d(const Tensor& x_in, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding) {
  Tensor x = x_in;
  apply_autocast(OpId::avg_pool3d, {&x});
  FABRIC_CHECK(x.defined(), ValueError, "avg_pool3d: undefined input");
  const Pool3dSetup s = pool3d_setup("avg_pool3d", x.sizes(), x.dtype(), kernel, stride, padding);
  Tensor out = empty(s.out_shape, {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    pool3d_avg_stub(x.device())(s.desc, xc.data_ptr(), out.data_ptr());
  }
  record_op(OpId::avg_pool3d, {x}, {&out}, &s.attrs, "AvgPool3DBackward0");
  return out;
}

Tensor adaptive_avg_pool3d(const Tensor& x_in, std::vector<int64_t> output_size) {
  Tensor x = x_in;
  apply_autocast(OpId::adaptive_avg_pool3d, {&x});
  FABRIC_CHECK(x.defined(), ValueError, "adaptive_avg_pool3d: undefined input");
  const Pool3dSetup s =
      adaptive_setup("adaptive_avg_pool3d", x.sizes(), x.dtype(), std::move(output_size), 3);
  // torch's adaptive_avg_pool3d to 1 x 1 x 1 is the mean over the three spatial dims (its bits,
  // which the window kernel's three divisions do not give, and its MeanBackward1 node).
  if (s.desc.out[0] == 1 && s.desc.out[1] == 1 && s.desc.out[2] == 1)
    return mean(x, {-3, -2, -1}, /*keepdim=*/true);
  Tensor out = empty(s.out_shape, {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    pool3d_avg_stub(x.device())(s.desc, xc.data_ptr(), out.data_ptr());
  }
  record_op(OpId::adaptive_avg_pool3d, {x}, {&out}, nullptr, "AdaptiveAvgPool3DBackward0");
  return out;
}

std::tuple<Tensor, Tensor> adaptive_max_pool3d(const Tensor& x_in,
                                               std::vector<int64_t> output_size) {
  Tensor x = x_in;
  apply_autocast(OpId::adaptive_max_pool3d, {&x});
  return adaptive_max_pool(x, std::move(output_size), 3);
}

std::tuple<Tensor, Tensor> adaptive_max_pool2d(const Tensor& x, std::vector<int64_t> output_size) {
  return adaptive_max_pool(x, std::move(output_size), 2);
}

Tensor max_pool3d_indices(const Tensor& x, const Pool2dAttrs& a) {
  FABRIC_CHECK(x.defined(), ValueError, "max_pool3d_indices: undefined input");
  const Pool3dSetup s =
      pool3d_setup("max_pool3d_indices", x.sizes(), x.dtype(), a.kernel, a.stride, a.padding);
  return max_positions(s, x, nullptr);
}

Tensor max_pool3d_backward(const Tensor& grad_out, const Tensor& x, const Pool2dAttrs& a) {
  return max_pool3d_backward_at(grad_out, x, Tensor(), a);
}

Tensor max_pool3d_backward_at(const Tensor& grad_out, const Tensor& x, const Tensor& indices,
                              const Pool2dAttrs& a) {
  const char* op = "max_pool3d_backward";
  FABRIC_CHECK(x.defined(), ValueError, op, ": undefined input");
  const Pool3dSetup s = pool3d_setup(op, x.sizes(), x.dtype(), a.kernel, a.stride, a.padding);
  check_grad_out(op, grad_out, s.out_shape, x.dtype());
  FABRIC_CHECK(
      !indices.defined() || (indices.sizes() == s.out_shape && indices.dtype() == DType::int64 &&
                             indices.device() == x.device()),
      ShapeError, op, ": indices must be int64 ", shape_str(s.out_shape), " on ", x.device(),
      ", got ",
      indices.defined() ? cat(shape_str(indices.sizes()), " ", dtype_name(indices.dtype()), " on ",
                              indices.device())
                        : std::string());
  // Without the forward's positions (a direct call), find them again from x.
  const Tensor at = indices.defined() ? indices : max_positions(s, x, nullptr);
  Tensor dx = scatter_to_positions(s.desc, grad_out, at, x.sizes());
  // Recorded (a no-op outside grad mode): under create_graph the gradient differentiates again.
  record_op(OpId::max_pool3d_backward, {grad_out, x}, {&dx}, &s.attrs);
  return dx;
}

Tensor avg_pool3d_backward(const Tensor& grad_out, const Shape& input_shape, const Pool2dAttrs& a) {
  const char* op = "avg_pool3d_backward";
  FABRIC_CHECK(grad_out.defined(), ValueError, op, ": undefined grad_out");
  const Pool3dSetup s =
      pool3d_setup(op, input_shape, grad_out.dtype(), a.kernel, a.stride, a.padding);
  check_grad_out(op, grad_out, s.out_shape, grad_out.dtype());
  Tensor dx = zeros(input_shape, {.dtype = grad_out.dtype(), .device = grad_out.device()});
  if (grad_out.numel() > 0 && dx.numel() > 0) {
    Tensor dy = grad_out.detach().contiguous();
    pool3d_avg_backward_stub(dx.device())(s.desc, dy.data_ptr(), dx.data_ptr());
  }
  record_op(OpId::avg_pool3d_backward, {grad_out}, {&dx}, &s.attrs);
  return dx;
}

Tensor adaptive_avg_pool3d_backward(const Tensor& grad_out, const Shape& input_shape) {
  const char* op = "adaptive_avg_pool3d_backward";
  FABRIC_CHECK(grad_out.defined(), ValueError, op, ": undefined grad_out");
  FABRIC_CHECK(grad_out.dim() == static_cast<int64_t>(input_shape.size()) && grad_out.dim() >= 3,
               ShapeError, op, ": grad_out ", shape_str(grad_out.sizes()),
               " must have the rank of input ", shape_str(input_shape));
  const Pool3dSetup s =
      adaptive_setup(op, input_shape, grad_out.dtype(),
                     {grad_out.size(-3), grad_out.size(-2), grad_out.size(-1)}, 3);
  check_grad_out(op, grad_out, s.out_shape, grad_out.dtype());
  Tensor dx = zeros(input_shape, {.dtype = grad_out.dtype(), .device = grad_out.device()});
  if (grad_out.numel() > 0 && dx.numel() > 0) {
    Tensor dy = grad_out.detach().contiguous();
    pool3d_avg_backward_stub(dx.device())(s.desc, dy.data_ptr(), dx.data_ptr());
  }
  record_op(OpId::adaptive_avg_pool3d_backward, {grad_out}, {&dx});
  return dx;
}

}  // namespace fabric
