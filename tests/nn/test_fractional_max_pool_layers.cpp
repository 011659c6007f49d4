// FractionalMaxPool2d/3d against torch 1.13: reprs (torch's prints no arguments), construction
// errors and their messages, the samples buffer (in state_dict as "_random_samples" only when
// given), forward as the functional, return_indices, and with samples drawn each forward: the
// output shapes, and every index naming the first maximum of its window (the windows recomputed
// here from the same draw).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nn/fractional_max_pool.h"
#include "tensor/factory.h"
#include "tensor/fractional_max_pool.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

using Sizes = std::vector<int64_t>;

// torch: print(nn.FractionalMaxPool2d(3, output_ratio=0.5)) and the others.
TEST(FractionalMaxPoolLayers, ReprAsTorch) {
  EXPECT_EQ(nn::FractionalMaxPool2d({.kernel_size = {3}, .output_ratio = {{0.5}}}).str(),
            "FractionalMaxPool2d()");
  EXPECT_EQ(nn::FractionalMaxPool2d(
                {.kernel_size = {3}, .output_size = {{4}}, .random_samples = rand({1, 2, 2})})
                .str(),
            "FractionalMaxPool2d()");
  EXPECT_EQ(nn::FractionalMaxPool3d(
                {.kernel_size = {2}, .output_size = {{3, 4, 5}}, .return_indices = true})
                .str(),
            "FractionalMaxPool3d()");
}

// torch's ValueErrors at construction (the sizes are the functional's to check at the call).
TEST(FractionalMaxPoolLayers, ConstructionErrorsAsTorch) {
  EXPECT_CONTAINS(thrown<ValueError>([] { nn::FractionalMaxPool2d({.kernel_size = {2}}); }),
                  "FractionalMaxPool2d requires specifying either an output size, or a pooling "
                  "ratio");
  EXPECT_CONTAINS(thrown<ValueError>([] { nn::FractionalMaxPool3d({.kernel_size = {2}}); }),
                  "FractionalMaxPool3d requires specifying either an output size, or a pooling "
                  "ratio");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    nn::FractionalMaxPool2d(
                        {.kernel_size = {2}, .output_size = {{3}}, .output_ratio = {{0.5}}});
                  }),
                  "only one of output_size and output_ratio may be specified");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    nn::FractionalMaxPool2d({.kernel_size = {2}, .output_ratio = {{1.5}}});
                  }),
                  "output_ratio must be between 0 and 1 (got 1.5)");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    nn::FractionalMaxPool2d({.kernel_size = {2}, .output_ratio = {{0.5, 1.0}}});
                  }),
                  "output_ratio must be between 0 and 1 (got (0.5, 1.0))");
  EXPECT_CONTAINS(
      thrown<ValueError>([] {
        nn::FractionalMaxPool3d({.kernel_size = {2}, .output_ratio = {{0.5, 0.5, 0.0}}});
      }),
      "output_ratio must be between 0 and 1 (got (0.5, 0.5, 0.0))");
}

// Given samples are a buffer, used by every forward; drawn ones are not state.
TEST(FractionalMaxPoolLayers, SamplesBufferAndForwardAsFunctional) {
  const Tensor x = randn({2, 3, 9, 8});
  const Tensor s = rand({2, 3, 2});
  nn::FractionalMaxPool2d m({.kernel_size = {3}, .output_size = {{4, 5}}, .random_samples = s});
  const nn::StateDict state = m.state_dict();
  ASSERT_EQ(state.keys(), (std::vector<std::string>{"_random_samples"}));
  EXPECT_EQ(state.at("_random_samples").to_vector<float>(), s.to_vector<float>());
  const Tensor want = fractional_max_pool2d(x, {3}, Sizes{4, 5}, {}, s);
  EXPECT_EQ(m(x).to_vector<float>(), want.to_vector<float>());
  EXPECT_EQ(m(x).to_vector<float>(), want.to_vector<float>());
  EXPECT_TRUE(
      nn::FractionalMaxPool2d({.kernel_size = {3}, .output_ratio = {{0.5}}}).state_dict().empty());
  // The buffer follows the layer's dtype, as the input it must match.
  m.to(DType::float64);
  EXPECT_EQ(m(x.to(DType::float64)).dtype(), DType::float64);
}

TEST(FractionalMaxPoolLayers, ReturnIndices) {
  const Tensor x = randn({1, 2, 7, 7, 7});
  const Tensor s = rand({1, 2, 3});
  nn::FractionalMaxPool3d m(
      {.kernel_size = {2}, .output_size = {{3}}, .return_indices = true, .random_samples = s});
  EXPECT_CONTAINS(thrown<ValueError>([&] { m(x); }),
                  "FractionalMaxPool3d: return_indices=true returns (values, indices): call "
                  "forward_with_indices");
  const auto [y, idx] = m.forward_with_indices(x);
  const auto [wy, widx] = fractional_max_pool3d_with_indices(x, {2}, Sizes{3}, {}, s);
  EXPECT_EQ(y.to_vector<float>(), wy.to_vector<float>());
  EXPECT_EQ(idx.to_vector<int64_t>(), widx.to_vector<int64_t>());
}

