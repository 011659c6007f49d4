// The 3-d pools, adaptive max pools (3-d, 2-d, 1-d), lp pools and unfold/fold against torch 1.13
// itself: values, indices and input gradients, bit for bit (tests/ops/pooling3d_torch_rows.h, from
// tools/fixtures/make_pooling3d_rows.py), max ties and NaN as torch, argument errors and backward
// node names. The naive-reference and finite-difference checks are the harness rows of
// op_cases_pooling3d.cpp.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_pooling3d.h"
#include "tests/common/cpu_autocast.h"
#include "tests/common/expect_error.h"
#include "tests/ops/pooling3d_torch_rows.h"

namespace fabric {
namespace {

// (values, indices or undefined) of the op each fixture row names, with the fixture's arguments.
using PoolFn = std::function<std::tuple<Tensor, Tensor>(const Tensor&)>;

PoolFn values(std::function<Tensor(const Tensor&)> f) {
  return [f](const Tensor& x) { return std::tuple<Tensor, Tensor>{f(x), Tensor()}; };
}

const std::map<std::string, PoolFn>& calls() {
  static const std::map<std::string, PoolFn> table = {
      {"max_pool3d_k3_s2_p1",
       [](const Tensor& x) {
         const Pool2dAttrs a{{3, 3, 3}, {2, 2, 2}, {1, 1, 1}};
         return std::tuple<Tensor, Tensor>{max_pool3d(x, {3}, {2}, {1}), max_pool3d_indices(x, a)};
       }},
      {"max_pool3d_ties",
       [](const Tensor& x) {
         const Pool2dAttrs a{{2, 2, 2}, {2, 2, 2}, {0, 0, 0}};
         return std::tuple<Tensor, Tensor>{max_pool3d(x, {2}), max_pool3d_indices(x, a)};
       }},
      {"avg_pool3d_rect", values([](const Tensor& x) {
         return avg_pool3d(x, {2, 3, 1}, {1, 2, 1}, {1, 1, 0});
       })},
      {"adaptive_avg_pool3d_non_divisible", values([](const Tensor& x) {
         return adaptive_avg_pool3d(x, {3, 4, 2});
       })},
      {"adaptive_avg_pool3d_unbatched",
       values([](const Tensor& x) { return adaptive_avg_pool3d(x, {3}); })},
      {"adaptive_max_pool2d_non_divisible",
       [](const Tensor& x) {
         return adaptive_max_pool2d(x, {3, 4});
       }},
      {"adaptive_max_pool2d_ties",
       [](const Tensor& x) {
         return adaptive_max_pool2d(x, {4, 3});
       }},
      {"adaptive_max_pool2d_larger",
       [](const Tensor& x) {
         return adaptive_max_pool2d(x, {3, 5});
       }},
      {"adaptive_max_pool1d_non_divisible",
       [](const Tensor& x) { return adaptive_max_pool1d(x, 4); }},
      {"adaptive_max_pool3d_non_divisible",
       [](const Tensor& x) {
         return adaptive_max_pool3d(x, {3, 4, 3});
       }},
      {"adaptive_max_pool3d_ties",
       [](const Tensor& x) {
         return adaptive_max_pool3d(x, {3, 4, 3});
       }},
      {"adaptive_max_pool3d_larger",
       [](const Tensor& x) {
         return adaptive_max_pool3d(x, {3, 5, 4});
       }},
      {"adaptive_max_pool3d_unbatched",
       [](const Tensor& x) { return adaptive_max_pool3d(x, {3}); }},
      {"adaptive_max_pool3d_nan_inf",
       [](const Tensor& x) {
         return adaptive_max_pool3d(x, {2, 2, 3});
       }},
      {"lp_pool2d_p2", values([](const Tensor& x) { return lp_pool2d(x, 2, {2}); })},
      {"lp_pool2d_p3_rect", values([](const Tensor& x) {
         return lp_pool2d(x, 3, {2, 3}, {1, 2});
       })},
      {"lp_pool1d_p2", values([](const Tensor& x) { return lp_pool1d(x, 2, 3); })},
      {"lp_pool1d_p3_stride", values([](const Tensor& x) { return lp_pool1d(x, 3, 3, 2); })},
      {"unfold_all_args", values([](const Tensor& x) {
         return unfold(x, {3, 2}, {2, 1}, {1, 2}, {2, 3});
       })},
      {"unfold_unbatched", values([](const Tensor& x) { return unfold(x, {3}, {1}, {1}, {2}); })},
      {"fold_overlapping", values([](const Tensor& x) {
         return fold(x, {4, 5}, {2});
       })},
      {"fold_all_args", values([](const Tensor& x) {
         return fold(x, {6, 7}, {3, 2}, {2, 1}, {1, 2}, {2, 3});
       })},
  };
  return table;
}

// The p = 3 power pools' gradients differ from torch's in the last bits (its pow and the
// gradient's formula): these rows are compared to 1e-12 relative, every other row bit for bit.
bool exact_row(const std::string& name) {
  return !name.ends_with("_p3_rect") && !name.ends_with("_p3_stride");
}

// Every element's bits equal torch's (NaN included), or with `exact` false within 1e-12
// relative; the first few differences are named.
void expect_bits(const std::vector<double>& got, const std::vector<double>& want, const char* what,
                 bool exact = true) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int shown = 0, wrong = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::bit_cast<uint64_t>(got[i]) == std::bit_cast<uint64_t>(want[i])) continue;
    if (!exact && std::abs(got[i] - want[i]) <= 1e-12 * std::max(1.0, std::abs(want[i]))) continue;
    ++wrong;
    if (shown++ < 5)
      ADD_FAILURE() << what << " " << i << ": " << std::hexfloat << got[i] << " vs torch "
                    << want[i] << std::defaultfloat;
  }
  EXPECT_EQ(wrong, 0) << what << ": elements that differ from torch";
}

