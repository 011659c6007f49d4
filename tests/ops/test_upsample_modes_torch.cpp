// interpolate's 1-d, nearest-exact, bicubic and area modes, pad's circular and 3-d modes and
// pixel_shuffle/unshuffle against torch 1.13 itself: values and input gradients
// (upsample_modes_torch_rows.cpp, tools/fixtures/make_upsample_modes_rows.py), torch's argument
// errors, node names and autocast classes. The naive-reference and finite-difference checks are
// the harness rows of op_cases_upsample.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/ops/upsample_torch_row.h"

namespace fabric {
namespace {

using upsample_torch::UpsampleRow;

TEST(UpsampleModesTorch, ValuesAndGradientsMatchTorch113) {
  for (const UpsampleRow& r : upsample_torch::modes_rows()) {
    SCOPED_TRACE(::testing::Message() << r.name << " " << dtype_name(r.dtype));
    const int64_t n = std::accumulate(r.x.begin(), r.x.end(), int64_t{1}, std::multiplies<>());
    std::vector<double> xs(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) xs[i] = static_cast<double>((i * 5) % 11) / 4;
    Tensor x = from_vector(xs, r.x, {.dtype = DType::float64}).to(r.dtype);
    x.set_requires_grad(true);
    const Tensor y = r.call(x);
    ASSERT_EQ(y.sizes(), r.y_shape);
    ASSERT_EQ(y.dtype(), r.dtype);
    std::vector<double> gs(static_cast<size_t>(y.numel()));
    std::iota(gs.begin(), gs.end(), 1.0);
    y.backward(from_vector(gs, y.sizes(), {.dtype = DType::float64}).to(r.dtype));
    // Weighted sums of a few terms (bicubic: 16), in another order than torch's.
    const double tol = r.dtype == DType::float64 ? 1e-12 : 4e-6;
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

// Each bad call, the error type and the part of torch's message it must carry.
struct ErrorRow {
  const char* name;
  std::function<void()> call;
  std::function<std::string(const std::function<void()>&)> thrown_as;
  std::string message;
};

template <typename E>
std::string thrown_as(const std::function<void()>& f) {
  return thrown<E>(f);
}

TEST(UpsampleModesTorch, ErrorsAsTorch) {
  const Tensor x3 = zeros({1, 2, 3}), x4 = zeros({1, 1, 2, 3}), x5 = zeros({1, 1, 2, 3, 4});
  const std::vector<ErrorRow> rows = {
      {"linear_on_4d",
       [&] {
         interpolate(x4, {2, 2}, {}, "linear");
       },
       thrown_as<NotImplementedError>, "Got 4D input, but linear mode needs 3D input"},
      {"trilinear_on_4d",
       [&] {
         interpolate(x4, {2, 2}, {}, "trilinear");
       },
       thrown_as<NotImplementedError>, "Got 4D input, but trilinear mode needs 5D input"},
      {"bicubic_on_3d", [&] { interpolate(x3, {2}, {}, "bicubic"); },
       thrown_as<NotImplementedError>,
       "Input Error: Only 3D, 4D and 5D input Tensors supported (got 3D) for the modes: nearest "
       "| linear | bilinear | bicubic | trilinear | area | nearest-exact (got bicubic)"},
      // A single size or scale expands to no spatial dims below 3-D in torch: the rank error,
      // not a length mismatch about "spatial dimensions of []".
      {"scalar_scale_on_2d", [&] { interpolate(x3.select(0, 0), {}, {2.0}); },
       thrown_as<NotImplementedError>,
       "Input Error: Only 3D, 4D and 5D input Tensors supported (got 2D)"},
      {"scalar_size_on_1d", [&] { interpolate(x3.select(0, 0).select(0, 0), {4}); },
       thrown_as<NotImplementedError>,
       "Input Error: Only 3D, 4D and 5D input Tensors supported (got 1D)"},
      {"area_align_corners",
       [&] {
         interpolate(x4, {2, 2}, {}, "area", true);
       },
       thrown_as<ValueError>,
       "align_corners option can only be set with the interpolating modes: linear | bilinear | "
       "bicubic | trilinear"},
      {"zero_size_1d", [&] { interpolate(x3, {}, {0.2}); }, thrown_as<ValueError>,
       "Input and output sizes should be greater than 0, but got input (W: 3) and output (W: 0)"},
      {"zero_size_3d",
       [&] {
         interpolate(x5, {0, 2, 2});
       },
       thrown_as<ValueError>,
       "Input and output sizes should be greater than 0, but got input (D: 2, H: 3, W: 4) output "
       "(D: 0, H: 2, W: 2)"},
      {"circular_pad_count",
       [&] {
         pad(x4, {1, 1, 1, 1, 1, 1}, "circular");
       },
       thrown_as<ShapeError>, "Invalid padding size, expected 4 but got 6"},
      {"circular_unbatched",
       [&] {
         pad(zeros({2, 3}), {1, 1}, "circular");
       },
       thrown_as<ShapeError>, "Invalid padding size, expected 0 but got 2"},
      {"circular_wraps_twice",
       [&] {
         pad(x5, {1, 1, 1, 1, 3, 2}, "circular");
       },
       thrown_as<ValueError>, "Padding value causes wrapping around more than once."},
      {"circular_negative_size",
       [&] {
         pad(x5, {0, 0, 0, 0, -2, -1}, "circular");
       },
       thrown_as<ShapeError>, "Negative padding value is resulting in an empty dimension"},
      {"circular_crop_leaves_nothing",
       [&] {
         pad(x3, {-3, 2}, "circular");
       },
       thrown_as<ValueError>, "wraps around the 0 elements left after the negative pads' crop"},
      {"reflect_3d_too_wide",
       [&] {
         pad(x5, {1, 1, 1, 1, 2, 2}, "reflect");
       },
       thrown_as<ValueError>,
       "Padding size should be less than the corresponding input dimension, but got: padding (2, "
       "2) at dimension 2 of input (1, 1, 2, 3, 4)"},
      {"replicate_3d_empty",
       [&] {
         pad(zeros({1, 1, 0, 3, 4}), {1, 1, 1, 1, 1, 1}, "replicate");
       },
       thrown_as<ShapeError>,
       "Expected 4D or 5D (batch mode) tensor with possibly 0 batch size and other non-zero "
       "dimensions for input, but got: [1, 1, 0, 3, 4]"},
      {"replicate_3d_on_3d",
       [&] {
         pad(x3, {1, 1, 1, 1, 1, 1}, "replicate");
       },
       thrown_as<NotImplementedError>,
       "Only 2D, 3D, 4D, 5D padding with non-constant padding are supported for now"},
      {"shuffle_channels",
       [&] {
         pixel_shuffle(zeros({1, 5, 2, 2}), 2);
       },
       thrown_as<ShapeError>,
       "pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
       "upscale_factor, but input.size(-3)=5 is not divisible by 4"},
      {"shuffle_rank",
       [&] {
         pixel_shuffle(zeros({5, 2}), 2);
       },
       thrown_as<ShapeError>,
       "pixel_shuffle expects input to have at least 3 dimensions, but got input with 2 "
       "dimension(s)"},
      {"shuffle_factor", [&] { pixel_shuffle(x4, 0); }, thrown_as<ValueError>,
       "pixel_shuffle expects a positive upscale_factor, but got 0"},
      {"unshuffle_height",
       [&] {
         pixel_unshuffle(zeros({1, 2, 3, 4}), 2);
       },
       thrown_as<ShapeError>,
       "pixel_unshuffle expects height to be divisible by downscale_factor, but input.size(-2)=3 "
       "is not divisible by 2"},
      {"unshuffle_width",
       [&] {
         pixel_unshuffle(zeros({1, 2, 4, 3}), 2);
       },
       thrown_as<ShapeError>,
       "pixel_unshuffle expects width to be divisible by downscale_factor, but input.size(-1)=3 "
       "is not divisible by 2"},
      {"unshuffle_rank",
       [&] {
         pixel_unshuffle(zeros({4, 3}), 2);
       },
       thrown_as<ShapeError>,
       "pixel_unshuffle expects input to have at least 3 dimensions, but got input with 2 "
       "dimension(s)"},
      {"unshuffle_factor", [&] { pixel_unshuffle(x4, -1); }, thrown_as<ValueError>,
       "pixel_unshuffle expects a positive downscale_factor, but got -1"},
  };
  for (const ErrorRow& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(r.thrown_as(r.call), r.message);
  }
}

TEST(UpsampleModesTorch, ShapesAsTorch) {
  struct Row {
    const char* name;
    std::function<Tensor()> call;
    Shape want;
  };
  const std::vector<Row> rows = {
      {"circular_crop_to_empty",
       [] {
         return pad(zeros({1, 1, 2, 3, 4}), {0, 0, 0, 0, -1, -1}, "circular");
       },
       {1, 1, 0, 3, 4}},
      {"replicate_3d_crop_to_empty",
       [] {
         return pad(zeros({1, 1, 2, 3, 4}), {0, 0, 0, 0, -1, -1}, "replicate");
       },
       {1, 1, 0, 3, 4}},
      {"replicate_3d_empty_batch",
       [] {
         return pad(zeros({0, 1, 2, 3, 4}), {1, 1, 1, 1, 1, 1}, "replicate");
       },
       {0, 1, 4, 5, 6}},
      {"shuffle_empty_batch",
       [] {
         return pixel_shuffle(zeros({0, 8, 2, 2}), 2);
       },
       {0, 2, 4, 4}},
      {"shuffle_no_channels",
       [] {
         return pixel_shuffle(zeros({1, 0, 2, 2}), 2);
       },
       {1, 0, 4, 4}},
      {"area_scale",
       [] {
         return interpolate(zeros({1, 1, 5, 7}), {}, {0.5}, "area");
       },
       {1, 1, 2, 3}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(r.call().sizes(), r.want);
  }
}

TEST(UpsampleModesTorch, NodeNamesOfTheKernelModesAreTorchs) {
  Tensor x = zeros({1, 2, 4});
  x.set_requires_grad(true);
  EXPECT_EQ(grad_fn_name(interpolate(x, {5})), "UpsampleNearest1DBackward1");
  EXPECT_EQ(grad_fn_name(interpolate(x, {5}, {}, "linear")), "UpsampleLinear1DBackward1");
}

// upsample_bicubic2d and upsample_linear1d are on CUDA autocast's fp32 list only (their rows in
// tests/precision/test_autocast_spec.cpp), circular pad and nearest-exact on no list: under CPU
// autocast every mode keeps a bfloat16 input's dtype.
TEST(UpsampleModesTorch, CpuAutocastKeepsTheInputDtype) {
  struct Row {
    const char* name;
    std::function<Tensor(const Tensor&)> call;
  };
  const std::vector<Row> rows = {
      {"bicubic",
       [](const Tensor& t) {
         return interpolate(t, {3, 4}, {}, "bicubic");
       }},
      {"nearest_exact",
       [](const Tensor& t) {
         return interpolate(t, {3, 4}, {}, "nearest-exact");
       }},
      {"linear_1d", [](const Tensor& t) { return interpolate(t.squeeze(0), {5}, {}, "linear"); }},
      {"circular",
       [](const Tensor& t) {
         return pad(t.squeeze(0), {1, 1}, "circular");
       }},
  };
  const Tensor x = randn({1, 1, 2, 3}).to(DType::bfloat16);
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
    const DType got = r.call(x).dtype();
    autocast_exit(DeviceType::cpu);
    EXPECT_EQ(got, DType::bfloat16);
  }
}

}  // namespace
}  // namespace fabric

namespace fabric {
namespace {

// float32 nearest-exact picks torch 1.13's pixel where (o + 0.5) * scale sits at a tie: pixel 0
// repeats this many times before pixel 1 (torch's outputs; 20, 23, 20, 20 before).
TEST(UpsampleModesTorch, Float32NearestExactTiesAsTorch) {
  for (const auto& [in, out, zeros] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {2, 41, 21}, {2, 47, 24}, {4, 82, 21}, {6, 123, 21}}) {
    const Tensor x = arange(0, in, 1, DType::float32).reshape({1, 1, in});
    const std::vector<float> y = interpolate(x, {out}, {}, "nearest-exact").to_vector<float>();
    EXPECT_EQ(std::count(y.begin(), y.end(), 0.0f), zeros) << in << " -> " << out;
  }
}

}  // namespace
}  // namespace fabric
