// torch.nn.functional.normalize and local_response_norm: compositions of recorded ops, as torch's
// Python writes them (neither has an op id or a kernel of its own).
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric {

Tensor normalize(const Tensor& x, double p, int64_t dim, double eps) {
  FABRIC_CHECK(x.defined(), ValueError, "normalize: got an undefined tensor");
  FABRIC_CHECK(is_floating(x.dtype()) && !is_fp8(x.dtype()), DTypeError,
               "normalize: expected a float64/float32/float16/bfloat16 input, got ",
               dtype_name(x.dtype()), " of shape ", shape_str(x.sizes()));
  dim = wrap_dim(dim, x.dim(), "normalize");
  // x / max(||x||_p, eps), the norm broadcast back over `dim`.
  return div(x, clamp(norm(x, p, {dim}, true), eps, std::nullopt));
}

Tensor local_response_norm(const Tensor& x, int64_t size, double alpha, double beta, double k) {
  FABRIC_CHECK(x.defined(), ValueError, "local_response_norm: got an undefined tensor");
  FABRIC_CHECK(x.dim() >= 3, ShapeError,
               "local_response_norm: Expected 3D or higher dimensionality input (got ", x.dim(),
               " dimensions)");
  FABRIC_CHECK(size > 0, ValueError, "local_response_norm: size must be positive, got ", size);
  if (x.numel() == 0) return x;
  const DType d = x.dtype();
  FABRIC_CHECK(
      d == DType::float32 || d == DType::float64 || d == DType::bfloat16 || d == DType::float16,
      DTypeError, "local_response_norm: input ", shape_str(x.sizes()), " ", dtype_name(d),
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16");
  // The mean of x^2 over a window of `size` channels, zero-padded as torch's (size / 2 before,
  // (size - 1) / 2 after, the padding counted in the mean), pooled as torch pools it: (N, 1, C, L)
  // with a (size, 1) window for 3-D inputs, (N, 1, C, H, rest) with a (size, 1, 1) one for wider
  // ones. The same windows either way, but avg_pool3d is on CPU autocast's float32 list, so a 4-D
  // or wider input's result is float32 there, as torch's.
  const Shape sizes = x.sizes();
  Tensor mean_sq;
  if (x.dim() == 3) {
    mean_sq = pad(mul(x, x).reshape({sizes[0], 1, sizes[1], -1}), {0, 0, size / 2, (size - 1) / 2});
    mean_sq = avg_pool2d(mean_sq, {size, 1}, {1, 1}).reshape(sizes);
  } else {
    mean_sq = pad(mul(x, x).reshape({sizes[0], 1, sizes[1], sizes[2], -1}),
                  {0, 0, 0, 0, size / 2, (size - 1) / 2});
    mean_sq = avg_pool3d(mean_sq, {size, 1, 1}, {1, 1, 1}).reshape(sizes);
  }
  return div(x, pow(add(mul(mean_sq, alpha), k), beta));
}

}  // namespace fabric
