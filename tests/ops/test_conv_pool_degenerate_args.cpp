// Degenerate convolution and pooling arguments as torch 1.13 treats them: a zero-channel input
// to conv1d/2d/3d gives torch's empty result (output channels dropped) and gradients; a weight
// of no output channels, a zero-channel transposed convolution and a zero kernel are refused;
// negative pool padding and the 1-d pools' shape errors get their own messages. Shapes and
// gradients from torch 1.13 (F.conv*d on torch.ones, y.sum().backward()).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/functional_pool1d.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

Tensor o(Shape s, DType dt = DType::float32) { return ones(s, {.dtype = dt}); }

std::vector<double> as_doubles(const Tensor& t) {
  Tensor c = t.to(DType::float64).contiguous();
  const double* p = static_cast<const double*>(c.data_ptr());
  return std::vector<double>(p, p + c.numel());
}

void expect_parts(const std::string& msg, const std::vector<std::string>& parts) {
  for (const std::string& part : parts) EXPECT_CONTAINS(msg, part);
}

// torch: F.conv2d(ones(2,0,4,4), ones(3,0,2,2), ones(3)) -> [2, 0, 3, 3]; after
// y.sum().backward(): x.grad [2, 0, 4, 4], w.grad [3, 0, 2, 2], bias.grad [0, 0, 0].
TEST(ConvDegenerateArgs, ZeroChannelInputGivesTorchsEmptyResultAndGradients) {
  Tensor x = o({2, 0, 4, 4}), w = o({3, 0, 2, 2}), b = o({3});
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  Tensor y = conv2d(x, w, b);
  EXPECT_EQ(y.sizes(), (Shape{2, 0, 3, 3}));
  sum(y).backward();
  EXPECT_EQ(x.grad().sizes(), (Shape{2, 0, 4, 4}));
  EXPECT_EQ(w.grad().sizes(), (Shape{3, 0, 2, 2}));
  EXPECT_EQ(b.grad().sizes(), (Shape{3}));
  EXPECT_EQ(as_doubles(b.grad()), (std::vector<double>{0, 0, 0}));
}

// torch: autograd.grad(y.sum(), [x, w], create_graph=True) gives x [2, 0, 4, 4] and w
// [3, 0, 2, 2]; differentiating them again raises nothing. (Without a bias: under create_graph the
// bias rule sums grad_out's zero channels, which autograd/derivatives_conv.cpp's bias_grad does
// not yet widen to the weight's output channels.)
TEST(ConvDegenerateArgs, ZeroChannelInputDifferentiatesTwice) {
  Tensor x = o({2, 0, 4, 4}), w = o({3, 0, 2, 2});
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  const std::vector<Tensor> g = fabric::grad({sum(conv2d(x, w))}, {x, w}, {}, true, true);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].sizes(), (Shape{2, 0, 4, 4}));
  EXPECT_EQ(g[1].sizes(), (Shape{3, 0, 2, 2}));
  const std::vector<Tensor> gg =
      fabric::grad({add(sum(g[0]), sum(g[1]))}, {x, w}, {}, std::nullopt, false, true);
  for (const Tensor& t : gg)
    if (t.defined()) EXPECT_EQ(t.numel(), 0);
  // With a bias, under create_graph: its gradient is zeros of the bias's length (torch's).
  Tensor b = o({3});
  b.set_requires_grad(true);
  const std::vector<Tensor> gb = fabric::grad({sum(conv2d(x, w, b))}, {b}, {}, true, true);
  EXPECT_EQ(gb[0].to_vector<float>(), (std::vector<float>{0, 0, 0}));
}

TEST(ConvDegenerateArgs, ZeroChannelInputShapesOfEveryRank) {
  EXPECT_EQ(conv2d(o({2, 0, 4, 4}), o({3, 0, 2, 2})).sizes(), (Shape{2, 0, 3, 3}));
  EXPECT_EQ(conv2d(o({0, 4, 4}), o({3, 0, 2, 2})).sizes(), (Shape{0, 3, 3}));
  EXPECT_EQ(conv2d(o({0, 4, 4}), o({3, 0, 2, 2}), o({3})).sizes(), (Shape{0, 3, 3}));
  EXPECT_EQ(conv2d(o({0, 0, 4, 4}), o({3, 0, 2, 2})).sizes(), (Shape{0, 0, 3, 3}));
  EXPECT_EQ(conv1d(o({2, 0, 4}), o({3, 0, 2})).sizes(), (Shape{2, 0, 3}));
  EXPECT_EQ(conv3d(o({2, 0, 4, 4, 4}), o({3, 0, 2, 2, 2})).sizes(), (Shape{2, 0, 3, 3, 3}));
  EXPECT_EQ(conv3d(o({0, 4, 4, 4}), o({3, 0, 2, 2, 2})).sizes(), (Shape{0, 3, 3, 3}));
  // torch: F.conv2d(..., stride=2, padding=1, groups=2) -> [2, 0, 3, 3]; F.conv3d float64 with
  // dilation (1, 2, 1) -> [2, 0, 4, 2, 2].
  EXPECT_EQ(conv2d(o({2, 0, 4, 4}), o({4, 0, 2, 2}), o({4}), {2}, {1}, {1}, 2).sizes(),
            (Shape{2, 0, 3, 3}));
  EXPECT_EQ(conv3d(o({2, 0, 5, 4, 3}, DType::float64), o({3, 0, 2, 2, 2}, DType::float64), Tensor(),
                   {1}, {0}, {1, 2, 1})
                .sizes(),
            (Shape{2, 0, 4, 2, 2}));
}

