// interpolate on 5-D (N, C, D, H, W) inputs against torch 1.13 itself: nearest, nearest-exact,
// trilinear and area values and input gradients bit for bit (upsample_5d_torch_rows.h,
// tools/fixtures/make_upsample_5d_rows.py), area's zero-length outputs and adaptive pooling's
// input checks, torch's errors, node names, the CPU autocast classes and the 16-bit dtypes. The
// float64-reference and finite-difference checks are the harness rows of op_cases_upsample.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/ops/upsample_5d_torch_rows.h"

namespace fabric {
namespace {

using upsample5d_torch::Row;

// The generator's x[i] = ((i * 37) % 101 - 50) / 17 (g: 53, 97, 48, 13), rounded to dt.
Tensor pattern(const Shape& shape, int64_t mul, int64_t mod, int64_t off, double div, DType dt) {
  const int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>((i * mul) % mod - off) / div;
  return from_vector(v, shape, {.dtype = DType::float64}).to(dt);
}

// Distance in units in the last place of dt (float32 or float64) between got and want (a float32
// row's literal has 9 significant digits: it is that float's shortest text).
double ulps(double got, double want, DType dt) {
  if (dt == DType::float32) want = static_cast<float>(want);
  if (got == want) return 0;
  const double scale = dt == DType::float64 ? std::ldexp(1.0, -52) : std::ldexp(1.0, -23);
  return std::abs(got - want) / (scale * std::max(std::abs(want), 1.0));
}

Tensor call(const Row& r, const Tensor& x) {
  std::optional<bool> align;
  if (r.align >= 0) align = r.align == 1;
  return interpolate(x, r.size, r.scale, r.mode, align);
}

TEST(Upsample5dTorch, ValuesAndGradientsMatchTorch113) {
  for (const Row& r : upsample5d_torch::rows()) {
    SCOPED_TRACE(::testing::Message() << r.name << " " << dtype_name(r.dtype));
    Tensor x = pattern(r.x, 37, 101, 50, 17, r.dtype);
    x.set_requires_grad(true);
    const Tensor y = call(r, x);
    ASSERT_EQ(y.sizes(), r.y_shape);
    ASSERT_EQ(y.dtype(), r.dtype);
    y.backward(pattern(y.sizes(), 53, 97, 48, 13, r.dtype));
    const std::vector<double> got_y = y.to_vector<double>(), got_g = x.grad().to_vector<double>();
    ASSERT_EQ(got_y.size(), r.y.size());
    ASSERT_EQ(got_g.size(), r.grad.size());
    // Not exact: sums of the same terms in another order (the generator's notes), within a few
    // ulp of the larger of 1 and the value.
    const double tol_y = r.y_ulps, tol_g = r.grad_ulps;
    for (size_t i = 0; i < got_y.size(); ++i)
      EXPECT_LE(ulps(got_y[i], r.y[i], r.dtype), tol_y)
          << "output " << i << ": " << got_y[i] << " vs torch " << r.y[i];
    if (r.grad_ulps < 0) continue;  // the gradient of another map (the generator's notes)
    for (size_t i = 0; i < got_g.size(); ++i)
      EXPECT_LE(ulps(got_g[i], r.grad[i], r.dtype), tol_g)
          << "input gradient " << i << ": " << got_g[i] << " vs torch " << r.grad[i];
  }
}

// interpolate(x (1, 2, 4, 4), size=(0, 2), mode='area') -> (1, 2, 0, 2) in torch: area is adaptive
// pooling, which allows a zero output size, and its checks (not upsampling's) apply.
TEST(Upsample5dTorch, AreaAllowsZeroOutputSizes) {
  struct Case {
    Shape x;
    std::vector<int64_t> size;
    std::vector<double> scale;
    Shape want;
  };
  const std::vector<Case> cases = {
      {{1, 2, 4, 4}, {0, 2}, {}, {1, 2, 0, 2}},
      {{1, 2, 3, 4, 5}, {0, 2, 2}, {}, {1, 2, 0, 2, 2}},
      {{1, 2, 4}, {0}, {}, {1, 2, 0}},
      {{1, 2, 3, 4, 5}, {}, {0.1}, {1, 2, 0, 0, 0}},
      {{0, 2, 4, 4, 4}, {2, 2, 2}, {}, {0, 2, 2, 2, 2}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(shape_str(c.x));
    Tensor x = randn(c.x);
    x.set_requires_grad(true);
    const Tensor y = interpolate(x, c.size, c.scale, "area");
    EXPECT_EQ(y.sizes(), c.want);
    sum(y).backward();
    EXPECT_EQ(x.grad().sizes(), c.x);
  }
}

TEST(Upsample5dTorch, ErrorsAsTorch) {
  const Tensor x5 = zeros({1, 2, 3, 4, 5});
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    interpolate(x5, {0, 2, 2}, {}, "trilinear");
                  }),
                  "Input and output sizes should be greater than 0, but got input (D: 3, H: 4, "
                  "W: 5) output (D: 0, H: 2, W: 2)");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    interpolate(zeros({1, 2, 0, 4, 5}), {2, 2, 2});
                  }),
                  "but got input (D: 0, H: 4, W: 5) output (D: 2, H: 2, W: 2)");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    interpolate(zeros({1, 0, 3, 4, 5}), {2, 2, 2});
                  }),
                  "Non-empty 5D data tensor expected but got a tensor with sizes (1, 0, 3, 4, 5)");
  EXPECT_CONTAINS(thrown<ValueError>([&] { interpolate(x5, {}, {0.1}); }),
                  "output (D: 0, H: 0, W: 0)");
  // area: adaptive_avg_pool's checks, an empty input dimension (channels included in 3-d).
  EXPECT_CONTAINS(
      thrown<ShapeError>([&] {
        interpolate(zeros({1, 2, 0, 4, 4}), {2, 2, 2}, {}, "area");
      }),
      "adaptive_avg_pool3d: expected the input to have non-zero sizes for the non-batch "
      "dimensions, but input (1, 2, 0, 4, 4) has dimension 2 empty");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    interpolate(zeros({1, 0, 4, 4, 4}), {2, 2, 2}, {}, "area");
                  }),
                  "but input (1, 0, 4, 4, 4) has dimension 1 empty");
  EXPECT_CONTAINS(
      thrown<ShapeError>([&] {
        interpolate(zeros({1, 2, 0, 4}), {2, 2}, {}, "area");
      }),
      "adaptive_avg_pool2d: expected the input to have non-zero sizes for the non-batch "
      "dimensions, but input (1, 2, 0, 4) has dimension 2 empty");
  // The linear family still names the rank it needs.
  EXPECT_CONTAINS(thrown<NotImplementedError>([&] {
                    interpolate(x5, {2, 2, 2}, {}, "bilinear");
                  }),
                  "Got 5D input, but bilinear mode needs 4D input");
  EXPECT_CONTAINS(thrown<NotImplementedError>([&] {
                    interpolate(zeros({1, 1, 2, 2}), {2, 2}, {}, "trilinear");
                  }),
                  "Got 4D input, but trilinear mode needs 5D input");
  EXPECT_CONTAINS(thrown<NotImplementedError>([&] {
                    interpolate(x5, {2, 2, 2}, {}, "bicubic");
                  }),
                  "Only 3D, 4D and 5D input Tensors supported (got 5D)");
}

