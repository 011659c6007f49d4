// interpolate "nearest" with a scale_factor whose sizes are the identity or a doubling: torch 1.13
// reads o and o/2 there only in its channels-last kernel (which a contiguous one-channel input
// takes) and floor(o / scale) elsewhere. Values printed by torch 1.13 on x = arange; the gradient
// is the adjoint of the forward that ran (each output's gradient onto the input it read).
#include <gtest/gtest.h>

#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

struct NearestRow {
  Shape x;
  std::vector<double> scale;
  Shape y;
  std::vector<int64_t> torch_y;  // which input element each output holds
};

// clang-format off
const std::vector<NearestRow> kRows = {
    {{1, 3, 2, 4}, {1.0, 2.2}, {1, 3, 2, 8},
     {0, 0, 0, 1, 1, 2, 2, 3, 4, 4, 4, 5, 5, 6, 6, 7, 8, 8, 8, 9, 9, 10, 10, 11, 12, 12, 12, 13,
      13, 14, 14, 15, 16, 16, 16, 17, 17, 18, 18, 19, 20, 20, 20, 21, 21, 22, 22, 23}},
    {{1, 1, 2, 4}, {1.0, 2.2}, {1, 1, 2, 8}, {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7}},
    {{2, 2, 3, 3}, {1.2, 1.2}, {2, 2, 3, 3},
     {0, 0, 1, 0, 0, 1, 3, 3, 4, 9, 9, 10, 9, 9, 10, 12, 12, 13, 18, 18, 19, 18, 18, 19, 21, 21,
      22, 27, 27, 28, 27, 27, 28, 30, 30, 31}},
    {{1, 2, 1, 2}, {1.7, 1.4}, {1, 2, 1, 2}, {0, 0, 2, 2}},
    {{1, 1, 3}, {1.2}, {1, 1, 3}, {0, 0, 1}},
    {{1, 2, 4}, {2.2}, {1, 2, 8}, {0, 0, 0, 1, 1, 2, 2, 3, 4, 4, 4, 5, 5, 6, 6, 7}},
};
// clang-format on

TEST(UpsampleNearestScale, ReadsThePixelsTorchReadsAndSendsTheGradientBack) {
  for (DType dt : {DType::float64, DType::float32}) {
    for (const NearestRow& r : kRows) {
      SCOPED_TRACE(::testing::Message()
                   << shape_str(r.x) << " scale " << r.scale[0] << " " << dtype_name(dt));
      Tensor x = arange(0, numel_of(r.x), 1, dt).reshape(r.x);
      x.set_requires_grad(true);
      const Tensor y = interpolate(x, {}, r.scale, "nearest");
      ASSERT_EQ(y.sizes(), r.y);
      const std::vector<double> got = y.to_vector<double>();
      std::vector<double> want_grad(static_cast<size_t>(x.numel()), 0.0);
      for (size_t o = 0; o < got.size(); ++o) {
        EXPECT_EQ(got[o], static_cast<double>(r.torch_y[o])) << "output " << o;
        want_grad[static_cast<size_t>(r.torch_y[o])] += static_cast<double>(o + 1);
      }
      y.backward(arange(1, y.numel() + 1, 1, dt).reshape(y.sizes()));
      EXPECT_EQ(x.grad().to_vector<double>(), want_grad);
    }
  }
}

// A channels-last (N, C, H, W) input takes torch's channels-last kernel whatever C is.
TEST(UpsampleNearestScale, AChannelsLastInputTakesTheShortcuts) {
  const Tensor x = arange(0, 24, 1, DType::float32).reshape({1, 2, 3, 4});
  const Tensor channels_last = x.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2});
  const Tensor y = interpolate(channels_last, {}, {1.0, 2.2}, "nearest");
  const std::vector<float> row = y.select(1, 0).select(1, 0).contiguous().to_vector<float>();
  EXPECT_EQ(row, (std::vector<float>{0, 0, 1, 1, 2, 2, 3, 3}));
}

}  // namespace
}  // namespace fabric
