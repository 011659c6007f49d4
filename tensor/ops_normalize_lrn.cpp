// torch.nn.functional.normalize and local_response_norm: compositions of recorded ops, as torch's
// Python writes them (neither has an op id or a kernel of its own).
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric {

Tensor normalize(const Tensor& x, double p, int64_t dim, double eps) {
  FABRIC_CHECK(x.defined(), ValueError, "normalize: got an undefined tensor");
  FABRIC_CHECK(x.dim() > 0, ShapeError,
               "normalize: expects a tensor of at least 1 dim, got a 0-dim one");
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
  // The mean of x^2 over a window of `size` channels, zero-padded as torch's (size / 2 before,
  // (size - 1) / 2 after, the padding counted in the mean). torch pools (N, 1, C, L) with a
  // (size, 1) window for 3-D inputs and (N, 1, C, H, rest) with (size, 1, 1) for wider ones;
  // flattening everything after C to one dim gives the same windows with the 2-d pool.
  const Shape sizes = x.sizes();
  Tensor mean_sq = mul(x, x).reshape({sizes[0], 1, sizes[1], -1});
  mean_sq = pad(mean_sq, {0, 0, size / 2, (size - 1) / 2});
  mean_sq = avg_pool2d(mean_sq, {size, 1}, {1, 1}).reshape(sizes);
  return div(x, pow(add(mul(mean_sq, alpha), k), beta));
}

}  // namespace fabric