// torch: F.conv1d(ones(0,4), ones(3,0,2), full((3,), 2.)) -> [0, 3]; grads x [0, 4], w [3, 0, 2],
// bias [0, 0, 0]. With groups=2: bias.grad [0, 0, 0, 0].
TEST(ConvDegenerateArgs, ZeroChannelGradientsUnbatchedAndGrouped) {
  {
    Tensor x = o({0, 4}), w = o({3, 0, 2}), b = full({3}, 2.0, {.dtype = DType::float32});
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    Tensor y = conv1d(x, w, b);
    EXPECT_EQ(y.sizes(), (Shape{0, 3}));
    sum(y).backward();
    EXPECT_EQ(x.grad().sizes(), (Shape{0, 4}));
    EXPECT_EQ(w.grad().sizes(), (Shape{3, 0, 2}));
    EXPECT_EQ(as_doubles(b.grad()), (std::vector<double>{0, 0, 0}));
  }
  {
    Tensor x = o({2, 0, 4, 4}), w = o({4, 0, 2, 2}), b = o({4});
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    sum(conv2d(x, w, b, {2}, {1}, {1}, 2)).backward();
    EXPECT_EQ(x.grad().sizes(), (Shape{2, 0, 4, 4}));
    EXPECT_EQ(w.grad().sizes(), (Shape{4, 0, 2, 2}));
    EXPECT_EQ(as_doubles(b.grad()), (std::vector<double>{0, 0, 0, 0}));
  }
}

// torch: "Given groups=1, expected weight to be at least 1 at dimension 0, but got weight of size
// [0, 2, 2, 2] instead" (zero-channel inputs and zero batches too).
TEST(ConvDegenerateArgs, WeightWithoutOutputChannelsIsRefused) {
  expect_parts(thrown<ShapeError>([] {
                 conv2d(o({2, 2, 4, 4}), o({0, 2, 2, 2}));
               }),
               {"conv2d: weight (0, 2, 2, 2) has 0 output channels (dimension 0)",
                "expected at least groups=1"});
  expect_parts(thrown<ShapeError>([] {
                 conv2d(o({2, 2, 4, 4}), o({0, 2, 2, 2}), o({0}));
               }),
               {"conv2d", "(0, 2, 2, 2)", "at least groups=1"});
  expect_parts(thrown<ShapeError>([] {
                 conv2d(o({0, 2, 4, 4}), o({0, 2, 2, 2}));
               }),
               {"conv2d", "(0, 2, 2, 2)", "at least groups=1"});
  expect_parts(thrown<ShapeError>([] {
                 conv2d(o({2, 0, 4, 4}), o({0, 0, 2, 2}));
               }),
               {"conv2d", "(0, 0, 2, 2)", "at least groups=1"});
  expect_parts(thrown<ShapeError>([] {
                 conv1d(o({1, 2, 4}), o({0, 2, 2}));
               }),
               {"conv1d: weight (0, 2, 2) has 0 output channels (dimension 0)",
                "expected at least groups=1"});
  expect_parts(thrown<ShapeError>([] {
                 conv3d(o({1, 2, 4, 4, 4}), o({0, 2, 2, 2, 2}));
               }),
               {"conv3d: weight (0, 2, 2, 2, 2) has 0 output channels (dimension 0)",
                "expected at least groups=1"});
  // torch: "Given groups=2, expected weight to be at least 2 at dimension 0, but got weight of
  // size [1, 1, 2, 2] instead".
  expect_parts(thrown<ShapeError>([] {
                 conv2d(o({1, 2, 4, 4}), o({1, 1, 2, 2}), Tensor(), {1}, {0}, {1}, 2);
               }),
               {"conv2d", "(1, 1, 2, 2) has 1 output channels", "at least groups=2"});
}