TEST(Upsample5dTorch, NodeNamesAreTorchs) {
  Tensor x = zeros({1, 2, 2, 3, 4});
  x.set_requires_grad(true);
  EXPECT_EQ(grad_fn_name(interpolate(x, {3, 3, 3})), "UpsampleNearest3DBackward1");
  EXPECT_EQ(grad_fn_name(interpolate(x, {3, 3, 3}, {}, "trilinear")),
            "UpsampleTrilinear3DBackward1");
}

// torch 1.13's CPU autocast: upsample_nearest3d and upsample_trilinear3d are on no CPU list (a
// bfloat16 input stays bfloat16), adaptive_avg_pool3d (area) is on the float32 one.
TEST(Upsample5dTorch, CpuAutocastClasses) {
  const Tensor x = randn({1, 2, 2, 3, 4}).to(DType::bfloat16);
  autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
  const DType nearest = interpolate(x, {}, {2.0}).dtype();
  const DType exact = interpolate(x, {}, {2.0}, "nearest-exact").dtype();
  const DType tri = interpolate(x, {}, {2.0}, "trilinear").dtype();
  const DType area = interpolate(x, {1, 2, 2}, {}, "area").dtype();
  const DType tri32 = interpolate(x.to(DType::float32), {}, {2.0}, "trilinear").dtype();
  autocast_exit(DeviceType::cpu);
  EXPECT_EQ(nearest, DType::bfloat16);
  EXPECT_EQ(exact, DType::bfloat16);
  EXPECT_EQ(tri, DType::bfloat16);
  EXPECT_EQ(area, DType::float32);
  EXPECT_EQ(tri32, DType::float32);
}

// float16/bfloat16 run in float32 and round once (as fabric's 2-d kernels): the result is the
// float32 call's on the widened input, rounded; the gradient likewise.
TEST(Upsample5dTorch, HalfDtypesComputeInFloat32AndRoundOnce) {
  for (DType dt : {DType::bfloat16, DType::float16}) {
    for (const char* mode : {"nearest", "trilinear", "nearest-exact"}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " " << mode);
      const Tensor x = pattern({1, 2, 3, 4, 5}, 37, 101, 50, 17, dt);
      const Tensor y = interpolate(x, {4, 7, 3}, {}, mode);
      ASSERT_EQ(y.dtype(), dt);
      const Tensor want = interpolate(x.to(DType::float32), {4, 7, 3}, {}, mode).to(dt);
      EXPECT_EQ(y.to(DType::float32).to_vector<float>(),
                want.to(DType::float32).to_vector<float>());
    }
    const Tensor g = pattern({1, 2, 4, 7, 3}, 53, 97, 48, 13, dt);
    Tensor x = pattern({1, 2, 3, 4, 5}, 37, 101, 50, 17, dt);
    x.set_requires_grad(true);
    interpolate(x, {4, 7, 3}, {}, "trilinear").backward(g);
    Tensor x32 = x.detach().to(DType::float32);
    x32.set_requires_grad(true);
    interpolate(x32, {4, 7, 3}, {}, "trilinear").backward(g.to(DType::float32));
    EXPECT_EQ(x.grad().to(DType::float32).to_vector<float>(),
              x32.grad().to(dt).to(DType::float32).to_vector<float>());
  }
}

TEST(Upsample5dTorch, UpsampleLayerTakes5dInput) {
  auto up = nn::make<nn::Upsample>({.scale_factor = {2.0}, .mode = "trilinear"});
  EXPECT_EQ((*up)(zeros({1, 2, 2, 3, 4})).sizes(), (Shape{1, 2, 4, 6, 8}));
  auto near = nn::make<nn::Upsample>({.size = {3, 1, 2}});
  EXPECT_EQ((*near)(zeros({2, 1, 2, 3, 4})).sizes(), (Shape{2, 1, 3, 1, 2}));
}

}  // namespace
}  // namespace fabric
