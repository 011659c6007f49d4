// diff, trapezoid, cumulative_trapezoid, cov and corrcoef (see numeric_calculus.h): torch 1.13's
// formulas, operation for operation (so their roundings are torch's), over recorded ops.
#include "tensor/numeric_calculus.h"

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/shape.h"
#include "tensor/warning.h"

namespace fabric {
namespace {

// prepend / append: the input's rank and its sizes off `dim`.
void check_attachable(const Tensor& input, const Tensor& other, int64_t dim) {
  if (!other.defined()) return;
  const int64_t d = wrap_dim(dim, input.dim(), "diff");
  FABRIC_CHECK(other.dim() == input.dim(), ShapeError,
               "diff: diff expects prepend or append to be the same dimension as input (got ",
               shape_str(other.sizes()), " for an input of shape ", shape_str(input.sizes()), ")");
  for (int64_t i = 0; i < other.dim(); ++i) {
    FABRIC_CHECK(other.size(i) == input.size(i) || i == d, ShapeError,
                 "diff: diff expects the shape of tensor to prepend or append to match that of "
                 "input except along the differencing dimension; input.size(",
                 i, ") = ", input.size(i), ", but got tensor.size(", i, ") = ", other.size(i));
  }
}

// torch's diff_helper: n differences along dim, each one element shorter.
Tensor differences(const Tensor& input, int64_t n, int64_t dim) {
  if (n == 0) return input.clone();
  dim = wrap_dim(dim, input.dim(), "diff");
  int64_t len = input.size(dim) - 1;
  if (n >= input.size(dim)) n = input.size(dim);
  Tensor r = input;
  const bool is_bool = input.dtype() == DType::bool_;
  for (int64_t i = 0; i < n; ++i, --len) {
    const Tensor hi = r.narrow(dim, 1, len), lo = r.narrow(dim, 0, len);
    r = is_bool ? logical_xor(hi, lo) : sub(hi, lo);
  }
  return r;
}

// trapezoid and cumulative_trapezoid's sample points: x shaped to broadcast against y along dim.
Tensor points_for(const char* op, const Tensor& y, const Tensor& x, int64_t dim) {
  if (x.dim() == 1) {
    FABRIC_CHECK(x.size(0) == y.size(dim), ShapeError, op, ": ", op,
                 ": There must be one `x` value for each sample point (x has ", x.size(0),
                 ", y has ", y.size(dim), " along dim ", dim, ")");
    Shape s(static_cast<size_t>(y.dim()), 1);
    s[dim] = x.size(0);
    return x.view(s);
  }
  if (x.dim() < y.dim()) {
    Shape s(static_cast<size_t>(y.dim() - x.dim()), 1);
    s.insert(s.end(), x.sizes().begin(), x.sizes().end());
    return x.view(s);
  }
  return x;
}

void check_not_bool(const char* op, const Tensor& y, const Tensor& x) {
  FABRIC_CHECK(y.dtype() != DType::bool_ && x.dtype() != DType::bool_, DTypeError, op, ": ", op,
               ": received a bool input for `x` or `y`, but bool is not supported");
}

void check_real_dx(const char* op, const Tensor& y, const Scalar& dx) {
  FABRIC_CHECK(y.dtype() != DType::bool_, DTypeError, op, ": ", op,
               ": received a bool input for `y`, but bool is not supported");
  FABRIC_CHECK(!dx.is_bool(), ValueError, op, ": ", op,
               ": Currently, we only support dx as a real number.");
}

// y's sizes without dim, as torch's zeros_like_except.
Tensor zeros_without(const Tensor& y, int64_t dim) {
  Shape s = y.sizes();
  s.erase(s.begin() + dim);
  return zeros(s, {.dtype = y.dtype(), .device = y.device()});
}

void check_has_dims(const char* op, const Tensor& y, int64_t dim) {
  FABRIC_CHECK(y.defined(), ValueError, op, ": undefined input");
  FABRIC_CHECK(y.dim() > 0, IndexError, op, ": Dimension specified as ", dim,
               " but tensor has no dimensions");
}

}  // namespace

Tensor diff(const Tensor& input, int64_t n, int64_t dim, const Tensor& prepend,
            const Tensor& append) {
  FABRIC_CHECK(input.defined(), ValueError, "diff: undefined input");
  FABRIC_CHECK(input.dim() >= 1, ShapeError,
               "diff: diff expects input to be at least one-dimensional");
  check_attachable(input, prepend, dim);
  check_attachable(input, append, dim);
  if ((!prepend.defined() && !append.defined()) || n == 0) return differences(input, n, dim);
  std::vector<Tensor> parts;
  if (prepend.defined()) parts.push_back(prepend);
  parts.push_back(input);
  if (append.defined()) parts.push_back(append);
  return differences(cat(parts, wrap_dim(dim, input.dim(), "diff")), n, dim);
}

Tensor trapezoid(const Tensor& y, const Tensor& x, int64_t dim) {
  check_has_dims("trapezoid", y, dim);
  FABRIC_CHECK(x.defined(), ValueError, "trapezoid: undefined x");
  dim = wrap_dim(dim, y.dim(), "trapezoid");
  // As numpy: the integral over no samples is 0.
  if (y.size(dim) == 0) return zeros_without(y, dim);
  check_not_bool("trapezoid", y, x);
  const Tensor xv = points_for("trapezoid", y, x, dim);
  const Tensor dx = sub(xv.slice(dim, 1, xv.size(dim)), xv.slice(dim, 0, -1));
  const Tensor pairs = add(y.slice(dim, 0, -1), y.slice(dim, 1, y.size(dim)));
  return sum(div(mul(dx, pairs), 2.0), {dim});
}

Tensor trapezoid(const Tensor& y, const Scalar& dx, int64_t dim) {
  check_has_dims("trapezoid", y, dim);
  dim = wrap_dim(dim, y.dim(), "trapezoid");
  if (y.size(dim) == 0) return zeros_without(y, dim);
  check_real_dx("trapezoid", y, dx);
  // With a constant spacing torch simplifies to dx * (sum(y) - (y_0 + y_last) / 2).
  const Tensor ends = mul(add(y.select(dim, 0), y.select(dim, -1)), 0.5);
  return mul(sub(sum(y, {dim}), ends), dx.to_double());
}

Tensor trapz(const Tensor& y, const Tensor& x, int64_t dim) { return trapezoid(y, x, dim); }
Tensor trapz(const Tensor& y, double dx, int64_t dim) { return trapezoid(y, Scalar(dx), dim); }

Tensor cumulative_trapezoid(const Tensor& y, const Tensor& x, int64_t dim) {
  check_has_dims("cumulative_trapezoid", y, dim);
  FABRIC_CHECK(x.defined(), ValueError, "cumulative_trapezoid: undefined x");
  dim = wrap_dim(dim, y.dim(), "cumulative_trapezoid");
  check_not_bool("cumulative_trapezoid", y, x);
  const Tensor xv = points_for("cumulative_trapezoid", y, x, dim);
  const Tensor dx = sub(xv.slice(dim, 1, xv.size(dim)), xv.slice(dim, 0, -1));
  const Tensor pairs = add(y.slice(dim, 0, -1), y.slice(dim, 1, y.size(dim)));
  return cumsum(mul(div(dx, 2.0), pairs), dim);
}

Tensor cumulative_trapezoid(const Tensor& y, const Scalar& dx, int64_t dim) {
  check_has_dims("cumulative_trapezoid", y, dim);
  dim = wrap_dim(dim, y.dim(), "cumulative_trapezoid");
  check_real_dx("cumulative_trapezoid", y, dx);
  const Tensor pairs = add(y.slice(dim, 0, -1), y.slice(dim, 1, y.size(dim)));
  return cumsum(mul(pairs, dx.to_double() / 2.0), dim);
}

Tensor cov(const Tensor& input, int64_t correction, const Tensor& fweights,
           const Tensor& aweights) {
  FABRIC_CHECK(input.defined(), ValueError, "cov: undefined input");
  FABRIC_CHECK(input.dim() <= 2, ShapeError,
               "cov: cov(): expected input to have two or fewer dimensions but got an input with ",
               input.dim(), " dimensions");
  FABRIC_CHECK(input.dtype() != DType::bool_, DTypeError,
               "cov: cov(): bool dtype is not supported for input");
  // (variables, observations)
  Tensor in = input.dim() < 2 ? input.view({1, -1}) : input;
  const int64_t observations = in.size(1);
  Tensor w;  // the product of the frequency and observation weights
  if (fweights.defined()) {
    FABRIC_CHECK(fweights.dim() <= 1, ShapeError,
                 "cov: cov(): expected fweights to have one or fewer dimensions but got fweights "
                 "with ",
                 fweights.dim(), " dimensions");
    FABRIC_CHECK(is_integral(fweights.dtype()), DTypeError,
                 "cov: cov(): expected fweights to have integral dtype but got fweights with ",
                 dtype_name(fweights.dtype()), " dtype");
    FABRIC_CHECK(fweights.numel() == observations, ShapeError,
                 "cov: cov(): expected fweights to have the same numel as there are observations "
                 "in the input but got ",
                 fweights.numel(), " != ", observations);
    FABRIC_CHECK(observations == 0 || min(fweights).item<double>() >= 0, ValueError,
                 "cov: cov(): fweights cannot be negative");
    w = fweights;
  }
  if (aweights.defined()) {
    FABRIC_CHECK(aweights.dim() <= 1, ShapeError,
                 "cov: cov(): expected aweights to have one or fewer dimensions but got aweights "
                 "with ",
                 aweights.dim(), " dimensions");
    FABRIC_CHECK(is_floating(aweights.dtype()), DTypeError,
                 "cov: cov(): expected aweights to have floating point dtype but got aweights "
                 "with ",
                 dtype_name(aweights.dtype()), " dtype");
    FABRIC_CHECK(aweights.numel() == observations, ShapeError,
                 "cov: cov(): expected aweights to have the same numel as there are observations "
                 "in the input but got ",
                 aweights.numel(), " != ", observations);
    FABRIC_CHECK(observations == 0 || ge(min(aweights), 0).item<bool>(), ValueError,
                 "cov: cov(): aweights cannot be negative");
    w = w.defined() ? mul(w, aweights) : aweights;
  }
  const Tensor w_sum =
      w.defined() ? sum(w)
                  : scalar_tensor(observations, {.dtype = DType::int64, .device = in.device()});
  FABRIC_CHECK(!w.defined() || ne(w_sum, 0).item<bool>(), ValueError,
               "cov: cov(): weights sum to zero, can't be normalized");
  const Tensor avg = div(sum(w.defined() ? mul(in, w) : in, {1}), w_sum);
  Tensor norm_factor = w.defined() && aweights.defined() && correction != 0
                           ? sub(w_sum, div(mul(sum(mul(w, aweights)), correction), w_sum))
                           : sub(w_sum, correction);
  if (le(norm_factor, 0).item<bool>()) {
    warn("cov(): degrees of freedom is <= 0");
    norm_factor = zeros_like(norm_factor);
  }
  in = sub(in, avg.unsqueeze(1));
  const Tensor c = mm(in, (w.defined() ? mul(in, w) : in).t());
  return div(c, norm_factor).squeeze();
}

Tensor corrcoef(const Tensor& input) {
  FABRIC_CHECK(input.defined(), ValueError, "corrcoef: undefined input");
  FABRIC_CHECK(input.dim() <= 2, ShapeError,
               "corrcoef: corrcoef(): expected input to have two or fewer dimensions but got an "
               "input with ",
               input.dim(), " dimensions");
  Tensor c = cov(input);
  if (c.dim() == 0) return div(c, c);  // NaN for a covariance of 0, inf or NaN; else 1
  const Tensor stddev = sqrt(diag(c));
  c = div(c, stddev.view({-1, 1}));
  c = div(c, stddev.view({1, -1}));
  return clamp(c, Scalar(-1), Scalar(1));
}

}  // namespace fabric
