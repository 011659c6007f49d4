// The elementwise math family, prod and cumprod against torch 1.13 itself at the points random
// draws miss: erfinv across its range and at +-1, fmod's and remainder's sign rules with zeros and
// infinities, atan2's signed zeros, the domain edges of the trigonometric/hyperbolic/log ops,
// nan_to_num, and the product gradients with one and several zeros. The naive-reference and
// finite-difference checks are the harness rows of op_cases_math.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One torch call on a (and b) in `dtype` (shape: `shape`, or 1-D), then y.sum().backward(); the
// values and gradients as tools/fixtures/make_math_rows.py printed them (empty gradients: not
// differentiable, an integer row).
struct MathRow {
  const char* name;
  DType dtype;
  std::vector<double> a, b;
  Shape shape;
  std::vector<double> y, grad_a, grad_b;
};

#include "tests/ops/math_torch_rows.h"

using Op = std::function<Tensor(const Tensor&, const Tensor&)>;
const std::map<std::string, Op>& ops_by_name() {
  static const std::map<std::string, Op> ops = {
      {"erfinv", [](const Tensor& a, const Tensor&) { return erfinv(a); }},
      {"tan", [](const Tensor& a, const Tensor&) { return tan(a); }},
      {"asin", [](const Tensor& a, const Tensor&) { return asin(a); }},
      {"acos", [](const Tensor& a, const Tensor&) { return acos(a); }},
      {"atan", [](const Tensor& a, const Tensor&) { return atan(a); }},
      {"sinh", [](const Tensor& a, const Tensor&) { return sinh(a); }},
      {"cosh", [](const Tensor& a, const Tensor&) { return cosh(a); }},
      {"asinh", [](const Tensor& a, const Tensor&) { return asinh(a); }},
      {"acosh", [](const Tensor& a, const Tensor&) { return acosh(a); }},
      {"atanh", [](const Tensor& a, const Tensor&) { return atanh(a); }},
      {"log2", [](const Tensor& a, const Tensor&) { return log2(a); }},
      {"log10", [](const Tensor& a, const Tensor&) { return log10(a); }},
      {"nan_to_num", [](const Tensor& a, const Tensor&) { return nan_to_num(a); }},
      {"nan_to_num/1_2_-3",
       [](const Tensor& a, const Tensor&) { return nan_to_num(a, 1.0, 2.0, -3.0); }},
      {"fmod", [](const Tensor& a, const Tensor& b) { return fmod(a, b); }},
      {"remainder", [](const Tensor& a, const Tensor& b) { return remainder(a, b); }},
      {"atan2", [](const Tensor& a, const Tensor& b) { return atan2(a, b); }},
      {"prod", [](const Tensor& a, const Tensor&) { return prod(a); }},
      {"prod/dim0", [](const Tensor& a, const Tensor&) { return prod(a, 0); }},
      {"prod/dim1", [](const Tensor& a, const Tensor&) { return prod(a, 1); }},
      {"cumprod/dim0", [](const Tensor& a, const Tensor&) { return cumprod(a, 0); }},
      {"cumprod/dim1", [](const Tensor& a, const Tensor&) { return cumprod(a, 1); }},
  };
  return ops;
}

// Equal as torch prints them: NaN matches NaN, an infinity its own sign, zeros their sign (fmod
// and remainder keep the dividend's -0), finite values within `tol` relative to max(1, |want|).
bool same(double got, double want, double tol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  if (want == 0 && got == 0) return std::signbit(got) == std::signbit(want);
  return std::abs(got - want) <= tol * std::max(1.0, std::abs(want));
}

Tensor make_input(const std::vector<double>& v, const Shape& shape, DType dt) {
  const Shape s = shape.empty() ? Shape{static_cast<int64_t>(v.size())} : shape;
  Tensor t = from_vector(v, s, {.dtype = DType::float64}).to(dt);
  if (is_floating(dt)) t.set_requires_grad(true);
  return t;
}

void expect_all_same(const char* what, const std::vector<double>& got,
                     const std::vector<double>& want, const std::vector<double>& at, double tol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(same(got[i], want[i], tol))
        << what << " [" << i << "] at a = " << at[i] << ": " << got[i] << " vs torch " << want[i];
}

TEST(MathTorch, ValuesAndGradientsMatchTorch113) {
  for (const MathRow& r : kMathRows) {
    SCOPED_TRACE(::testing::Message() << r.name << " " << dtype_name(r.dtype));
    const Op& op = ops_by_name().at(r.name);
    Tensor a = make_input(r.a, r.shape, r.dtype);
    Tensor b = r.b.empty() ? Tensor() : make_input(r.b, r.shape, r.dtype);
    const Tensor y = op(a, b);
    ASSERT_EQ(y.dtype(), r.dtype);
    // float64: a few ulp of libm in another order; float32: erfinv is torch's algorithm in float
    // (1 ulp), libm's float functions are within 1 ulp of Sleef's.
    const double tol = r.dtype == DType::float64 ? 4e-15 : 3e-7;
    expect_all_same("value", y.to_vector<double>(), r.y, r.a, tol);
    if (r.grad_a.empty()) continue;
    sum(y).backward();
    expect_all_same("gradient of a", a.grad().to_vector<double>(), r.grad_a, r.a, tol);
    if (!r.grad_b.empty())
      expect_all_same("gradient of b", b.grad().to_vector<double>(), r.grad_b, r.a, tol);
  }
}

}  // namespace
}  // namespace fabric