// torch: "Given groups=1, expected weight to be at least 1 at dimension 0, but got weight of size
// [0, 3, 2, 2] instead".
TEST(ConvDegenerateArgs, ZeroChannelTransposedConvolutionIsRefused) {
  expect_parts(thrown<ShapeError>([] {
                 conv_transpose2d(o({2, 0, 4, 4}), o({0, 3, 2, 2}));
               }),
               {"conv_transpose2d: weight (0, 3, 2, 2) has 0 input channels (dimension 0)",
                "expected at least groups=1", "zero-channel inputs are not supported"});
  expect_parts(thrown<ShapeError>([] {
                 conv_transpose2d(o({1, 0, 2, 2}), o({0, 3, 2, 2}), o({3}));
               }),
               {"conv_transpose2d", "(0, 3, 2, 2)", "zero-channel"});
  expect_parts(thrown<ShapeError>([] {
                 conv_transpose2d(o({0, 4, 4}), o({0, 3, 2, 2}));
               }),
               {"conv_transpose2d", "(0, 3, 2, 2)", "zero-channel"});
  expect_parts(thrown<ShapeError>([] {
                 conv_transpose3d(o({2, 0, 4, 4, 4}), o({0, 3, 2, 2, 2}));
               }),
               {"conv_transpose3d: weight (0, 3, 2, 2, 2) has 0 input channels", "zero-channel"});
  // conv_transpose1d refuses it in its own name and shapes.
  expect_parts(thrown<ShapeError>([] {
                 conv_transpose1d(o({2, 0, 4}), o({0, 3, 2}), o({3}));
               }),
               {"conv_transpose1d: weight (0, 3, 2) has 0 input channels",
                "zero-channel inputs are not supported"});
  // An empty image is refused with a message that no longer claims zero channels pass.
  const std::string msg = thrown<ShapeError>([] {
    conv_transpose2d(o({1, 2, 0, 4}), o({2, 3, 2, 2}));
  });
  expect_parts(msg, {"conv_transpose2d: only zero batch inputs are supported", "(1, 2, 0, 4)"});
  EXPECT_EQ(msg.find("zero channel inputs are supported"), std::string::npos) << msg;
}

// torch: "kernel size should be greater than zero, but got kernel_height: 0 kernel_width: 2";
// fabric used to report a padded-input/kernel misfit with a dilated kernel of (0 x 2) or (-2 x 4).
TEST(ConvDegenerateArgs, ZeroKernelIsRefusedBeforeTheFitCheck) {
  EXPECT_EQ(thrown<ShapeError>([] {
              conv2d(o({1, 2, 4, 4}), o({3, 2, 0, 2}));
            }),
            "conv2d: kernel size should be greater than zero, but got kernel (0 x 2) of weight "
            "(3, 2, 0, 2)");
  EXPECT_EQ(thrown<ShapeError>([] {
              conv2d(o({1, 2, 4, 4}), o({3, 2, 0, 2}), Tensor(), {1}, {0}, {3});
            }),
            "conv2d: kernel size should be greater than zero, but got kernel (0 x 2) of weight "
            "(3, 2, 0, 2)");
  EXPECT_EQ(thrown<ShapeError>([] {
              conv2d(o({1, 2, 4, 4}), o({3, 2, 0, 2}), Tensor(), {1}, {1});
            }),
            "conv2d: kernel size should be greater than zero, but got kernel (0 x 2) of weight "
            "(3, 2, 0, 2)");
  EXPECT_EQ(thrown<ShapeError>([] {
              conv3d(o({1, 2, 4, 4, 4}), o({3, 2, 2, 0, 2}));
            }),
            "conv3d: kernel size should be greater than zero, but got kernel (2, 0, 2) of weight "
            "(3, 2, 2, 0, 2)");
  EXPECT_EQ(thrown<ShapeError>([] {
              conv1d(o({1, 2, 4}), o({3, 2, 0}));
            }),
            "conv1d: kernel size should be greater than zero, but got 0 (weight (3, 2, 0))");
  EXPECT_EQ(thrown<ShapeError>([] {
              conv1d(o({1, 2, 4}), o({3, 2, 0}), Tensor(), 1, 0, 3);
            }),
            "conv1d: kernel size should be greater than zero, but got 0 (weight (3, 2, 0))");
  // A kernel that is positive but too big still gets the fit message.
  expect_parts(thrown<ShapeError>([] {
                 conv1d(o({1, 2, 4}), o({3, 2, 5}));
               }),
               {"conv1d: the padded input length (4)", "dilated kernel (5)"});
}