// torch's generate_intervals in double (the float64 inputs below).
Sizes starts(double sample, int64_t in, int64_t out, int64_t k) {
  Sizes s(static_cast<size_t>(out));
  if (out > 1) {
    const double alpha = static_cast<double>(in - k) / static_cast<double>(out - 1);
    for (int64_t i = 0; i + 1 < out; ++i)
      s[i] = static_cast<int>((static_cast<double>(i) + sample) * alpha) -
             static_cast<int>(sample * alpha);
  }
  if (out > 0) s[out - 1] = in - k;
  return s;
}

// With the samples drawn each forward from the default generator: the shapes torch gives, and
// each index the first maximum of its window, the windows recomputed from the same draw (torch's
// rand(N, C, dims) in the input's dtype) with a reseeded generator. dims 3 as (T, H, W) with
// samples [0], [1], [2]; dims 2 as (1, H, W) with samples [1] for H, [0] for W.
void expect_window_maxima(nn::FractionalMaxPool& m, const Tensor& x, int64_t dims, const Sizes& out,
                          const Sizes& k, const Shape& want_shape) {
  SCOPED_TRACE(shape_str(x.sizes()));
  const bool batched = x.dim() == dims + 2;
  const int64_t n = batched ? x.size(0) : 1, c = x.size(batched ? 1 : 0);
  manual_seed(7);
  const auto [y, idx] = m.forward_with_indices(x);
  ASSERT_EQ(y.sizes(), want_shape);
  ASSERT_EQ(idx.sizes(), want_shape);
  manual_seed(7);
  const std::vector<double> s = rand({n, c, dims}, {.dtype = DType::float64}).to_vector<double>();
  Sizes in(x.sizes().end() - dims, x.sizes().end()), o = out, kk = k;
  if (dims == 2) {
    in.insert(in.begin(), 1);
    o.insert(o.begin(), 1);
    kk.insert(kk.begin(), 1);
  }
  const int64_t in_plane = in[0] * in[1] * in[2], out_plane = o[0] * o[1] * o[2];
  const std::vector<double> xv = x.contiguous().to_vector<double>();
  const std::vector<double> yv = y.to_vector<double>();
  const std::vector<int64_t> iv = idx.to_vector<int64_t>();
  for (int64_t p = 0; p < n * c; ++p) {
    const double* sp = s.data() + p * dims;
    const Sizes st = dims == 3 ? starts(sp[0], in[0], o[0], kk[0]) : Sizes{0};
    const Sizes sh = starts(dims == 3 ? sp[1] : sp[1], in[1], o[1], kk[1]);
    const Sizes sw = starts(dims == 3 ? sp[2] : sp[0], in[2], o[2], kk[2]);
    for (int64_t a = 0; a < o[0]; ++a)
      for (int64_t b = 0; b < o[1]; ++b)
        for (int64_t w = 0; w < o[2]; ++w) {
          int64_t best = -1;
          for (int64_t t = st[a]; t < st[a] + kk[0]; ++t)
            for (int64_t h = sh[b]; h < sh[b] + kk[1]; ++h)
              for (int64_t v = sw[w]; v < sw[w] + kk[2]; ++v) {
                const int64_t off = (t * in[1] + h) * in[2] + v;
                if (best < 0 || xv[p * in_plane + off] > xv[p * in_plane + best]) best = off;
              }
          const int64_t at = p * out_plane + (a * o[1] + b) * o[2] + w;
          ASSERT_EQ(iv[at], best) << "plane " << p << " output " << a << "," << b << "," << w;
          ASSERT_EQ(yv[at], xv[p * in_plane + best]);
        }
  }
}

TEST(FractionalMaxPoolLayers, DrawnSamplesPickEachWindowsMaximum) {
  const TensorOptions f64{.dtype = DType::float64};
  nn::FractionalMaxPool2d size2({.kernel_size = {3}, .output_size = {{5, 4}}});
  expect_window_maxima(size2, randn({2, 3, 11, 9}, f64), 2, {5, 4}, {3, 3}, {2, 3, 5, 4});
  expect_window_maxima(size2, randn({3, 11, 9}, f64), 2, {5, 4}, {3, 3}, {3, 5, 4});
  nn::FractionalMaxPool2d ratio2({.kernel_size = {2, 3}, .output_ratio = {{0.5, 0.7}}});
  expect_window_maxima(ratio2, randn({2, 2, 13, 10}, f64), 2, {6, 7}, {2, 3}, {2, 2, 6, 7});
  nn::FractionalMaxPool3d size3({.kernel_size = {2}, .output_size = {{3, 4, 5}}});
  expect_window_maxima(size3, randn({2, 2, 6, 7, 8}, f64), 3, {3, 4, 5}, {2, 2, 2},
                       {2, 2, 3, 4, 5});
  nn::FractionalMaxPool3d ratio3({.kernel_size = {2, 3, 2}, .output_ratio = {{0.5}}});
  expect_window_maxima(ratio3, randn({3, 8, 9, 10}, f64), 3, {4, 4, 5}, {2, 3, 2}, {3, 4, 4, 5});
  // A fresh draw each forward: two calls differ (with probability 1 on these sizes).
  const Tensor x = randn({4, 4, 20, 20}, f64);
  EXPECT_NE(std::get<1>(size2.forward_with_indices(x)).to_vector<int64_t>(),
            std::get<1>(size2.forward_with_indices(x)).to_vector<int64_t>());
}

}  // namespace
}  // namespace fabric
