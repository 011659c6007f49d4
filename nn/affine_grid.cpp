// affine_grid as torch 1.13's AffineGridGenerator.cpp computes it: a base grid of linspace rows
// (x, y[, z], 1) in theta's dtype, then a batched product with theta^T. Its CPU bmm for these
// shapes (3 or 4 terms) adds the products in order into a zero accumulator (float for bfloat16),
// so the forward here is that loop written out, without contractions; the backward is torch's
// base^T @ grad. Off the CPU the same composition runs as recorded ops.
#include "nn/affine_grid.h"

#include <algorithm>
#include <string>
#include <type_traits>

#include "autograd/custom_function.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/float_formats.h"
#include "tensor/ops.h"
#include "tensor/shape.h"
#include "tensor/warning.h"

// A contracted a + b * c would change the bits torch's separate multiply and add give.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace fabric::nn {
inline namespace functional {

namespace {

std::string sizes_str(const std::vector<int64_t>& size) {
  // Python's tuple repr, as torch's messages print `size`.
  std::string s = "(";
  for (size_t i = 0; i < size.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(size[i]);
  }
  return s + (size.size() == 1 ? ",)" : ")");
}

// torch's linspace_from_neg_one: n points over [-1, 1] (their centres scaled by (n - 1) / n
// without align_corners), one 0 for n <= 1.
Tensor linspace_from_neg_one(int64_t n, bool align_corners, const TensorOptions& opts) {
  if (n <= 1) return zeros({1}, opts);
  Tensor range = linspace(-1, 1, n, opts);
  if (!align_corners) range = div(mul(range, n - 1), n);
  return range;
}

// (prod(spatial), k + 1): the rows (x, y[, z], 1) in the output's row-major order, x fastest.
Tensor base_grid(const std::vector<int64_t>& spatial, bool align_corners,
                 const TensorOptions& opts) {
  const int64_t k = static_cast<int64_t>(spatial.size());
  Shape shape(spatial.begin(), spatial.end());
  shape.push_back(k + 1);
  Tensor base = empty(shape, opts);
  // Coordinate c (0: x) varies along spatial dim k - 1 - c.
  for (int64_t c = 0; c < k; ++c) {
    Tensor line = linspace_from_neg_one(spatial[k - 1 - c], align_corners, opts);
    for (int64_t d = 0; d < c; ++d) line = line.unsqueeze(-1);
    base.select(-1, c).copy_(line);
  }
  base.select(-1, k).fill_(1);
  return base.reshape({-1, k + 1});
}

template <typename T>
void apply_theta(const Tensor& base, const Tensor& theta, Tensor& out) {
  using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;  // torch's opmath
  const int64_t N = theta.size(0), rows = theta.size(1), terms = theta.size(2);
  const int64_t P = base.size(0);
  const T* b = base.data<T>();
  const T* th = theta.data<T>();
  T* o = out.data<T>();
  for (int64_t n = 0; n < N; ++n) {
    const T* tn = th + n * rows * terms;
    T* on = o + n * P * rows;
    for (int64_t p = 0; p < P; ++p) {
      for (int64_t i = 0; i < rows; ++i) {
        Acc acc = 0;
        for (int64_t t = 0; t < terms; ++t)
          acc += static_cast<Acc>(b[p * terms + t]) * static_cast<Acc>(tn[i * terms + t]);
        on[p * rows + i] = static_cast<T>(acc);
      }
    }
  }
}

struct AffineGridFunction : Function<AffineGridFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& theta, const Tensor& base,
                        const Shape& out_shape) {
    const Tensor th = theta.contiguous();
    Tensor out = empty(out_shape, {.dtype = th.dtype(), .device = th.device()});
    switch (th.dtype()) {
      case DType::float32:
        apply_theta<float>(base, th, out);
        break;
      case DType::float64:
        apply_theta<double>(base, th, out);
        break;
      default:
        apply_theta<BFloat16>(base, th, out);
        break;
    }
    ctx->saved_data["base"] = base;
    return out;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const Tensor base = std::any_cast<Tensor>(ctx->saved_data["base"]);  // (P, k + 1)
    const Tensor& grad = g[0];
    const int64_t N = grad.size(0), k = base.size(1) - 1;
    // torch: base^T (k + 1, P) @ grad (P, k) per batch, transposed to theta's (k, k + 1).
    const Tensor base_t = base.t().unsqueeze(0).expand({N, k + 1, base.size(0)});
    const Tensor gt = bmm(base_t, grad.reshape({N, -1, k})).transpose(1, 2).contiguous();
    return {gt, Tensor(), Tensor()};
  }
};

}  // namespace

Tensor affine_grid(const Tensor& theta, const std::vector<int64_t>& size, bool align_corners) {
  FABRIC_CHECK(theta.defined(), ValueError, "affine_grid: undefined theta");
  FABRIC_CHECK(theta.is_floating_point(), DTypeError,
               "affine_grid: expected theta to have floating point type, but got ",
               dtype_name(theta.dtype()));
  const size_t k = size.size() - 2;  // spatial dims (wraps for a short size: checked next)
  FABRIC_CHECK(size.size() == 4 || size.size() == 5, NotImplementedError,
               "affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
               "respectively. Got size ",
               sizes_str(size), ".");
  const bool shape_ok = theta.dim() == 3 && theta.size(1) == static_cast<int64_t>(k) &&
                        theta.size(2) == static_cast<int64_t>(k) + 1;
  FABRIC_CHECK(shape_ok, ShapeError, "affine_grid: expected a batch of ", k,
               "D affine matrices of shape Nx", k, "x", k + 1, " for size ", sizes_str(size),
               ". Got ", shape_str(theta.sizes()), ".");
  const std::vector<int64_t> spatial(size.begin() + 2, size.end());
  const int64_t min_spatial = *std::min_element(spatial.begin(), spatial.end());
  if (align_corners && min_spatial == 1) {
    warn(
        "Since version 1.3.0, affine_grid behavior has changed for unit-size grids when "
        "align_corners=True. This is not an intended use case of affine_grid. See the "
        "documentation of affine_grid for details.");
  } else {
    FABRIC_CHECK(*std::min_element(size.begin(), size.end()) > 0, ValueError,
                 "affine_grid: expected non-zero, positive output size. Got ", sizes_str(size));
  }
  FABRIC_CHECK(theta.size(0) == size[0], ShapeError, "affine_grid: theta ",
               shape_str(theta.sizes()), " holds ", theta.size(0),
               " matrices but size asks for a batch of ", size[0]);
  const DType dt = theta.dtype();
  FABRIC_CHECK(dt == DType::float32 || dt == DType::float64 || dt == DType::bfloat16, DTypeError,
               "affine_grid: theta ", shape_str(theta.sizes()), " ", dtype_name(dt),
               " has an unsupported dtype; supported: float32, float64, bfloat16");
  for (int64_t s : spatial)
    FABRIC_CHECK(s >= 0, ValueError, "affine_grid: negative size in ", sizes_str(size));

  Shape out_shape{size[0]};
  out_shape.insert(out_shape.end(), spatial.begin(), spatial.end());
  out_shape.push_back(static_cast<int64_t>(k));
  const TensorOptions opts{.dtype = dt, .device = theta.device()};
  const Tensor base = base_grid(spatial, align_corners, opts);
  if (!theta.device().is_cpu()) {
    const Tensor b = base.unsqueeze(0).expand({size[0], base.size(0), base.size(1)});
    return bmm(b, theta.transpose(1, 2)).reshape(out_shape);
  }
  return AffineGridFunction::apply(theta, base, out_shape);
}

}  // namespace functional
}  // namespace fabric::nn
