// conv2d/conv3d and conv_transpose2d/3d share one code path per pair (ops_conv.cpp,
// ops_conv_transpose.cpp); each rank's error messages stay the ones it had before the merge.
// These pin the messages where the ranks differ (conv2d checks ranks up front and names dtypes,
// names itself in attribute messages of its gradients, spells extents "(a x b)").
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_conv3d.h"
#include "tensor/ops_backward_linalg.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

Tensor z(Shape s) { return zeros(s, {.dtype = DType::float32}); }

TEST(ConvNdMessages, WeightRank) {
  EXPECT_EQ(thrown<ShapeError>([] { conv2d(z({1, 2, 4, 4}), z({3, 2, 3})); }),
            "conv2d: weight must be 4-D (out_channels, in_channels/groups, kH, kW), got (3, 2, 3) "
            "float32");
  EXPECT_EQ(thrown<ShapeError>([] { conv3d(z({1, 2, 4, 4, 4}), z({3, 2, 3, 3})); }),
            "conv3d: weight must be 5-D (out_channels, in_channels/groups, kD, kH, kW), got (3, 2, "
            "3, 3)");
}

TEST(ConvNdMessages, InputRank) {
  EXPECT_EQ(thrown<ShapeError>([] { conv2d(z({4, 4}), z({3, 2, 3, 3})); }),
            "conv2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got (4, 4) float32");
  EXPECT_EQ(thrown<ShapeError>([] { conv3d(z({4, 4}), z({3, 2, 3, 3, 3})); }),
            "conv3d: expected a 4-D (C, D, H, W) or 5-D (N, C, D, H, W) input, got (4, 4)");
}

TEST(ConvNdMessages, Bias) {
  EXPECT_EQ(thrown<ShapeError>([] { conv2d(z({1, 2, 4, 4}), z({3, 2, 3, 3}), z({2})); }),
            "conv2d: bias (2,) float32 must be 1-D with 3 elements (weight (3, 2, 3, 3))");
  EXPECT_EQ(thrown<ShapeError>([] { conv3d(z({1, 2, 4, 4, 4}), z({3, 2, 3, 3, 3}), z({2})); }),
            "conv3d: bias (2,) float32 must be 1-D with one element per output channel of weight "
            "(3, 2, 3, 3, 3)");
}

TEST(ConvNdMessages, AttributesAndKernelFit) {
  EXPECT_EQ(thrown<ValueError>([] { conv3d(z({1, 2, 4, 4, 4}), z({3, 2, 3, 3, 3}), {}, {1, 1}); }),
            "conv3d: stride must have 1 or 3 elements, got (1, 1)");
  EXPECT_EQ(thrown<ValueError>([] { conv2d(z({1, 2, 4, 4}), z({3, 2, 3, 3}), {}, {1}, {-1}); }),
            "conv2d: padding must be non-negative, got (-1, -1)");
  EXPECT_EQ(thrown<ShapeError>([] { conv2d(z({1, 2, 4, 4}), z({3, 2, 5, 3})); }),
            "conv2d: the padded input (4 x 4) of (1, 2, 4, 4) is smaller than the dilated kernel "
            "(5 x 3) of weight (3, 2, 5, 3)");
  EXPECT_EQ(thrown<ShapeError>([] { conv3d(z({1, 2, 4, 4, 4}), z({3, 2, 5, 3, 3})); }),
            "conv3d: the padded input (4, 4, 4) of (1, 2, 4, 4, 4) is smaller than the dilated "
            "kernel (5, 3, 3) of weight (3, 2, 5, 3, 3)");
}

// With two bad attributes, conv2d names the first bad attribute in (stride, padding, dilation)
// order, conv3d the first in dim order.
TEST(ConvNdMessages, FirstBadAttribute) {
  EXPECT_EQ(thrown<ValueError>([] { conv2d(z({1, 2, 4, 4}), z({3, 2, 3, 3}), {}, {1, 0}, {-1, 0}); }),
            "conv2d: stride must be positive, got (1, 0)");
  EXPECT_EQ(thrown<ValueError>([] {
              conv3d(z({1, 2, 4, 4, 4}), z({3, 2, 3, 3, 3}), {}, {1, 0, 1}, {-1, 0, 0});
            }),
            "conv3d: padding must be non-negative, got (-1, 0, 0)");
}

