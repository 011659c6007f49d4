// diff, trapezoid/trapz, cumulative_trapezoid, cov and corrcoef (tensor/numeric_calculus.h)
// against torch 1.13: the rows of shape_extra_torch_rows.h (values, dtypes, gradients, errors),
// then cov's degrees-of-freedom warning and diff's aliasing quirks.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "tensor/factory.h"
#include "tensor/numeric_calculus.h"
#include "tensor/ops.h"
#include "tests/common/capture_warnings.h"
#include "tests/tensor/shape_extra_check.h"

namespace fabric {
namespace {

using shape_extra_check::Call;
using shape_extra_check::CallTable;
using V = std::vector<Tensor>;

// The fixture's trapezoid-family dispatch: sample points, an integer dx, bool dx, a real dx or
// the default.
template <typename WithX, typename WithDx>
V integrate(const Call& c, WithX with_x, WithDx with_dx) {
  if (c.in.size() == 2) return {with_x(c.in[0], c.in[1], c.ints[0])};
  if (c.text == "int") return {with_dx(c.in[0], Scalar(c.ints[1]), c.ints[0])};
  if (c.text == "bool") return {with_dx(c.in[0], Scalar(true), c.ints[0])};
  if (c.reals.empty()) return {with_dx(c.in[0], Scalar(1), c.ints[0])};
  return {with_dx(c.in[0], Scalar(c.reals[0]), c.ints[0])};
}

CallTable calls() {
  CallTable t;
  t["diff"] = [](const Call& c) -> V {
    size_t k = 1;
    Tensor pre, app;
    if (c.text.find('p') != std::string::npos) pre = c.in[k++];
    if (c.text.find('a') != std::string::npos) app = c.in[k];
    return {diff(c.in[0], c.ints[0], c.ints[1], pre, app)};
  };
  t["trapezoid"] = [](const Call& c) {
    return integrate(
        c, [](const Tensor& y, const Tensor& x, int64_t d) { return trapezoid(y, x, d); },
        [](const Tensor& y, const Scalar& dx, int64_t d) { return trapezoid(y, dx, d); });
  };
  t["cumulative_trapezoid"] = [](const Call& c) {
    return integrate(
        c,
        [](const Tensor& y, const Tensor& x, int64_t d) { return cumulative_trapezoid(y, x, d); },
        [](const Tensor& y, const Scalar& dx, int64_t d) {
          return cumulative_trapezoid(y, dx, d);
        });
  };
  t["trapz"] = [](const Call& c) -> V {
    if (c.in.size() == 2) return {trapz(c.in[0], c.in[1], c.ints[0])};
    return {trapz(c.in[0], c.reals[0], c.ints[0])};
  };
  t["cov"] = [](const Call& c) -> V {
    size_t k = 1;
    Tensor fw, aw;
    if (c.text.find('f') != std::string::npos) fw = c.in[k++];
    if (c.text.find('a') != std::string::npos) aw = c.in[k];
    return {cov(c.in[0], c.ints[0], fw, aw)};
  };
  t["corrcoef"] = [](const Call& c) -> V { return {corrcoef(c.in[0])}; };
  return t;
}

TEST(NumericCalculusTorch, RowsMatchTorch) {
  test::CapturedWarnings quiet;  // cov's degrees-of-freedom rows warn, as torch
  shape_extra_check::check_rows("numeric_calculus", calls());
}

TEST(NumericCalculusTorch, ErrorsCarryTorchMessages) {
  shape_extra_check::check_error_rows("numeric_calculus", calls());
}

TEST(NumericCalculus, CovWarnsWhenDegreesOfFreedomRunOut) {
  test::CapturedWarnings captured;
  const Tensor c = cov(ones({2, 1}));
  ASSERT_EQ(captured.messages().size(), 1u);
  EXPECT_EQ(captured.messages()[0], "cov(): degrees of freedom is <= 0");
  EXPECT_TRUE(std::isnan(c.to_vector<double>()[0]));
  cov(ones({2, 3}));
  EXPECT_EQ(captured.messages().size(), 1u);
}

// As torch 1.13: n < 0 hands the input back, n == 0 a copy; an empty dim comes back as it is.
TEST(NumericCalculus, DiffReturnsItsInputWhereTorchDoes) {
  const Tensor x = arange(6.0).reshape({2, 3});
  EXPECT_TRUE(diff(x, -1).is_same(x));
  const Tensor copy = diff(x, 0);
  EXPECT_FALSE(copy.storage() == x.storage());
  EXPECT_EQ(copy.to_vector<double>(), x.to_vector<double>());
  const Tensor e = zeros({0});
  EXPECT_TRUE(diff(e).is_same(e));
}

// The two trapezoid forms agree for evenly spaced points, and the cumulative one ends at it.
TEST(NumericCalculus, TrapezoidFormsAgree) {
  const Tensor y =
      from_vector(std::vector<double>{1, 4, 9, 16, 25}, {5}, {.dtype = DType::float64});
  const Tensor x = mul(arange(5, DType::float64), 0.5);
  EXPECT_DOUBLE_EQ(trapezoid(y, x).item<double>(), trapezoid(y, 0.5).item<double>());
  EXPECT_DOUBLE_EQ(trapezoid(y, 0.5).item<double>(), 0.5 * (1 + 2 * (4 + 9 + 16) + 25) / 2);
  EXPECT_DOUBLE_EQ(cumulative_trapezoid(y, x).to_vector<double>().back(),
                   trapezoid(y, 0.5).item<double>());
}

}  // namespace
}  // namespace fabric
