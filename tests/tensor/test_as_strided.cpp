// as_strided (nn/as_strided.h) against torch 1.13: the rows of shape_extra_torch_rows.h (views of
// the storage through transposed, offset and expanded inputs, overlapping windows, torch's
// AsStridedBackward0 gradients, errors), then writes through the view and a second derivative.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "nn/as_strided.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/tensor/shape_extra_check.h"

namespace fabric {
namespace {

using shape_extra_check::Call;
using shape_extra_check::CallTable;
using V = std::vector<Tensor>;

// ints: ndim, sizes, strides, offset (absent with text "default_offset").
CallTable calls() {
  CallTable t;
  t["as_strided"] = [](const Call& c) -> V {
    const size_t n = static_cast<size_t>(c.ints[0]);
    const Shape size(c.ints.begin() + 1, c.ints.begin() + 1 + n);
    const Strides stride(c.ints.begin() + 1 + n, c.ints.begin() + 1 + 2 * n);
    const std::optional<int64_t> offset =
        c.text == "default_offset" ? std::nullopt : std::optional<int64_t>(c.ints[1 + 2 * n]);
    return {as_strided(c.in[0], size, stride, offset)};
  };
  return t;
}

TEST(AsStridedTorch, RowsMatchTorch) { shape_extra_check::check_rows("as_strided", calls()); }

TEST(AsStridedTorch, ErrorsCarryTorchMessages) {
  shape_extra_check::check_error_rows("as_strided", calls());
}

// The view writes through to its input's storage, overlapping elements included.
TEST(AsStrided, WritesReachTheStorage) {
  Tensor x = zeros({6});
  Tensor windows = as_strided(x, {3, 3}, {1, 1});  // rows x[0:3], x[1:4], x[2:5]
  windows.select(0, 1).fill_(1.0);
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{0, 1, 1, 1, 0, 0}));
  EXPECT_EQ(windows.select(1, 0).to_vector<double>(), (std::vector<double>{0, 1, 1}));
}

// The backward is made of recorded ops: the gradient of the gradient exists. For y = sum(w *
// as_strided(x)^2) with overlapping windows, d^2y/dx^2 is diagonal with 2 * (summed weights of the
// windows that read each element).
TEST(AsStrided, DifferentiatesTwice) {
  const Tensor x = from_vector(std::vector<double>{1, 2, 3, 4, 5}, {5}, {.dtype = DType::float64})
                       .set_requires_grad(true);
  const Tensor v = as_strided(x, {3, 3}, {1, 1});
  const Tensor w = arange(1, 10, 1, DType::float64).reshape({3, 3});
  const Tensor y = sum(mul(w, mul(v, v)));
  const std::vector<Tensor> g = grad({y}, {x}, {}, std::nullopt, /*create_graph=*/true);
  // element j is read by windows i with 0 <= j - i < 3, at column j - i: weight w[i, j - i]
  const std::vector<double> reads = {1, 2 + 4, 3 + 5 + 7, 6 + 8, 9};
  const std::vector<double> xv = {1, 2, 3, 4, 5};
  for (size_t j = 0; j < 5; ++j)
    EXPECT_DOUBLE_EQ(g[0].to_vector<double>()[j], 2 * reads[j] * xv[j]);
  const std::vector<Tensor> h = grad({sum(g[0])}, {x});
  for (size_t j = 0; j < 5; ++j) EXPECT_DOUBLE_EQ(h[0].to_vector<double>()[j], 2 * reads[j]);
}

}  // namespace
}  // namespace fabric
