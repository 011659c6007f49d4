// masked_fill beyond the harness rows (op_cases_index.cpp): the dtype and shape rules of
// torch.masked_fill (x's dtype kept, mask and x broadcast against each other), the value's range
// check, the gradients of x and of a 0-dim value tensor, and torch's argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

Tensor mask_of(const std::vector<bool>& v, const Shape& shape) {
  std::vector<double> d(v.begin(), v.end());
  return from_vector(d, shape, {.dtype = DType::float64}).to(DType::bool_);
}

// torch 1.13: the result has x's dtype (a float value truncates into an integer x, anything
// non-zero is true in a bool x) and the shape of x and the mask broadcast together.
TEST(MaskedFill, DtypeAndShapeAsTorch) {
  const Tensor m = mask_of({true, false, true}, {3});
  struct Row {
    Tensor x;
    Scalar value;
    std::vector<double> want;
  };
  const std::vector<Row> rows = {
      {zeros({3}, {.dtype = DType::int64}), 1.5, {1, 0, 1}},
      {zeros({3}, {.dtype = DType::bool_}), 2, {1, 0, 1}},
      {full({3}, 4.0, {.dtype = DType::float16}), -0.5, {-0.5, 4, -0.5}},
      {full({3}, 4.0, {.dtype = DType::bfloat16}), 7, {7, 4, 7}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(dtype_name(r.x.dtype()));
    const Tensor y = masked_fill(r.x, m, r.value);
    EXPECT_EQ(y.dtype(), r.x.dtype());
    EXPECT_EQ(y.to_vector<double>(), r.want);
  }
  // A float value tensor into an integer x keeps the integer dtype, as torch.
  EXPECT_EQ(masked_fill(zeros({3}, {.dtype = DType::int64}), m, scalar_tensor(2.5)).dtype(),
            DType::int64);
  // Out of place, a mask larger than x broadcasts x (torch's expand_outplace).
  EXPECT_EQ(masked_fill(zeros({3}), ones({2, 3}, {.dtype = DType::bool_}), 1).sizes(),
            (Shape{2, 3}));
  EXPECT_EQ(masked_fill(zeros({2, 3}), ones({4, 1, 3}, {.dtype = DType::bool_}), 1).sizes(),
            (Shape{4, 2, 3}));
}

// torch 1.13: x.grad is g where the mask is false; the 0-dim value's grad is the sum of g over
// the filled positions (mask (3,) broadcast over x (2, 3): 0 + 2 + 3 + 5 = 10).
TEST(MaskedFill, GradientsOfInputAndValueTensor) {
  Tensor x = randn({2, 3}).to(DType::float64);
  x.set_requires_grad(true);
  Tensor v = scalar_tensor(3.0, {.dtype = DType::float32});
  v.set_requires_grad(true);
  const Tensor y = masked_fill(x, mask_of({true, false, true}, {3}), v);
  EXPECT_EQ(y.dtype(), DType::float64);
  y.backward(from_vector(std::vector<double>{0, 1, 2, 3, 4, 5}, {2, 3}, {.dtype = DType::float64}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 1, 0, 0, 4, 0}));
  ASSERT_TRUE(v.grad().defined());
  EXPECT_EQ(v.grad().dtype(), DType::float32);
  EXPECT_EQ(v.grad().dim(), 0);
  EXPECT_EQ(v.grad().item<double>(), 10.0);
}

// The attention use: -inf where the mask says so, softmax gives those keys weight 0 and passes no
// gradient to the scores there.
TEST(MaskedFill, NegativeInfinityBeforeSoftmax) {
  Tensor s = randn({2, 4, 4}).to(DType::float64);
  s.set_requires_grad(true);
  const Tensor masked =
      masked_fill(s, logical_not(causal_mask(4, 4)), -std::numeric_limits<double>::infinity());
  const Tensor p = softmax(masked, -1);
  const std::vector<double> pv = p.to_vector<double>();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = i + 1; j < 4; ++j) EXPECT_EQ(pv[(b * 4 + i) * 4 + j], 0.0);
  sum(mul(p, randn({2, 4, 4}).to(DType::float64))).backward();
  const std::vector<double> g = s.grad().to_vector<double>();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        const double gij = g[(b * 4 + i) * 4 + j];
        EXPECT_TRUE(std::isfinite(gij));
        if (j > i) {
          EXPECT_EQ(gij, 0.0);
        }
      }
}

TEST(MaskedFill, ErrorsAsTorch) {
  const Tensor x = zeros({2, 3});
  const Tensor m = ones({3}, {.dtype = DType::bool_});
  // Only bool masks, as torch 2.x (1.13 still took integer masks; uint8 with a warning).
  for (DType dt : {DType::uint8, DType::int64, DType::float32}) {
    EXPECT_CONTAINS(
        thrown<DTypeError>([&] { masked_fill(x, ones({3}, {.dtype = dt}), 1); }),
        std::string("masked_fill: only bool masks are supported, got a mask of dtype ") +
            std::string(dtype_name(dt)));
  }
  EXPECT_CONTAINS(thrown<ShapeError>([&] { masked_fill(x, m, zeros({1})); }),
                  "masked_fill: only a 0-dim value tensor is supported, got value (1,) with 1 "
                  "dimension(s)");
  EXPECT_CONTAINS(
      thrown<ShapeError>([&] { masked_fill(x, ones({2}, {.dtype = DType::bool_}), 1); }),
      "masked_fill: shapes (2, 3) and (2,) cannot be broadcast");
  EXPECT_CONTAINS(
      thrown<ValueError>([&] { masked_fill(zeros({3}, {.dtype = DType::uint8}), m, 1000); }),
      "masked_fill: value 1000 cannot be converted to type uint8 without overflow");
  EXPECT_CONTAINS(
      thrown<ValueError>([&] { masked_fill(zeros({3}, {.dtype = DType::float16}), m, 1e6); }),
      "without overflow");
}

}  // namespace
}  // namespace fabric
