// unfold (im2col) and fold (col2im) with torch's shape checks and messages. Each is the other's
// gradient (unfold scatters what fold sums), so their rules call each other and double backward
// comes with them. Kernels see contiguous tensors and a FoldDesc (fold_kernels.h).
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/fold_kernels.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_pooling3d.h"

namespace fabric {
namespace {

using detail::cat;

std::string pair_str(const std::vector<int64_t>& v) { return cat("(", v[0], ", ", v[1], ")"); }

std::vector<int64_t> pair_arg(const char* op, const char* name, const std::vector<int64_t>& v) {
  FABRIC_CHECK(v.size() == 1 || v.size() == 2, ValueError, op, ": ", name,
               " must have 1 or 2 elements, got ", shape_str(v));
  return v.size() == 1 ? std::vector<int64_t>{v[0], v[0]} : v;
}

FoldAttrs fold_attrs(const char* op, const std::vector<int64_t>& kernel,
                     const std::vector<int64_t>& dilation, const std::vector<int64_t>& padding,
                     const std::vector<int64_t>& stride) {
  FoldAttrs a{pair_arg(op, "kernel_size", kernel), pair_arg(op, "dilation", dilation),
              pair_arg(op, "padding", padding), pair_arg(op, "stride", stride)};
  FABRIC_CHECK(a.kernel[0] > 0 && a.kernel[1] > 0, ValueError, op,
               ": kernel size should be greater than zero, but got kernel_size ",
               pair_str(a.kernel));
  FABRIC_CHECK(a.stride[0] > 0 && a.stride[1] > 0, ValueError, op,
               ": stride should be greater than zero, but got stride ", pair_str(a.stride));
  FABRIC_CHECK(a.dilation[0] > 0 && a.dilation[1] > 0, ValueError, op,
               ": dilation should be greater than zero, but got dilation ", pair_str(a.dilation));
  FABRIC_CHECK(a.padding[0] >= 0 && a.padding[1] >= 0, ValueError, op,
               ": padding should be non-negative, but got padding ", pair_str(a.padding));
  return a;
}

// Blocks along one dim: (n + 2p - (d*(k-1) + 1)) / s + 1, or <= 0 when none fits.
int64_t blocks(int64_t n, int64_t k, int64_t d, int64_t p, int64_t s) {
  const int64_t span = d * (k - 1) + 1, padded = n + 2 * p;
  return padded < span ? 0 : (padded - span) / s + 1;
}

void check_dtype(const char* op, const Tensor& x) {
  const DType t = x.dtype();
  FABRIC_CHECK(
      t == DType::float32 || t == DType::float64 || t == DType::bfloat16 || t == DType::float16,
      DTypeError, op, ": input ", shape_str(x.sizes()), " ", dtype_name(t),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
}

FoldDesc desc_of(int64_t N, int64_t C, int64_t H, int64_t W, const FoldAttrs& a, DType dtype) {
  FoldDesc d;
  d.N = N, d.C = C, d.H = H, d.W = W;
  d.KH = a.kernel[0], d.KW = a.kernel[1], d.DH = a.dilation[0], d.DW = a.dilation[1];
  d.PH = a.padding[0], d.PW = a.padding[1], d.SH = a.stride[0], d.SW = a.stride[1];
  d.BH = blocks(H, d.KH, d.DH, d.PH, d.SH);
  d.BW = blocks(W, d.KW, d.DW, d.PW, d.SW);
  d.dtype = dtype;
  return d;
}

}  // namespace

Tensor unfold(const Tensor& x, std::vector<int64_t> kernel_size, std::vector<int64_t> dilation,
              std::vector<int64_t> padding, std::vector<int64_t> stride) {
  const char* op = "unfold";
  FABRIC_CHECK(x.defined(), ValueError, op, ": undefined input");
  const FoldAttrs a = fold_attrs(op, kernel_size, dilation, padding, stride);
  const int64_t nd = x.dim();
  FABRIC_CHECK(
      (nd == 3 || nd == 4) && x.size(-3) > 0 && x.size(-2) > 0 && x.size(-1) > 0, ShapeError, op,
      ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input with possibly 0 batch size and other "
      "non-zero dimensions, got ",
      shape_str(x.sizes()));
  check_dtype(op, x);
  const bool batched = nd == 4;
  const FoldDesc d =
      desc_of(batched ? x.size(0) : 1, x.size(-3), x.size(-2), x.size(-1), a, x.dtype());
  FABRIC_CHECK(d.BH >= 1 && d.BW >= 1, ShapeError, op, ": given input with spatial size (", d.H,
               ", ", d.W, "), kernel_size=", pair_str(a.kernel),
               ", dilation=", pair_str(a.dilation), ", padding=", pair_str(a.padding),
               ", calculated shape of the array of sliding blocks as (", d.BH, ", ", d.BW,
               "), but its components must be at least one");
  const int64_t rows = d.C * d.KH * d.KW, L = d.BH * d.BW;
  Shape out_shape = batched ? Shape{d.N, rows, L} : Shape{rows, L};
  Tensor out = empty(out_shape, {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    unfold_stub(x.device())(d, xc.data_ptr(), out.data_ptr());
  }
  record_op(OpId::unfold, {x}, {&out}, &a, "Im2ColBackward0");
  return out;
}

Tensor fold(const Tensor& x, std::vector<int64_t> output_size, std::vector<int64_t> kernel_size,
            std::vector<int64_t> dilation, std::vector<int64_t> padding,
            std::vector<int64_t> stride) {
  const char* op = "fold";
  FABRIC_CHECK(x.defined(), ValueError, op, ": undefined input");
  const std::vector<int64_t> size = pair_arg(op, "output_size", output_size);
  FABRIC_CHECK(size[0] > 0 && size[1] > 0, ValueError, op,
               ": output_size should be greater than zero, but got output_size ", pair_str(size));
  const FoldAttrs a = fold_attrs(op, kernel_size, dilation, padding, stride);
  const int64_t nd = x.dim();
  FABRIC_CHECK((nd == 2 || nd == 3) && x.size(-2) > 0 && x.size(-1) > 0, ShapeError, op,
               ": expected a 2-D (C*kH*kW, L) or 3-D (N, C*kH*kW, L) input with possibly 0 "
               "batch size and other non-zero dimensions, got ",
               shape_str(x.sizes()));
  check_dtype(op, x);
  const int64_t kk = a.kernel[0] * a.kernel[1];
  FABRIC_CHECK(x.size(-2) % kk == 0, ShapeError, op,
               ": expected size of input's dimension 1 to be divisible by the product of "
               "kernel_size, but got input.size(1)=",
               x.size(-2), " and kernel_size=", pair_str(a.kernel));
  const bool batched = nd == 3;
  const FoldDesc d =
      desc_of(batched ? x.size(0) : 1, x.size(-2) / kk, size[0], size[1], a, x.dtype());
  FABRIC_CHECK(d.BH * d.BW == x.size(-1), ShapeError, op, ": given output_size=", pair_str(size),
               ", kernel_size=", pair_str(a.kernel), ", dilation=", pair_str(a.dilation),
               ", padding=", pair_str(a.padding), ", stride=", pair_str(a.stride),
               ", expected size of input's dimension 2 to match the calculated number of sliding "
               "blocks ",
               d.BH, " * ", d.BW, " = ", d.BH * d.BW, ", but got input.size(2)=", x.size(-1));
  Shape out_shape = batched ? Shape{d.N, d.C, d.H, d.W} : Shape{d.C, d.H, d.W};
  Tensor out = empty(out_shape, {.dtype = x.dtype(), .device = x.device()});
  if (out.numel() > 0) {
    Tensor xc = x.detach().contiguous();
    fold_stub(x.device())(d, xc.data_ptr(), out.data_ptr());
  }
  record_op(OpId::fold, {x}, {&out}, &a, "Col2ImBackward0");
  return out;
}

}  // namespace fabric
