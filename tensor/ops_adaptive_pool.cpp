// adaptive_avg_pool2d (torch's windows and argument checks) and its gradient as a recorded op
// (linear in grad_out: double backward pools the upstream again). Kernels see contiguous planes
// and a Pool2dDesc (conv_kernels.h): the adaptive kernels, or avg_pool2d's where the windows tile.
#include <algorithm>
#include <vector>

#include "tensor/conv_kernels.h"
#include "tensor/factory.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"

namespace fabric {
namespace {

struct AdaptiveSetup {
  Pool2dDesc desc;
  Shape out_shape;
};

// torch's checks, in its order: output_size, the input's rank and sizes, then the dtype.
AdaptiveSetup adaptive_setup(const char* op, const Shape& shape, DType dtype,
                             const std::vector<int64_t>& output_size) {
  FABRIC_CHECK(output_size.size() == 1 || output_size.size() == 2, ValueError, op,
               ": output_size must have 1 or 2 elements (oh, ow), got ", shape_str(output_size));
  const int64_t oh = output_size[0], ow = output_size.back();
  FABRIC_CHECK(oh >= 0 && ow >= 0, ValueError, op,
               ": elements of output_size must be greater than or equal to 0, got ",
               shape_str(output_size));
  const int64_t nd = static_cast<int64_t>(shape.size());
  FABRIC_CHECK(nd == 3 || nd == 4, ShapeError, op,
               ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got ", shape_str(shape));
  // Every dim but the first, whatever the rank, as torch: an unbatched (0, H, W) passes.
  for (int64_t i = 1; i < nd; ++i)
    FABRIC_CHECK(shape[i] > 0, ShapeError, op,
                 ": expected the input to have non-zero sizes for the non-batch dimensions, but "
                 "input ",
                 shape_str(shape), " has dimension ", i, " empty");
  FABRIC_CHECK(dtype == DType::float32 || dtype == DType::float64 || dtype == DType::bfloat16 ||
                   dtype == DType::float16,
               DTypeError, op, ": input ", shape_str(shape), " ", dtype_name(dtype),
               " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
  AdaptiveSetup s;
  s.desc.planes = nd == 4 ? shape[0] * shape[1] : shape[0];
  s.desc.H = shape[nd - 2];
  s.desc.W = shape[nd - 1];
  s.desc.OH = oh;
  s.desc.OW = ow;
  s.desc.dtype = dtype;
  s.out_shape = shape;
  s.out_shape[nd - 2] = oh;
  s.out_shape[nd - 1] = ow;
  return s;
}

// Windows that tile the input exactly (oh divides H, ow divides W) are avg_pool2d's with kernel
// = stride = (H/oh, W/ow) and no padding, whose kernels have a vectorised 2x2 path. But
// avg_pool2d divides by kh * kw at once and torch's adaptive kernel by kh, then kw: the same bits
// only for 1-wide windows (x / 1 is exact) or 2 x 2 ones (halving twice rounds as quartering,
// subnormals too; not so for 4 x 4), so only those go there. Both devices route the same way.
bool tiles(const Pool2dDesc& d) {
  if (d.OH <= 0 || d.OW <= 0 || d.H % d.OH != 0 || d.W % d.OW != 0) return false;
  const int64_t kh = d.H / d.OH, kw = d.W / d.OW;
  return kh == 1 || kw == 1 || (kh == 2 && kw == 2);
}
Pool2dDesc as_avg_pool(Pool2dDesc d) {
  d.KH = d.SH = d.H / d.OH;
  d.KW = d.SW = d.W / d.OW;
  d.PH = d.PW = 0;
  return d;
}

}  // namespace

Tensor adaptive_avg_pool2d(const Tensor& x, std::vector<int64_t> output_size) {
  FABRIC_CHECK(x.defined(), ValueError, "adaptive_avg_pool2d: undefined input");
  const AdaptiveSetup s = adaptive_setup("adaptive_avg_pool2d", x.sizes(), x.dtype(), output_size);
  // torch's adaptive_avg_pool2d to 1 x 1 is the mean over the two spatial dims (its bits and its
  // MeanBackward1 node), as a ResNet head calls it: the window kernel took 4x torch's time.
  if (s.desc.OH == 1 && s.desc.OW == 1) return mean(x, {-2, -1}, /*keepdim=*/true);
  Tensor out = empty(s.out_shape, {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    if (tiles(s.desc))
      avg_pool2d_forward_stub(x.device())(as_avg_pool(s.desc), xc.data_ptr(), out.data_ptr());
    else
      adaptive_avg_pool2d_forward_stub(x.device())(s.desc, xc.data_ptr(), out.data_ptr());
  }
  record_op(OpId::adaptive_avg_pool2d, {x}, {&out}, nullptr, "AdaptiveAvgPool2DBackward0");
  return out;
}

Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  FABRIC_CHECK(grad_out.defined(), ValueError, op, ": undefined grad_out");
  FABRIC_CHECK(grad_out.dim() == static_cast<int64_t>(input_shape.size()), ShapeError, op,
               ": grad_out ", shape_str(grad_out.sizes()), " must have the rank of input ",
               shape_str(input_shape));
  const AdaptiveSetup s =
      adaptive_setup(op, input_shape, grad_out.dtype(), {grad_out.size(-2), grad_out.size(-1)});
  FABRIC_CHECK(grad_out.sizes() == s.out_shape, ShapeError, op, ": grad_out ",
               shape_str(grad_out.sizes()), " must be ", shape_str(s.out_shape), " for input ",
               shape_str(input_shape));
  Tensor dx = zeros(input_shape, {.dtype = grad_out.dtype(), .device = grad_out.device()});
  if (dx.numel() > 0 && grad_out.numel() > 0) {
    Tensor dy = grad_out.detach().contiguous();
    if (tiles(s.desc))
      avg_pool2d_backward_stub(dx.device())(as_avg_pool(s.desc), dy.data_ptr(), dx.data_ptr());
    else
      adaptive_avg_pool2d_backward_stub(dx.device())(s.desc, dy.data_ptr(), dx.data_ptr());
  }
  // Recorded (a no-op outside grad mode): under create_graph the gradient differentiates again.
  record_op(OpId::adaptive_avg_pool2d_backward, {grad_out}, {&dx});
  return dx;
}

}  // namespace fabric