TEST(Pooling3dTorch, ValuesIndicesAndGradientsMatchTorch113) {
  for (const pooling3d_torch::Row& r : pooling3d_torch::rows()) {
    SCOPED_TRACE(r.name);
    auto call = calls().find(r.name);
    ASSERT_NE(call, calls().end()) << "no call for fixture row " << r.name;
    Tensor x = from_vector(r.x, r.x_shape, {.dtype = DType::float64});
    x.set_requires_grad(true);
    auto [y, idx] = call->second(x);
    const bool exact = exact_row(r.name);
    expect_bits(y.to_vector<double>(), r.y, "output", exact);
    if (!r.indices.empty()) {
      ASSERT_TRUE(idx.defined());
      EXPECT_EQ(idx.dtype(), DType::int64);
      EXPECT_EQ(idx.sizes(), y.sizes());
      EXPECT_EQ(idx.to_vector<int64_t>(), r.indices);
    }
    y.backward(from_vector(r.g, y.sizes(), {.dtype = DType::float64}));
    expect_bits(x.grad().to_vector<double>(), r.grad, "input gradient", exact);
  }
}

// NaN wins a max window (the last NaN, as torch's kernels take every NaN they meet); of equal
// maxima the first wins.
TEST(Pooling3dTorch, MaxNanAndTiesAsTorch) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Row {
    const char* name;
    std::vector<double> x;  // one (1, 1, 4) plane
    int64_t index;
  };
  const std::vector<Row> rows = {{"nan_last", {1, nan, 3, nan}, 3},
                                 {"tie_first", {1, 3, 3, 2}, 1},
                                 {"nan_only", {nan, 0, 0, 0}, 0}};
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    auto [v, i] = adaptive_max_pool2d(from_vector(r.x, {1, 1, 4}, {.dtype = DType::float64}), {1});
    EXPECT_EQ(i.to_vector<int64_t>(), std::vector<int64_t>{r.index});
    const double got = v.to_vector<double>()[0], want = r.x[static_cast<size_t>(r.index)];
    EXPECT_TRUE(got == want || (std::isnan(got) && std::isnan(want))) << got;
    auto [v3, i3] =
        adaptive_max_pool3d(from_vector(r.x, {1, 1, 1, 4}, {.dtype = DType::float64}), {1});
    EXPECT_EQ(i3.to_vector<int64_t>(), std::vector<int64_t>{r.index});
    const double got3 = v3.to_vector<double>()[0];
    EXPECT_TRUE(got3 == want || (std::isnan(got3) && std::isnan(want))) << got3;
    Tensor x3 = from_vector(r.x, {1, 1, 1, 1, 4}, {.dtype = DType::float64});
    const Tensor m = max_pool3d(x3, {1, 1, 4});
    EXPECT_EQ(max_pool3d_indices(x3, {{1, 1, 4}, {1, 1, 4}, {0, 0, 0}}).to_vector<int64_t>(),
              std::vector<int64_t>{r.index});
    EXPECT_TRUE(std::isnan(want) ? std::isnan(m.to_vector<double>()[0])
                                 : m.to_vector<double>()[0] == want);
  }
}