// conv2d's gradients name conv2d in attribute messages; conv3d's name themselves.
TEST(ConvNdMessages, GradientAttributes) {
  const Conv2dAttrs bad{{1, 1, 1, 1}, {0}, {1}, 1};
  EXPECT_EQ(thrown<ValueError>([&] { conv2d_backward_input(z({1, 3, 2, 2}), z({3, 2, 3, 3}),
                                                           {1, 2, 4, 4}, bad); }),
            "conv2d: stride must have 1 or 2 elements, got (1, 1, 1, 1)");
  EXPECT_EQ(thrown<ValueError>([&] { conv3d_backward_input(z({1, 3, 2, 2, 2}),
                                                           z({3, 2, 3, 3, 3}), {1, 2, 4, 4, 4},
                                                           bad); }),
            "conv3d_backward_input: stride must have 1 or 3 elements, got (1, 1, 1, 1)");
}

TEST(ConvNdMessages, TransposedOutputTooSmall) {
  EXPECT_EQ(thrown<ShapeError>([] {
              conv_transpose2d(z({1, 2, 1, 1}), z({2, 3, 1, 1}), {}, {1}, {1});
            }),
            "conv_transpose2d: given input size per channel (1 x 1), the calculated output size "
            "per channel (-1 x -1) is too small");
  EXPECT_EQ(thrown<ShapeError>([] {
              conv_transpose3d(z({1, 2, 1, 1, 1}), z({2, 3, 1, 1, 1}), {}, {1}, {1});
            }),
            "conv_transpose3d: given input (1, 2, 1, 1, 1), the calculated output size per channel "
            "(-1, -1, -1) is too small");
  EXPECT_EQ(thrown<ValueError>([] {
              conv_transpose3d(z({1, 2, 2, 2, 2}), z({2, 3, 1, 1, 1}), {}, {1}, {0}, {0}, 1,
                               {1, 0, 1});
            }),
            "conv_transpose3d: dilation must be positive, got 0 (height)");
}

// conv1d and conv_transpose1d run as the 2-d ops over a unit height; a non-float input is
// refused in their own name and the caller's 3-D shape, not conv2d's unsqueezed 4-D one.
TEST(ConvNdMessages, OneDimConvsRefuseNonFloatInputsInTheirOwnShapes) {
  const Tensor i = zeros({1, 2, 4}, {.dtype = DType::int64});
  const Tensor wi = zeros({2, 2, 2}, {.dtype = DType::int64});
  const Tensor b = zeros({1, 2, 4}, {.dtype = DType::bool_});
  const Tensor wb = zeros({2, 2, 2}, {.dtype = DType::bool_});
  const std::string supported =
      " has an unsupported dtype; supported: float64, float32, "
      "bfloat16, float16";
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] { conv1d(i, wi); }, "conv1d: input (1, 2, 4) int64" + supported},
      {[&] { conv1d(b, wb); }, "conv1d: input (1, 2, 4) bool" + supported},
      {[&] {
         conv1d(i, z({2, 2, 2}));
       },
       "conv1d: input (1, 2, 4) int64" + supported},
      {[&] { conv_transpose1d(i, wi); }, "conv_transpose1d: input (1, 2, 4) int64" + supported},
      {[&] { conv_transpose1d(b, wb); }, "conv_transpose1d: input (1, 2, 4) bool" + supported},
      {[&] {
         conv_transpose1d(z({1, 2, 4}), wi);
       },
       "conv_transpose1d: input (1, 2, 4) float32 and weight (2, 2, 2) int64 must have the same "
       "dtype"},
  };
  for (const auto& [call, message] : cases) {
    SCOPED_TRACE(message);
    EXPECT_EQ(thrown<DTypeError>(call), message);
  }
  // Float inputs of each kind stay accepted.
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16}) {
    const Tensor x = zeros({1, 2, 4}, {.dtype = dt}), w = zeros({2, 2, 2}, {.dtype = dt});
    EXPECT_EQ(conv1d(x, w).sizes(), (Shape{1, 2, 3}));
    EXPECT_EQ(conv_transpose1d(x, w).sizes(), (Shape{1, 2, 5}));
  }
}

}  // namespace
}  // namespace fabric
