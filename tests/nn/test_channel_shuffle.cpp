// ChannelShuffle and F.channel_shuffle / native_channel_shuffle as torch 1.13: the channel orders
// torch gives (literals below, from torch's channel_shuffle of arange(C).view(1, C, 1)), any rank
// from 3 and any dtype, the inverse shuffle as gradient, empty inputs returned as they are, the
// repr and torch's errors in torch's order.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nn/channel_shuffle.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/common/same_bits.h"

namespace fabric::nn {
namespace {

struct Order {
  int64_t channels, groups;
  std::vector<int64_t> from;  // output channel k is input channel from[k] (torch's)
};

const std::vector<Order>& torch_orders() {
  static const std::vector<Order> orders = {
      {4, 2, {0, 2, 1, 3}},
      {6, 3, {0, 2, 4, 1, 3, 5}},
      {6, 2, {0, 3, 1, 4, 2, 5}},
      {12, 4, {0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11}},
      {12, 3, {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}},
      {8, 2, {0, 4, 1, 5, 2, 6, 3, 7}},
      {4, 4, {0, 1, 2, 3}},
      {4, 1, {0, 1, 2, 3}},
  };
  return orders;
}

// x with its channels (dim 1) taken in the order `from`: what the shuffle must equal, bit for bit.
Tensor channels_in_order(const Tensor& x, const std::vector<int64_t>& from) {
  std::vector<Tensor> picked;
  for (int64_t c : from) picked.push_back(x.narrow(1, c, 1));
  return cat(picked, 1);
}

TEST(ChannelShuffle, TorchChannelOrderOnEveryRank) {
  for (const Order& o : torch_orders()) {
    for (const Shape& rest : {Shape{}, Shape{3}, Shape{2, 3}, Shape{2, 1, 3}, Shape{1, 2, 1, 2}}) {
      Shape shape{2, o.channels};
      shape.insert(shape.end(), rest.begin(), rest.end());
      if (shape.size() < 3) continue;  // torch needs more than 2 dims
      SCOPED_TRACE(shape_str(shape) + " groups " + std::to_string(o.groups));
      const Tensor x = randn(shape);
      const Tensor y = channel_shuffle(x, o.groups);
      expect_same_bits(y, channels_in_order(x, o.from), "channel_shuffle");
      expect_same_bits(native_channel_shuffle(x, o.groups), y, "native_channel_shuffle");
      expect_same_bits((*make<ChannelShuffle>({.groups = o.groups}))(x), y, "ChannelShuffle");
    }
  }
}

TEST(ChannelShuffle, AnyDtypeAndLayout) {
  const Tensor ints = arange(24, DType::int64).view({2, 4, 3});
  // torch: channel_shuffle(torch.arange(24).view(2, 4, 3), 2)
  const std::vector<int64_t> want = {0,  1,  2,  6,  7,  8,  3,  4,  5,  9,  10, 11,
                                     12, 13, 14, 18, 19, 20, 15, 16, 17, 21, 22, 23};
  EXPECT_EQ(channel_shuffle(ints, 2).to_vector<int64_t>(), want);
  const Tensor flags = gt(randn({2, 4, 3}), 0.0);
  expect_same_bits(channel_shuffle(flags, 2), channels_in_order(flags, {0, 2, 1, 3}), "bool");
  const Tensor halves = randn({2, 6, 2}).to(DType::bfloat16);
  expect_same_bits(channel_shuffle(halves, 3), channels_in_order(halves, {0, 2, 4, 1, 3, 5}),
                   "bfloat16");
  // A non-contiguous input (torch's kernel reads it through a contiguous copy).
  const Tensor t = randn({2, 3, 4}).transpose(1, 2);
  ASSERT_FALSE(t.is_contiguous());
  const Tensor y = channel_shuffle(t, 2);
  EXPECT_TRUE(y.is_contiguous());
  expect_same_bits(y, channels_in_order(t, {0, 2, 1, 3}), "transposed");
}

TEST(ChannelShuffle, NativeTakesTwoDims) {
  // torch.native_channel_shuffle(torch.arange(8).view(2, 4), 2): unchecked, a 2-D input works.
  const Tensor x = arange(8, DType::int64).view({2, 4});
  EXPECT_EQ(native_channel_shuffle(x, 2).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 2, 1, 3, 4, 6, 5, 7}));
  // torch.native_channel_shuffle(torch.arange(12).view(2, 6, 1, 1, 1, 1), 3)
  const Tensor six = arange(12, DType::int64).view({2, 6, 1, 1, 1, 1});
  EXPECT_EQ(native_channel_shuffle(six, 3).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11}));
}