// torch 1.13's CPU has no float16/bfloat16 adaptive_max_pool3d; fabric's picks the same positions
// as float32 on the same values, and its gradient is the float32 one rounded (the scatter_add
// adds in float32, as the 2-d pool's).
TEST(Pooling3dTorch, AdaptiveMaxPool3dSixteenBitIsFloat32Rounded) {
  for (DType dt : {DType::bfloat16, DType::float16}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    Tensor x32 = randn({1, 2, 5, 7, 4}).to(dt).to(DType::float32);
    Tensor x16 = x32.to(dt);
    x32.set_requires_grad(true);
    x16.set_requires_grad(true);
    auto [v32, i32] = adaptive_max_pool3d(x32, {3, 4, 3});
    auto [v16, i16] = adaptive_max_pool3d(x16, {3, 4, 3});
    EXPECT_EQ(v16.dtype(), dt);
    EXPECT_EQ(i16.to_vector<int64_t>(), i32.to_vector<int64_t>());
    EXPECT_EQ(v16.to(DType::float32).to_vector<float>(), v32.to_vector<float>());
    const Tensor g = randn(v32.sizes()).to(dt);
    v32.backward(g.to(DType::float32));
    v16.backward(g);
    EXPECT_EQ(x16.grad().to(DType::float32).to_vector<float>(),
              x32.grad().to(dt).to(DType::float32).to_vector<float>());
  }
}

