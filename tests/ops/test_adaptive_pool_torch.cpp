// adaptive_avg_pool2d against torch 1.13 itself: values and input gradients where the windows are
// not a plain tiling (overlapping, output larger than the input), torch's argument errors and the
// backward node name. The naive-reference and finite-difference checks are the harness rows of
// op_cases_linalg.cpp, the double backward rows in tests/autograd/test_double_backward.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

// One torch 1.13 CPU call: y = F.adaptive_avg_pool2d(x, (oh, ow)) for x = arange(H*W) as
// (1, 1, H, W) in `dtype`, then y.backward(arange(oh*ow) + 1); y and x.grad as printed by
// tools/fixtures/make_adaptive_pool_rows.py.
struct AdaptivePoolRow {
  const char* name;
  DType dtype;
  int64_t H, W, oh, ow;
  std::vector<double> y, grad;
};

// clang-format off
const std::vector<AdaptivePoolRow>& torch_rows() {
  static const std::vector<AdaptivePoolRow> rows = {
      {"5x7_to_3x4", DType::float64, 5, 7, 3, 4,
       {4.0, 5.5, 7.5, 9.0, 14.5, 16.0, 18.0, 19.5, 25.0, 26.5, 28.5, 30.0},
       {0.25, 0.5833333333333333, 0.3333333333333333, 0.8333333333333333, 0.5, 1.5, 1.0, 1.0833333333333335, 2.083333333333333, 1.0, 2.2777777777777777, 1.2777777777777777, 3.6111111111111107, 2.333333333333333, 0.8333333333333334, 1.5, 0.6666666666666666, 1.4444444444444444, 0.7777777777777778, 2.111111111111111, 1.3333333333333333, 3.0833333333333335, 5.416666666666667, 2.3333333333333335, 4.944444444444445, 2.611111111111111, 6.944444444444445, 4.333333333333333, 2.25, 3.916666666666667, 1.6666666666666667, 3.5, 1.8333333333333333, 4.833333333333333, 3.0}},
      {"5x7_to_3x4", DType::float32, 5, 7, 3, 4,
       {4.0, 5.5, 7.5, 9.0, 14.5, 16.0, 18.0, 19.5, 25.0, 26.5, 28.5, 30.0},
       {0.25, 0.5833333730697632, 0.3333333432674408, 0.8333333730697632, 0.5, 1.5, 1.0, 1.0833332538604736, 2.0833334922790527, 1.0, 2.277777671813965, 1.2777776718139648, 3.6111111640930176, 2.3333334922790527, 0.8333333134651184, 1.5, 0.6666666865348816, 1.4444444179534912, 0.7777777314186096, 2.1111111640930176, 1.3333333730697632, 3.0833332538604736, 5.416666507720947, 2.3333332538604736, 4.94444465637207, 2.6111111640930176, 6.94444465637207, 4.333333492279053, 2.25, 3.9166665077209473, 1.6666666269302368, 3.5, 1.8333333730697632, 4.833333492279053, 3.0}},
      {"4x4_to_3x3", DType::float64, 4, 4, 3, 3,
       {2.5, 3.5, 4.5, 6.5, 7.5, 8.5, 10.5, 11.5, 12.5},
       {0.25, 0.75, 1.25, 0.75, 1.25, 3.0, 4.0, 2.25, 2.75, 6.0, 7.0, 3.75, 1.75, 3.75, 4.25, 2.25}},
      {"4x4_to_3x3", DType::float32, 4, 4, 3, 3,
       {2.5, 3.5, 4.5, 6.5, 7.5, 8.5, 10.5, 11.5, 12.5},
       {0.25, 0.75, 1.25, 0.75, 1.25, 3.0, 4.0, 2.25, 2.75, 6.0, 7.0, 3.75, 1.75, 3.75, 4.25, 2.25}},
      {"3x4_to_5x7", DType::float64, 3, 4, 5, 7,
       {0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 8.0, 8.5, 9.0, 9.5, 10.0, 10.5, 11.0},
       {8.25, 16.0, 22.0, 20.25, 46.0, 68.0, 76.0, 62.0, 60.75, 86.0, 92.0, 72.75}},
      {"3x4_to_5x7", DType::float32, 3, 4, 5, 7,
       {0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 8.0, 8.5, 9.0, 9.5, 10.0, 10.5, 11.0},
       {8.25, 16.0, 22.0, 20.25, 46.0, 68.0, 76.0, 62.0, 60.75, 86.0, 92.0, 72.75}},
      {"6x5_to_4x2", DType::float64, 6, 5, 4, 2,
       {3.5, 5.5, 8.5, 10.5, 18.5, 20.5, 23.5, 25.5},
       {0.16666666666666666, 0.16666666666666666, 0.5, 0.3333333333333333, 0.3333333333333333, 0.6666666666666666, 0.6666666666666666, 1.6666666666666665, 1.0, 1.0, 0.5, 0.5, 1.1666666666666665, 0.6666666666666666, 0.6666666666666666, 0.8333333333333334, 0.8333333333333334, 1.8333333333333335, 1.0, 1.0, 2.0, 2.0, 4.333333333333333, 2.333333333333333, 2.333333333333333, 1.1666666666666667, 1.1666666666666667, 2.5, 1.3333333333333333, 1.3333333333333333}},
      {"6x5_to_4x2", DType::float32, 6, 5, 4, 2,
       {3.5, 5.5, 8.5, 10.5, 18.5, 20.5, 23.5, 25.5},
       {0.1666666716337204, 0.1666666716337204, 0.5, 0.3333333432674408, 0.3333333432674408, 0.6666666865348816, 0.6666666865348816, 1.6666667461395264, 1.0, 1.0, 0.5, 0.5, 1.1666667461395264, 0.6666666865348816, 0.6666666865348816, 0.8333333134651184, 0.8333333134651184, 1.8333332538604736, 1.0, 1.0, 2.0, 2.0, 4.333333492279053, 2.3333334922790527, 2.3333334922790527, 1.1666666269302368, 1.1666666269302368, 2.5, 1.3333333730697632, 1.3333333730697632}},
      {"2x3_to_1x1", DType::float64, 2, 3, 1, 1,
       {2.5},
       {0.16666666666666666, 0.16666666666666666, 0.16666666666666666, 0.16666666666666666, 0.16666666666666666, 0.16666666666666666}},
      {"2x3_to_1x1", DType::float32, 2, 3, 1, 1,
       {2.5},
       {0.1666666716337204, 0.1666666716337204, 0.1666666716337204, 0.1666666716337204, 0.1666666716337204, 0.1666666716337204}},
  };
  return rows;
}
// clang-format on