// torch: "pad must be non-negative, but got pad: -1" (max/avg, 2-d and 3-d).
TEST(PoolDegenerateArgs, NegativePaddingHasItsOwnMessage) {
  EXPECT_EQ(thrown<ValueError>([] {
              max_pool2d(o({1, 1, 4, 4}), {2}, {1}, {-1});
            }),
            "max_pool2d: pad must be non-negative, but got padding (-1, -1)");
  EXPECT_EQ(thrown<ValueError>([] {
              avg_pool2d(o({1, 1, 4, 4}), {2}, {1}, {0, -1});
            }),
            "avg_pool2d: pad must be non-negative, but got padding (0, -1)");
  EXPECT_EQ(thrown<ValueError>([] {
              max_pool3d(o({1, 1, 4, 4, 4}), {2}, {1}, {-1});
            }),
            "max_pool3d: pad must be non-negative, but got padding (-1, -1, -1)");
  EXPECT_EQ(thrown<ValueError>([] {
              avg_pool3d(o({1, 1, 4, 4, 4}), {2}, {1}, {0, -1, 0});
            }),
            "avg_pool3d: pad must be non-negative, but got padding (0, -1, 0)");
  EXPECT_EQ(thrown<ValueError>([] {
              nn::max_pool1d(o({1, 1, 4}), 2, 1, -1);
            }),
            "max_pool1d: pad must be non-negative, but got padding -1");
  EXPECT_EQ(thrown<ValueError>([] {
              nn::avg_pool1d(o({1, 1, 4}), 2, 1, -1);
            }),
            "avg_pool1d: pad must be non-negative, but got padding -1");
  // Too much padding keeps its message.
  expect_parts(thrown<ValueError>([] {
                 max_pool2d(o({1, 1, 4, 4}), {2}, {1}, {0, 2});
               }),
               {"max_pool2d: pad should be at most half of the kernel size", "(0, 2)"});
  expect_parts(thrown<ValueError>([] {
                 max_pool3d(o({1, 1, 4, 4, 4}), {2}, {1}, {0, 2, 0});
               }),
               {"max_pool3d: pad should be at most half of the kernel size", "(0, 2, 0)"});
}

// torch names max_pool1d and the 3-D shape for empty dims ("max_pool1d: Expected 2D or 3D (batch
// mode) tensor with optional 0 dim batch size for input, but got:[2, 0, 4]"); a window larger
// than the padded input is refused (torch's autograd path: "Output size is too small").
TEST(PoolDegenerateArgs, OneDimPoolsNameThemselvesAndTheCallersShape) {
  EXPECT_EQ(thrown<ShapeError>([] {
              nn::max_pool1d(o({1, 1, 3}), 4);
            }),
            "max_pool1d: output size is too small: input (1, 1, 3) with kernel_size 4, stride 4, "
            "padding 0");
  EXPECT_EQ(thrown<ShapeError>([] {
              nn::avg_pool1d(o({1, 3}), 4, 1);
            }),
            "avg_pool1d: output size is too small: input (1, 3) with kernel_size 4, stride 1, "
            "padding 0");
  EXPECT_EQ(thrown<ShapeError>([] {
              nn::max_pool1d(o({2, 0, 4}), 2);
            }),
            "max_pool1d: expected a 2-D or 3-D (batch mode) input with non-zero sizes but an "
            "optional zero batch, got (2, 0, 4)");
  EXPECT_EQ(thrown<ShapeError>([] {
              nn::avg_pool1d(o({2, 1, 0}), 2);
            }),
            "avg_pool1d: expected a 2-D or 3-D (batch mode) input with non-zero sizes but an "
            "optional zero batch, got (2, 1, 0)");
  EXPECT_EQ(thrown<ShapeError>([] {
              nn::max_pool1d(o({0, 4}), 2);
            }),
            "max_pool1d: expected a 2-D or 3-D (batch mode) input with non-zero sizes but an "
            "optional zero batch, got (0, 4)");
  EXPECT_EQ(thrown<ShapeError>([] {
              nn::adaptive_avg_pool1d(o({2, 1, 0}), 2);
            }),
            "adaptive_avg_pool1d: expected the input to have non-zero sizes for the non-batch "
            "dimensions, but input (2, 1, 0) has dimension 2 empty");
  // torch: a zero batch passes ([0, 1, 2]); padding that makes the window fit passes ([1, 1, 3]).
  EXPECT_EQ(nn::max_pool1d(o({0, 1, 4}), 2).sizes(), (Shape{0, 1, 2}));
  EXPECT_EQ(nn::avg_pool1d(o({0, 1, 4}), 2).sizes(), (Shape{0, 1, 2}));
  EXPECT_EQ(nn::max_pool1d(o({1, 1, 3}), 5, 1, 2).sizes(), (Shape{1, 1, 3}));
}

}  // namespace
}  // namespace fabric