TEST(Pooling3dTorch, OutputShapes) {
  struct Row {
    const char* name;
    std::function<Tensor()> run;
    Shape want;
  };
  const std::vector<Row> rows = {
      {"max_pool3d_unbatched",
       [] {
         return max_pool3d(randn({2, 4, 5, 6}), {2});
       },
       {2, 2, 2, 3}},
      {"avg_pool3d_zero_batch",
       [] {
         return avg_pool3d(randn({0, 2, 4, 4, 4}), {2});
       },
       {0, 2, 2, 2, 2}},
      {"adaptive_avg_pool3d_zero_output",
       [] {
         return adaptive_avg_pool3d(randn({1, 2, 3, 3, 3}), {0, 2, 2});
       },
       {1, 2, 0, 2, 2}},
      // torch's adaptive pools check every dim but the first, whatever the rank.
      {"adaptive_avg_pool3d_unbatched_no_channels",
       [] {
         return adaptive_avg_pool3d(randn({0, 3, 3, 3}), {2});
       },
       {0, 2, 2, 2}},
      {"adaptive_max_pool2d_unbatched_no_channels",
       [] {
         return std::get<0>(adaptive_max_pool2d(randn({0, 3, 3}), {2}));
       },
       {0, 2, 2}},
      {"adaptive_max_pool3d_unbatched_no_channels",
       [] {
         return std::get<0>(adaptive_max_pool3d(randn({0, 3, 3, 3}), {2}));
       },
       {0, 2, 2, 2}},
      {"adaptive_max_pool3d_zero_batch_indices",
       [] {
         return std::get<1>(adaptive_max_pool3d(randn({0, 2, 3, 3, 3}), {2}));
       },
       {0, 2, 2, 2, 2}},
      {"adaptive_max_pool3d_zero_output",
       [] {
         return std::get<0>(adaptive_max_pool3d(randn({1, 2, 3, 3, 3}), {0, 2, 2}));
       },
       {1, 2, 0, 2, 2}},
      {"adaptive_max_pool1d_unbatched",
       [] {
         return std::get<0>(adaptive_max_pool1d(randn({3, 7}), 2));
       },
       {3, 2}},
      {"lp_pool1d_unbatched",
       [] {
         return lp_pool1d(randn({3, 7}), 2, 2);
       },
       {3, 3}},
      {"unfold_unbatched",
       [] {
         return unfold(randn({3, 5, 6}), {2});
       },
       {12, 20}},
      {"unfold_zero_batch",
       [] {
         return unfold(randn({0, 3, 5, 6}), {2});
       },
       {0, 12, 20}},
      {"fold_unbatched",
       [] {
         return fold(randn({8, 12}), {4, 5}, {2});
       },
       {2, 4, 5}},
      {"fold_zero_batch",
       [] {
         return fold(randn({0, 8, 12}), {4, 5}, {2});
       },
       {0, 2, 4, 5}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(r.run().sizes(), r.want);
  }
}

TEST(Pooling3dTorch, ErrorsAsTorch) {
  struct Row {
    const char* name;
    std::function<void()> run;
    std::string message;
  };
  const Tensor x5 = zeros({1, 1, 4, 4, 4}), x4 = zeros({1, 1, 5, 6});
  const std::vector<Row> rows = {
      {"max_pool3d_pad", [&] { max_pool3d(x5, {2}, {}, {2}); },
       "max_pool3d: pad should be at most half of the kernel size, but got padding (2, 2, 2) for "
       "kernel_size (2, 2, 2)"},
      {"max_pool3d_rank",
       [&] {
         max_pool3d(zeros({4, 4, 4}), {2});
       },
       "max_pool3d: expected a 4-D (C, D, H, W) or 5-D (N, C, D, H, W) input, got (4, 4, 4)"},
      {"avg_pool3d_too_small",
       [&] {
         avg_pool3d(zeros({1, 1, 1, 4, 4}), {2});
       },
       "avg_pool3d: output size is too small: input (1, 1, 1, 4, 4) with kernel_size (2, 2, 2)"},
      {"avg_pool3d_kernel_arity",
       [&] {
         avg_pool3d(x5, {2, 2});
       },
       "avg_pool3d: kernel_size must have 1 or 3 elements, got (2, 2)"},
      {"adaptive_avg_pool3d_rank",
       [&] {
         adaptive_avg_pool3d(zeros({1, 4, 4}), {2});
       },
       "adaptive_avg_pool3d: expected a 4-D (C, D, H, W) or 5-D (N, C, D, H, W) input, got "
       "(1, 4, 4)"},
      {"adaptive_max_pool2d_output_arity",
       [&] {
         adaptive_max_pool2d(zeros({1, 4, 4}), {2, 3, 4});
       },
       "adaptive_max_pool2d: output_size must have 1 or 2 elements, got (2, 3, 4)"},
      {"adaptive_max_pool2d_empty",
       [&] {
         adaptive_max_pool2d(zeros({1, 0, 4}), {2});
       },
       "adaptive_max_pool2d: expected the input to have non-zero sizes for the non-batch "
       "dimensions, but input (1, 0, 4) has dimension 1 empty"},
      {"adaptive_max_pool2d_dtype",
       [&] {
         adaptive_max_pool2d(zeros({1, 3, 3}, {.dtype = DType::int64}), {2});
       },
       "adaptive_max_pool2d: input (1, 3, 3) int64 has an unsupported dtype"},
      {"adaptive_max_pool3d_output_arity",
       [&] {
         adaptive_max_pool3d(zeros({1, 3, 3, 3}), {2, 2});
       },
       "adaptive_max_pool3d: output_size must have 1 or 3 elements, got (2, 2)"},
      {"adaptive_max_pool3d_negative",
       [&] {
         adaptive_max_pool3d(zeros({1, 3, 3, 3}), {2, -1, 2});
       },
       "adaptive_max_pool3d: elements of output_size must be greater than or equal to 0, got "
       "(2, -1, 2)"},
      {"adaptive_max_pool3d_rank",
       [&] {
         adaptive_max_pool3d(zeros({3, 3, 3}), {2});
       },
       "adaptive_max_pool3d: expected a 4-D (C, D, H, W) or 5-D (N, C, D, H, W) input, got "
       "(3, 3, 3)"},
      {"adaptive_max_pool3d_empty",
       [&] {
         adaptive_max_pool3d(zeros({1, 0, 3, 3, 3}), {2});
       },
       "adaptive_max_pool3d: expected the input to have non-zero sizes for the non-batch "
       "dimensions, but input (1, 0, 3, 3, 3) has dimension 1 empty"},
      {"adaptive_max_pool3d_unbatched_empty",
       [&] {
         adaptive_max_pool3d(zeros({2, 0, 3, 3}), {2});
       },
       "adaptive_max_pool3d: expected the input to have non-zero sizes for the non-batch "
       "dimensions, but input (2, 0, 3, 3) has dimension 1 empty"},
      {"adaptive_max_pool3d_dtype",
       [&] {
         adaptive_max_pool3d(zeros({1, 3, 3, 3}, {.dtype = DType::int64}), {2});
       },
       "adaptive_max_pool3d: input (1, 3, 3, 3) int64 has an unsupported dtype"},
      {"adaptive_max_pool1d_rank", [&] { adaptive_max_pool1d(zeros({4}), 2); },
       "adaptive_max_pool1d: expected a 2-D (C, L) or 3-D (N, C, L) input, got (4,)"},
      // The 1-d and power pools name themselves, not the 2-d pool they are composed of.
      {"adaptive_max_pool1d_negative",
       [&] {
         adaptive_max_pool1d(zeros({1, 4, 4}), -1);
       },
       "adaptive_max_pool1d: output_size must be non-negative, got -1"},
      {"lp_pool1d_too_small",
       [&] {
         lp_pool1d(zeros({1, 1, 4}), 2.0, 5);
       },
       "lp_pool1d: output size is too small: input (1, 1, 4) is smaller than kernel_size (5,)"},
      {"lp_pool1d_stride",
       [&] {
         lp_pool1d(zeros({1, 1, 4}), 2.0, 2, 0);
       },
       "lp_pool1d: stride must be positive, got (0,)"},
      {"lp_pool2d_too_small", [&] { lp_pool2d(x4, 2.0, {6}); },
       "lp_pool2d: output size is too small: input (1, 1, 5, 6) is smaller than kernel_size (6, "
       "6)"},
      {"unfold_kernel", [&] { unfold(x4, {0}); },
       "unfold: kernel size should be greater than zero, but got kernel_size (0, 0)"},
      {"unfold_stride", [&] { unfold(x4, {2}, {1}, {0}, {0}); },
       "unfold: stride should be greater than zero, but got stride (0, 0)"},
      {"unfold_dilation", [&] { unfold(x4, {2}, {0}); },
       "unfold: dilation should be greater than zero, but got dilation (0, 0)"},
      {"unfold_padding", [&] { unfold(x4, {2}, {1}, {-1}); },
       "unfold: padding should be non-negative, but got padding (-1, -1)"},
      {"unfold_no_block",
       [&] {
         unfold(zeros({1, 1, 2, 6}), {3});
       },
       "unfold: given input with spatial size (2, 6), kernel_size=(3, 3), dilation=(1, 1), "
       "padding=(0, 0), calculated shape of the array of sliding blocks as (0, 4), but its "
       "components must be at least one"},
      {"unfold_rank",
       [&] {
         unfold(zeros({5, 6}), {2});
       },
       "unfold: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input"},
      {"unfold_empty_channels",
       [&] {
         unfold(zeros({1, 0, 5, 6}), {2});
       },
       "other non-zero dimensions, got (1, 0, 5, 6)"},
      {"unfold_dtype",
       [&] {
         unfold(zeros({1, 1, 5, 6}, {.dtype = DType::int64}), {2});
       },
       "unfold: input (1, 1, 5, 6) int64 has an unsupported dtype"},
      {"fold_divisible",
       [&] {
         fold(zeros({1, 5, 6}), {4, 5}, {2});
       },
       "fold: expected size of input's dimension 1 to be divisible by the product of "
       "kernel_size, but got input.size(1)=5 and kernel_size=(2, 2)"},
      {"fold_blocks",
       [&] {
         fold(zeros({1, 8, 6}), {4, 5}, {2});
       },
       "fold: given output_size=(4, 5), kernel_size=(2, 2), dilation=(1, 1), padding=(0, 0), "
       "stride=(1, 1), expected size of input's dimension 2 to match the calculated number of "
       "sliding blocks 3 * 4 = 12, but got input.size(2)=6"},
      {"fold_rank",
       [&] {
         fold(zeros({2, 1, 8, 12}), {4, 5}, {2});
       },
       "fold: expected a 2-D (C*kH*kW, L) or 3-D (N, C*kH*kW, L) input"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    std::string msg;
    try {
      r.run();
      ADD_FAILURE() << "no exception";
    } catch (const Error& e) {
      msg = e.what();
    }
    EXPECT_CONTAINS(msg, r.message);
  }
}

// CPU autocast runs the 3-d pools in float32 (torch's CPU fp32 list, adaptive_max_pool3d on it,
// adaptive_max_pool2d not); the others keep the input's dtype.
TEST(Pooling3dTorch, CpuAutocastAsTorch) {
  struct Row {
    const char* name;
    std::function<Tensor(const Tensor&)> run;
    Shape x;
    DType want;
  };
  const std::vector<Row> rows = {
      {"max_pool3d",
       [](const Tensor& x) { return max_pool3d(x, {2}); },
       {1, 1, 2, 2, 2},
       DType::float32},
      {"avg_pool3d",
       [](const Tensor& x) { return avg_pool3d(x, {2}); },
       {1, 1, 2, 2, 2},
       DType::float32},
      {"adaptive_avg_pool3d",
       [](const Tensor& x) { return adaptive_avg_pool3d(x, {1}); },
       {1, 1, 2, 2, 2},
       DType::float32},
      {"adaptive_max_pool3d",
       [](const Tensor& x) { return std::get<0>(adaptive_max_pool3d(x, {1})); },
       {1, 1, 2, 2, 2},
       DType::float32},
      {"adaptive_max_pool3d_indices",
       [](const Tensor& x) { return std::get<1>(adaptive_max_pool3d(x, {1})); },
       {1, 2, 2, 2},
       DType::int64},
      {"adaptive_max_pool2d",
       [](const Tensor& x) { return std::get<0>(adaptive_max_pool2d(x, {1})); },
       {1, 2, 2},
       DType::bfloat16},
      {"unfold", [](const Tensor& x) { return unfold(x, {1}); }, {1, 2, 2}, DType::bfloat16},
      {"fold",
       [](const Tensor& x) {
         return fold(x, {2, 2}, {1});
       },
       {1, 4},
       DType::bfloat16},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    CpuAutocast guard(DType::bfloat16);
    EXPECT_EQ(r.run(zeros(r.x, {.dtype = DType::bfloat16})).dtype(), r.want);
  }
}

TEST(Pooling3dTorch, NodeNamesAreTorchs) {
  struct Row {
    std::function<Tensor(const Tensor&)> run;
    Shape x;
    const char* name;
  };
  const std::vector<Row> rows = {
      {[](const Tensor& x) { return max_pool3d(x, {2}); },
       {1, 1, 2, 2, 2},
       "MaxPool3DWithIndicesBackward0"},
      {[](const Tensor& x) { return avg_pool3d(x, {2}); }, {1, 1, 2, 2, 2}, "AvgPool3DBackward0"},
      {[](const Tensor& x) {
         return adaptive_avg_pool3d(x, {1, 1, 2});
       },
       {1, 1, 2, 2, 2},
       "AdaptiveAvgPool3DBackward0"},
      // To 1 x 1 x 1 torch 1.13 takes the mean.
      {[](const Tensor& x) { return adaptive_avg_pool3d(x, {1}); },
       {1, 1, 2, 2, 2},
       "MeanBackward1"},
      {[](const Tensor& x) { return std::get<0>(adaptive_max_pool2d(x, {1})); },
       {1, 2, 2},
       "AdaptiveMaxPool2DBackward0"},
      {[](const Tensor& x) {
         return std::get<0>(adaptive_max_pool3d(x, {1, 2, 1}));
       },
       {1, 1, 2, 2, 2},
       "AdaptiveMaxPool3DBackward0"},
      {[](const Tensor& x) { return unfold(x, {1}); }, {1, 2, 2}, "Im2ColBackward0"},
      {[](const Tensor& x) {
         return fold(x, {2, 2}, {1});
       },
       {1, 4},
       "Col2ImBackward0"},
  };
  for (const Row& r : rows) {
    Tensor x = zeros(r.x);
    x.set_requires_grad(true);
    EXPECT_EQ(grad_fn_name(r.run(x)), r.name);
  }
}

}  // namespace
}  // namespace fabric