std::vector<double> iota_values(int64_t n, double first) {
  std::vector<double> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

TEST(AdaptiveAvgPoolTorch, ValuesAndGradientsMatchTorch113) {
  for (const AdaptivePoolRow& r : torch_rows()) {
    SCOPED_TRACE(::testing::Message() << r.name << " " << dtype_name(r.dtype));
    Tensor x = from_vector(iota_values(r.H * r.W, 0), {1, 1, r.H, r.W}, {.dtype = DType::float64})
                   .to(r.dtype);
    x.set_requires_grad(true);
    const Tensor y = adaptive_avg_pool2d(x, {r.oh, r.ow});
    ASSERT_EQ(y.sizes(), (Shape{1, 1, r.oh, r.ow}));
    ASSERT_EQ(y.dtype(), r.dtype);
    y.backward(
        from_vector(iota_values(r.oh * r.ow, 1), y.sizes(), {.dtype = DType::float64}).to(r.dtype));
    // Sums of a few exact integers, one division: within an ulp or two of torch's order.
    const double tol = r.dtype == DType::float64 ? 1e-15 : 3e-7;
    const std::vector<double> got_y = y.to_vector<double>(), got_g = x.grad().to_vector<double>();
    ASSERT_EQ(got_y.size(), r.y.size());
    ASSERT_EQ(got_g.size(), r.grad.size());
    for (size_t i = 0; i < got_y.size(); ++i)
      EXPECT_LE(std::abs(got_y[i] - r.y[i]), tol * std::max(1.0, std::abs(r.y[i])))
          << "output " << i << ": " << got_y[i] << " vs torch " << r.y[i];
    for (size_t i = 0; i < got_g.size(); ++i)
      EXPECT_LE(std::abs(got_g[i] - r.grad[i]), tol * std::max(1.0, std::abs(r.grad[i])))
          << "input gradient " << i << ": " << got_g[i] << " vs torch " << r.grad[i];
  }
}

// A single output size is square; unbatched input keeps its rank; a zero batch or a zero output
// size gives an empty result (torch allows both).
TEST(AdaptiveAvgPoolTorch, OutputShapes) {
  struct Row {
    Shape x;
    std::vector<int64_t> output_size;
    Shape want;
  };
  const std::vector<Row> rows = {
      {{2, 3, 7, 5}, {1}, {2, 3, 1, 1}},
      {{2, 3, 7, 5}, {4, 2}, {2, 3, 4, 2}},
      {{3, 7, 5}, {9}, {3, 9, 9}},
      {{0, 3, 7, 5}, {2, 3}, {0, 3, 2, 3}},
      {{1, 2, 3, 3}, {0, 1}, {1, 2, 0, 1}},
      // torch checks every dim but the first whatever the rank: no channels pass unbatched.
      {{0, 3, 3}, {2}, {0, 2, 2}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(shape_str(r.x) + " -> " + shape_str(r.output_size));
    EXPECT_EQ(adaptive_avg_pool2d(randn(r.x), r.output_size).sizes(), r.want);
  }
  // The gradient of an empty output is zero, not garbage.
  Tensor x = randn({1, 2, 3, 3});
  x.set_requires_grad(true);
  sum(adaptive_avg_pool2d(x, {0, 2})).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), std::vector<float>(18, 0.f));
  Tensor none = zeros({0, 3, 3});
  none.set_requires_grad(true);
  sum(adaptive_avg_pool2d(none, {2})).backward();
  EXPECT_EQ(none.grad().sizes(), (Shape{0, 3, 3}));
}