TEST(ChannelShuffle, GradientIsTheInverseShuffle) {
  // torch 1.13 raises "derivative for channel_shuffle is not implemented" in backward; the
  // composition's gradient is the inverse permutation (what later torch computes), exact.
  Tensor x = randn({2, 6, 3});
  x.set_requires_grad(true);
  const Tensor y = channel_shuffle(x, 3);
  const Tensor g = randn({2, 6, 3});
  y.backward(g);
  // from = {0, 2, 4, 1, 3, 5}: input channel from[k] received output channel k's gradient.
  expect_same_bits(x.grad(), channels_in_order(g, {0, 3, 1, 4, 2, 5}), "input gradient");
  expect_same_bits(x.grad(), channel_shuffle(g, 2), "the shuffle with C / groups groups");
}

TEST(ChannelShuffle, EmptyInputIsReturnedItself) {
  for (const Shape& shape : {Shape{0, 4, 3}, Shape{2, 0, 3}, Shape{2, 4, 0}}) {
    SCOPED_TRACE(shape_str(shape));
    Tensor x = zeros(shape);
    x.set_requires_grad(true);
    const Tensor y = channel_shuffle(x, 2);
    EXPECT_TRUE(y.is_same(x));  // torch: `channel_shuffle(x, 2) is x`
  }
}

TEST(ChannelShuffle, TorchErrorsInTorchOrder) {
  // torch: "channel_shuffle expects input with > 2 dims, but got input with sizes [2, 4]".
  EXPECT_EQ(thrown<ShapeError>([] {
              channel_shuffle(zeros({2, 4}), 2);
            }),
            "channel_shuffle expects input with > 2 dims, but got input with sizes [2, 4]");
  EXPECT_EQ(thrown<ShapeError>([] {
              channel_shuffle(zeros({0, 4}), 0);
            }),
            "channel_shuffle expects input with > 2 dims, but got input with sizes [0, 4]");
  EXPECT_EQ(thrown<ShapeError>([] { channel_shuffle(zeros({4}), 2); }),
            "channel_shuffle expects input with > 2 dims, but got input with sizes [4]");
  for (int64_t groups : {0, -1}) {
    EXPECT_EQ(thrown<ValueError>([&] {
                channel_shuffle(zeros({2, 4, 3}), groups);
              }),
              "Number of groups to divide channels in must be positive. Value of groups:" +
                  std::to_string(groups));
  }
  EXPECT_EQ(thrown<ValueError>([] {
              channel_shuffle(zeros({0, 4, 3}), 0);
            }),
            "Number of groups to divide channels in must be positive. Value of groups:0");
  for (int64_t groups : {3, 8}) {
    EXPECT_EQ(thrown<ShapeError>([&] {
                channel_shuffle(zeros({2, 4, 3}), groups);
              }),
              "Number of channels must be divisible by groups. Got 4 channels and " +
                  std::to_string(groups) + " groups.");
  }
  // Checked before the empty input is returned, as torch.
  EXPECT_EQ(thrown<ShapeError>([] {
              channel_shuffle(zeros({0, 4, 3}), 3);
            }),
            "Number of channels must be divisible by groups. Got 4 channels and 3 groups.");
  // torch's native op divides by zero there; here it is an error.
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    native_channel_shuffle(zeros({2, 4, 3}), 0);
                  }),
                  "must be positive, got 0");
  EXPECT_CONTAINS(thrown<ValueError>([] { channel_shuffle(Tensor(), 2); }), "undefined input");
}

TEST(ChannelShuffle, ModuleReprAndChecksAtForward) {
  auto layer = make<ChannelShuffle>({.groups = 2});
  EXPECT_EQ(layer->str(), "ChannelShuffle(groups=2)");
  EXPECT_TRUE(layer->state_dict().empty());
  // torch builds ChannelShuffle(-1) and raises only when called.
  auto negative = make<ChannelShuffle>({.groups = -1});
  EXPECT_EQ(negative->str(), "ChannelShuffle(groups=-1)");
  EXPECT_CONTAINS(thrown<ValueError>([&] { (*negative)(zeros({2, 4, 3})); }), "Value of groups:-1");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    (*make<ChannelShuffle>({}))(zeros({2, 4, 3}));
                  }),
                  "Value of groups:0");
}

}  // namespace
}  // namespace fabric::nn
