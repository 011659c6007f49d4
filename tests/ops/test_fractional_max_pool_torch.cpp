// fractional_max_pool2d/3d against torch 1.13 (tests/ops/fractional_max_pool_torch_rows.h, from
// tools/fixtures/make_fractional_max_pool_rows.py): with the samples given, values, int64 indices
// and the input gradient bit for bit in float32 and float64 (2-d and 3-d, batched and unbatched,
// output_size and output_ratio, ties, NaN, -inf, samples outside [0, 1)); the samples drawn from
// fabric's generator as torch draws them; torch's argument errors; double backward; autocast.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/fractional_max_pool.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/cpu_autocast.h"
#include "tests/common/expect_error.h"
#include "tests/common/tensor_from_bits.h"
#include "tests/ops/fractional_max_pool_torch_rows.h"

namespace fabric {
namespace {

using fractional_max_pool_torch::Row;

// The bits of each element of t (a float32's in the low 32 bits), as the fixture stores them.
std::vector<uint64_t> bits_of(const Tensor& t) {
  std::vector<uint64_t> out;
  if (t.dtype() == DType::float64) {
    for (double v : t.to_vector<double>()) out.push_back(std::bit_cast<uint64_t>(v));
  } else {
    for (float v : t.to_vector<float>()) out.push_back(std::bit_cast<uint32_t>(v));
  }
  return out;
}

void expect_bits(const Tensor& got, const std::vector<uint64_t>& want, const std::string& what) {
  const std::vector<uint64_t> g = bits_of(got);
  ASSERT_EQ(g.size(), want.size()) << what;
  int shown = 0;
  for (size_t i = 0; i < g.size() && shown < 5; ++i) {
    if (g[i] == want[i]) continue;
    ADD_FAILURE() << what << "[" << i << "]: bits " << std::hex << g[i] << " vs torch " << want[i];
    ++shown;
  }
}

std::tuple<Tensor, Tensor> pool(const Row& r, const Tensor& x, const Tensor& samples) {
  return r.dims == 2 ? fractional_max_pool2d_with_indices(x, r.kernel, r.output_size,
                                                          r.output_ratio, samples)
                     : fractional_max_pool3d_with_indices(x, r.kernel, r.output_size,
                                                          r.output_ratio, samples);
}

Tensor samples_of(const Row& r) { return test::from_bits(r.samples, r.samples_shape, r.dtype); }

// Values, indices and the input's gradient (torch's scatter-add of g at the indices, overlapping
// windows adding up) as torch's; the values-only functional gives the same values.
TEST(FractionalMaxPoolTorch, RowsBitForBit) {
  for (const Row& r : fractional_max_pool_torch::rows()) {
    SCOPED_TRACE(r.name);
    const Tensor x = test::from_bits(r.x, r.x_shape, r.dtype).set_requires_grad(true);
    const auto [y, idx] = pool(r, x, samples_of(r));
    ASSERT_EQ(y.sizes(), r.y_shape);
    EXPECT_EQ(y.dtype(), r.dtype);
    EXPECT_EQ(idx.sizes(), r.y_shape);
    EXPECT_EQ(idx.dtype(), DType::int64);
    expect_bits(y, r.y, "values");
    EXPECT_EQ(idx.to_vector<int64_t>(), r.indices);
    const Tensor only =
        r.dims == 2
            ? fractional_max_pool2d(x, r.kernel, r.output_size, r.output_ratio, samples_of(r))
            : fractional_max_pool3d(x, r.kernel, r.output_size, r.output_ratio, samples_of(r));
    expect_bits(only, r.y, "values-only functional");
    const Tensor g = test::from_bits(r.g, r.y_shape, r.dtype);
    expect_bits(fabric::grad({y}, {x}, {g})[0], r.grad_x, "input gradient");
  }
}

// A strided input (its last two dims transposed in memory) and strided samples pool as torch's.
TEST(FractionalMaxPoolTorch, StridedInputsAsContiguous) {
  for (const Row& r : fractional_max_pool_torch::rows()) {
    SCOPED_TRACE(r.name);
    const Tensor c = test::from_bits(r.x, r.x_shape, r.dtype);
    const int64_t d = c.dim();
    const Tensor x = c.transpose(d - 1, d - 2).contiguous().transpose(d - 1, d - 2);
    ASSERT_FALSE(x.is_contiguous());
    const Tensor s = samples_of(r).transpose(0, 1).contiguous().transpose(0, 1);
    const auto [y, idx] = pool(r, x, s);
    expect_bits(y, r.y, "values");
    EXPECT_EQ(idx.to_vector<int64_t>(), r.indices);
  }
}

// torch's samples are rand(N, C, 2 or 3) in x's dtype (N = 1 unbatched); drawn here from the
// generator passed (or the default one), so the same draw given explicitly pools the same.
TEST(FractionalMaxPoolTorch, DrawnSamplesAreRandInTheInputsDtype) {
  struct Case {
    Shape x;
    int64_t dims;
    Shape samples;
  };
  for (const Case& c : {Case{{2, 3, 9, 8}, 2, {2, 3, 2}}, Case{{3, 9, 8}, 2, {1, 3, 2}},
                        Case{{2, 2, 7, 8, 9}, 3, {2, 2, 3}}, Case{{2, 7, 8, 9}, 3, {1, 2, 3}}}) {
    for (DType dtype : {DType::float32, DType::float64}) {
      SCOPED_TRACE(shape_str(c.x) + " " + std::string(dtype_name(dtype)));
      const Tensor x = randn(c.x, {.dtype = dtype});
      Generator gen(1234);
      const Tensor s = rand(c.samples, {.dtype = dtype}, &gen);
      gen.manual_seed(1234);
      const std::vector<int64_t> k{2};
      const std::vector<int64_t> out(c.dims, 4);
      const auto [y, i] = c.dims == 2 ? fractional_max_pool2d_with_indices(x, k, out, {}, {}, &gen)
                                      : fractional_max_pool3d_with_indices(x, k, out, {}, {}, &gen);
      const auto [ye, ie] = c.dims == 2 ? fractional_max_pool2d_with_indices(x, k, out, {}, s)
                                        : fractional_max_pool3d_with_indices(x, k, out, {}, s);
      EXPECT_EQ(i.to_vector<int64_t>(), ie.to_vector<int64_t>());
      EXPECT_EQ(bits_of(y), bits_of(ye));
      // The default generator, as torch's functional: seeded alike, drawn alike.
      manual_seed(99);
      const Tensor a =
          c.dims == 2 ? fractional_max_pool2d(x, k, out) : fractional_max_pool3d(x, k, out);
      manual_seed(99);
      const Tensor b =
          c.dims == 2 ? fractional_max_pool2d(x, k, out, {}, rand(c.samples, {.dtype = dtype}))
                      : fractional_max_pool3d(x, k, out, {}, rand(c.samples, {.dtype = dtype}));
      EXPECT_EQ(bits_of(a), bits_of(b));
    }
  }
}

// torch's errors (substrings); where torch 1.13 reads outside the samples or the window (samples
// of another shape, a kernel <= 0) fabric refuses, with later torch's words for the samples.
TEST(FractionalMaxPoolTorch, ArgumentErrorsAsTorch) {
  const Tensor x = randn({2, 3, 6, 7});
  const Tensor x3 = randn({1, 2, 6, 7, 8});
  const Tensor s = rand({2, 3, 2});
  const std::vector<int64_t> k2{2};
  const std::optional<std::vector<int64_t>> o3 = std::vector<int64_t>{3};
  struct Case {
    const char* name;
    std::function<void()> run;
    std::function<void(const std::function<void()>&, const char*)> expect;
    const char* message;
  };
  auto as = [](auto tag) {
    using E = decltype(tag);
    return [](const std::function<void()>& f, const char* m) { EXPECT_CONTAINS(thrown<E>(f), m); };
  };
  const std::vector<Case> cases = {
      {"no_size", [&] { fractional_max_pool2d(x, k2, std::nullopt); }, as(ValueError("")),
       "fractional_max_pool2d requires specifying either an output_size or an output_ratio"},
      {"no_size_3d", [&] { fractional_max_pool3d(x3, k2, std::nullopt); }, as(ValueError("")),
       "fractional_max_pool3d requires specifying either an output_size or an output_ratio"},
      {"kernel_length",
       [&] {
         fractional_max_pool2d(x, {2, 2, 2}, o3, {}, s);
       },
       as(ValueError("")), "kernel_size must either be a single Int or tuple of 2 Ints"},
      {"output_size_length",
       [&] {
         fractional_max_pool2d(x, k2, std::vector<int64_t>{3, 3, 3}, {}, s);
       },
       as(ValueError("")), "output_size must either be a single Int or tuple of 2 Ints"},
      {"input_rank",
       [&] {
         fractional_max_pool2d(randn({6, 7}), k2, o3);
       },
       as(ShapeError("")), "fractional_max_pool2d(): Expected 3D or 4D tensor, but got: [6, 7]"},
      {"input_rank_3d",
       [&] {
         fractional_max_pool3d(randn({1, 2, 3, 6, 7, 8}), k2, o3);
       },
       as(ShapeError("")), "fractional_max_pool3d(): Expected 4D or 5D tensor, but got:"},
      {"dtype_int", [&] { fractional_max_pool2d(x.to(DType::int32), k2, o3); }, as(DTypeError("")),
       "fractional_max_pool2d: not implemented for (2, 3, 6, 7) int32"},
      {"dtype_bf16", [&] { fractional_max_pool2d(x.to(DType::bfloat16), k2, o3); },
       as(DTypeError("")), "not implemented for (2, 3, 6, 7) bfloat16"},
      {"dtype_f16_3d", [&] { fractional_max_pool3d(x3.to(DType::float16), k2, o3); },
       as(DTypeError("")), "not implemented for (1, 2, 6, 7, 8) float16"},
      {"empty_channels",
       [&] {
         fractional_max_pool2d(randn({2, 0, 6, 7}), k2, o3);
       },
       as(ShapeError("")),
       "Expected input to have non-zero size for non-batch dimensions, but got [2, 0, 6, 7] "
       "with dimension 1 being empty."},
      {"empty_height",
       [&] {
         fractional_max_pool2d(randn({2, 3, 0, 7}), k2, o3);
       },
       as(ShapeError("")), "with dimension 2 being empty."},
      {"pool_height",
       [&] {
         fractional_max_pool2d(x, k2, std::vector<int64_t>{6, 3}, {}, s);
       },
       as(ShapeError("")),
       "fractional_max_pool2d(): pool height 2 too large relative to input height 6"},
      {"pool_width",
       [&] {
         fractional_max_pool2d(x, k2, std::vector<int64_t>{5, 7}, {}, s);
       },
       as(ShapeError("")),
       "fractional_max_pool2d(): pool width 2 too large relative to input width 7"},
      {"kernel_height", [&] { fractional_max_pool2d(x, {7}, o3, {}, s); }, as(ShapeError("")),
       "pool height 7 too large relative to input height 6"},
      // The 3-d bound is strict: out + k - 1 < in.
      {"pool_time_3d",
       [&] {
         fractional_max_pool3d(x3, k2, std::vector<int64_t>{5, 5, 6});
       },
       as(ShapeError("")),
       "fractional_max_pool3d_out(): pool time 2 too large relative to input time 6"},
      {"pool_height_3d",
       [&] {
         fractional_max_pool3d(x3, k2, std::vector<int64_t>{4, 6, 6});
       },
       as(ShapeError("")),
       "fractional_max_pool3d_out(): pool height 2 too large relative to input height 7"},
      {"pool_width_3d",
       [&] {
         fractional_max_pool3d(x3, k2, std::vector<int64_t>{4, 5, 7});
       },
       as(ShapeError("")),
       "fractional_max_pool3d_out(): pool width 2 too large relative to input width 8"},
      {"ratio_above_one", [&] { fractional_max_pool2d(x, k2, std::nullopt, {{1.5}}, s); },
       as(ShapeError("")), "pool height 2 too large relative to input height 6"},
      {"ratio_negative", [&] { fractional_max_pool2d(x, k2, std::nullopt, {{-0.5}}, s); },
       as(ShapeError("")), "Trying to create tensor with negative dimension -3"},
      {"output_negative",
       [&] {
         fractional_max_pool2d(x, k2, std::vector<int64_t>{-1, 3}, {}, s);
       },
       as(ShapeError("")), "Trying to create tensor with negative dimension -1"},
      {"kernel_zero", [&] { fractional_max_pool2d(x, {0}, o3, {}, s); }, as(ValueError("")),
       "kernel_size must be positive, got (0, 0)"},
      {"kernel_negative_3d",
       [&] {
         fractional_max_pool3d(x3, {2, -1, 2}, o3);
       },
       as(ValueError("")), "kernel_size must be positive, got (2, -1, 2)"},
      {"samples_dtype", [&] { fractional_max_pool2d(x, k2, o3, {}, s.to(DType::float64)); },
       as(DTypeError("")), "Expect _random_samples to have the same dtype as input (float32)"},
      {"samples_rank",
       [&] {
         fractional_max_pool2d(x, k2, o3, {}, rand({2, 3}));
       },
       as(ShapeError("")), "Expect _random_samples to have 3 dimensions, got 2"},
      {"samples_rank_4",
       [&] {
         fractional_max_pool2d(x, k2, o3, {}, rand({2, 3, 2, 1}));
       },
       as(ShapeError("")), "Expect _random_samples to have 3 dimensions, got 4"},
      {"samples_batch",
       [&] {
         fractional_max_pool2d(x, k2, o3, {}, rand({1, 3, 2}));
       },
       as(ShapeError("")), "Expect _random_samples.size(0) no less then input batch size (2)"},
      {"samples_channels",
       [&] {
         fractional_max_pool2d(x, k2, o3, {}, rand({2, 4, 2}));
       },
       as(ShapeError("")), "Expect _random_samples.size(1) equals to input channel size (3)"},
      {"samples_dims",
       [&] {
         fractional_max_pool2d(x, k2, o3, {}, rand({2, 3, 3}));
       },
       as(ShapeError("")), "Expect _random_samples.size(2) equals to 2; got 3."},
      {"samples_dims_3d",
       [&] {
         fractional_max_pool3d(x3, k2, o3, {}, rand({1, 2, 2}));
       },
       as(ShapeError("")), "Expect _random_samples.size(2) equals to 3; got 2."},
      // A sample whose products leave int's range on one side only: torch reads outside x.
      // (s + 1) * 2 leaves int's range where s * 2 does not (H: alpha (6 - 2) / (3 - 1)).
      {"sample_huge",
       [&] {
         const TensorOptions f64{.dtype = DType::float64};
         fractional_max_pool2d(x.to(DType::float64), k2, o3, {},
                               full({2, 3, 2}, 1073741823.5, f64));
       },
       as(ValueError("")), "outside the input"},
      {"ratio_nan", [&] { fractional_max_pool2d(x, k2, std::nullopt, {{std::nan("")}}, s); },
       as(ValueError("")), "output_ratio nan gives no output size"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    c.expect(c.run, c.message);
  }
}

// torch's functional takes output_size when both are given; a ratio truncates in * ratio.
TEST(FractionalMaxPoolTorch, OutputSizeFromRatioOrSize) {
  const Tensor x = randn({2, 3, 10, 9});
  const Tensor s = rand({2, 3, 2});
  EXPECT_EQ(fractional_max_pool2d(x, {2}, std::vector<int64_t>{4, 5}, {{0.5}}, s).sizes(),
            (Shape{2, 3, 4, 5}));
  // 10 * 0.7 = 7.000000000000001 and 9 * 0.7 = 6.3: 7 and 6, as Python's int().
  EXPECT_EQ(fractional_max_pool2d(x, {2}, std::nullopt, {{0.7}}, s).sizes(), (Shape{2, 3, 7, 6}));
  EXPECT_EQ(fractional_max_pool2d(x, {3, 2}, std::nullopt, {{0.5, 0.3}}, s).sizes(),
            (Shape{2, 3, 5, 2}));
  const Tensor x3 = randn({4, 9, 10, 11});
  EXPECT_EQ(fractional_max_pool3d(x3, {2}, std::nullopt, {{0.5, 0.45, 0.6}}).sizes(),
            (Shape{4, 4, 4, 6}));
  EXPECT_EQ(fractional_max_pool3d(x3, {2}, std::vector<int64_t>{1}).sizes(), (Shape{4, 1, 1, 1}));
}

// The gradient is differentiable (create_graph): d/dg of <grad_x, w> gathers w at the indices,
// torch's max_pool_double_backward.
TEST(FractionalMaxPoolTorch, DoubleBackward) {
  const Tensor x = randn({2, 2, 7, 8}, {.dtype = DType::float64}).set_requires_grad(true);
  const Tensor s = rand({2, 2, 2}, {.dtype = DType::float64});
  const auto [y, idx] =
      fractional_max_pool2d_with_indices(x, {3}, std::vector<int64_t>{4, 4}, {}, s);
  const Tensor g = randn(y.sizes(), {.dtype = DType::float64}).set_requires_grad(true);
  const Tensor gx = fabric::grad({y}, {x}, {g}, std::nullopt, /*create_graph=*/true)[0];
  const Tensor w = randn(gx.sizes(), {.dtype = DType::float64});
  const Tensor gg = fabric::grad({sum(mul(gx, w))}, {g})[0];
  const Tensor want = gather(w.reshape({2, 2, 56}), -1, idx.reshape({2, 2, 16})).view(y.sizes());
  EXPECT_EQ(gg.to_vector<double>(), want.to_vector<double>());
}

// On CPU autocast's float32 list, as torch 1.13: a bfloat16 input (and its samples, given or
// drawn in bfloat16) pools in float32, as the same values in float32 do.
TEST(FractionalMaxPoolTorch, CpuAutocastRunsInFloat32) {
  const Tensor x = randn({2, 3, 9, 8}).to(DType::bfloat16);
  const Tensor s = rand({2, 3, 2}).to(DType::bfloat16);
  const Tensor x3 = randn({1, 2, 7, 8, 9}).to(DType::bfloat16);
  const std::optional<std::vector<int64_t>> o = std::vector<int64_t>{4};
  const Tensor want = fractional_max_pool2d(x.to(DType::float32), {2}, o, {}, s.to(DType::float32));
  CpuAutocast guard(DType::bfloat16);
  const Tensor y = fractional_max_pool2d(x, {2}, o, {}, s);
  EXPECT_EQ(y.dtype(), DType::float32);
  EXPECT_EQ(bits_of(y), bits_of(want));
  EXPECT_EQ(fractional_max_pool2d(x, {2}, o).dtype(), DType::float32);
  EXPECT_EQ(fractional_max_pool3d(x3, {2}, o).dtype(), DType::float32);
}

}  // namespace
}  // namespace fabric