TEST(AdaptiveAvgPoolTorch, ErrorsAsTorch) {
  const Tensor x = zeros({1, 2, 4, 4});
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    adaptive_avg_pool2d(x, {-1, 2});
                  }),
                  "adaptive_avg_pool2d: elements of output_size must be greater than or equal to "
                  "0, got (-1, 2)");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    adaptive_avg_pool2d(x, {2, 2, 2});
                  }),
                  "adaptive_avg_pool2d: output_size must have 1 or 2 elements");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    adaptive_avg_pool2d(zeros({4, 4}), {2});
                  }),
                  "adaptive_avg_pool2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got "
                  "(4, 4)");
  for (const Shape& s : {Shape{1, 2, 0, 3}, Shape{1, 0, 3, 3}, Shape{2, 3, 0}}) {
    EXPECT_CONTAINS(thrown<ShapeError>([&] { adaptive_avg_pool2d(zeros(s), {2}); }),
                    "non-zero sizes for the non-batch dimensions, but input " + shape_str(s));
  }
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    adaptive_avg_pool2d(zeros({1, 3, 3}, {.dtype = DType::int64}), {2});
                  }),
                  "adaptive_avg_pool2d: input (1, 3, 3) int64 has an unsupported dtype");
}

TEST(AdaptiveAvgPoolTorch, NodeNameIsTorchs) {
  Tensor x = zeros({1, 2, 4, 4});
  x.set_requires_grad(true);
  EXPECT_EQ(grad_fn_name(adaptive_avg_pool2d(x, {2})), "AdaptiveAvgPool2DBackward0");
}

// To 1 x 1 torch takes the mean over the spatial dims (its bits, its MeanBackward1 node): so do
// we, for 4-D and 3-D inputs in every dtype, with mean's gradient.
TEST(AdaptiveAvgPoolTorch, OneByOneIsTheSpatialMean) {
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    for (const Shape& shape : {Shape{4, 8, 7, 7}, Shape{3, 5, 9}}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + shape_str(shape));
      Tensor x = randn(shape).to(dt).set_requires_grad(true);
      const Tensor y = adaptive_avg_pool2d(x, {1, 1});
      EXPECT_EQ(grad_fn_name(y), "MeanBackward1");
      const Tensor m = mean(x.detach(), {-2, -1}, true);
      EXPECT_EQ(y.sizes(), m.sizes());
      EXPECT_EQ(y.detach().to(DType::float64).to_vector<double>(),
                m.to(DType::float64).to_vector<double>());
      sum(y).backward();
      const Tensor expected = full(
          shape, 1.0 / double(shape[shape.size() - 1] * shape[shape.size() - 2]), {.dtype = dt});
      EXPECT_EQ(x.grad().to(DType::float64).to_vector<double>(),
                expected.to(DType::float64).to_vector<double>());
    }
  }
}

}  // namespace
}  // namespace fabric
