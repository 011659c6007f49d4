// max_unpool1d/2d/3d against torch 1.13 (tests/ops/max_unpool_torch_rows.h, from
// tools/fixtures/make_max_unpool_rows.py): max pooling with indices then unpooling (the round
// trip), values and both gradients bit for bit in float32; repeated indices (the last write
// wins); float64 and the 16-bit dtypes (values move unchanged); torch's argument errors and empty
// inputs.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/functional_pool1d.h"
#include "tensor/factory.h"
#include "tensor/max_unpool.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"
#include "tensor/ops_pooling3d.h"
#include "tests/common/cpu_autocast.h"
#include "tests/common/expect_error.h"
#include "tests/ops/max_unpool_torch_rows.h"

namespace fabric {
namespace {

using max_unpool_torch::Row;

// Every element's bits equal the fixture's (after both went through `dtype`); the first few
// differences are named.
void expect_bits(const Tensor& got, const std::vector<double>& want, DType dtype,
                 const std::string& what) {
  const std::vector<double> g = got.to_vector<double>();
  const std::vector<double> w =
      want.empty() ? want : from_vector(want, {}, {.dtype = dtype}).to_vector<double>();
  ASSERT_EQ(g.size(), w.size()) << what;
  int shown = 0;
  for (size_t i = 0; i < g.size() && shown < 5; ++i) {
    if (std::bit_cast<uint64_t>(g[i]) == std::bit_cast<uint64_t>(w[i])) continue;
    ADD_FAILURE() << what << "[" << i << "]: " << g[i] << " vs torch " << w[i];
    ++shown;
  }
}

Tensor unpool(const Row& r, const Tensor& p, const Tensor& idx) {
  if (r.dims == 1) {
    const std::optional<int64_t> stride =
        r.stride.empty() ? std::nullopt : std::optional<int64_t>(r.stride[0]);
    return max_unpool1d(p, idx, r.kernel[0], stride, r.padding[0], r.output_size);
  }
  if (r.dims == 2) return max_unpool2d(p, idx, r.kernel, r.stride, r.padding, r.output_size);
  return max_unpool3d(p, idx, r.kernel, r.stride, r.padding, r.output_size);
}

Tensor pool(const Row& r, const Tensor& x) {
  if (r.dims == 1) {
    const std::optional<int64_t> stride =
        r.stride.empty() ? std::nullopt : std::optional<int64_t>(r.stride[0]);
    return nn::max_pool1d(x, r.kernel[0], stride, r.padding[0]);
  }
  if (r.dims == 2) return max_pool2d(x, r.kernel, r.stride, r.padding);
  return max_pool3d(x, r.kernel, r.stride, r.padding);
}

// The pool's own indices, for the 2-d and 3-d rows (fabric's functional 1-d pool has none).
Tensor pool_indices(const Row& r, const Tensor& x) {
  auto full = [&](const std::vector<int64_t>& v) {
    return v.size() == 1 ? std::vector<int64_t>(r.dims, v[0]) : v;
  };
  const Pool2dAttrs a{full(r.kernel), full(r.stride.empty() ? r.kernel : r.stride),
                      full(r.padding)};
  return r.dims == 2 ? max_pool2d_indices(x.detach(), a) : max_pool3d_indices(x.detach(), a);
}

Tensor indices_of(const Row& r) {
  return from_vector(r.indices, r.p_shape, {.dtype = DType::int64});
}

// Pool (pool rows), unpool and backward in float32: values, indices and gradients as torch's.
TEST(MaxUnpoolTorch, RoundTripAndGradientsBitForBit) {
  for (const Row& r : max_unpool_torch::rows()) {
    SCOPED_TRACE(r.name);
    const Tensor idx = indices_of(r);
    Tensor x, p;
    if (!r.x.empty()) {
      x = from_vector(r.x, r.x_shape, {.dtype = DType::float32}).set_requires_grad(true);
      p = pool(r, x);
      expect_bits(p, r.p, DType::float32, "pooled");
      if (r.dims > 1) {
        EXPECT_EQ(pool_indices(r, x).to_vector<int64_t>(), r.indices);
      }
    } else {
      p = from_vector(r.p, r.p_shape, {.dtype = DType::float32}).set_requires_grad(true);
    }
    const Tensor y = unpool(r, p, idx);
    EXPECT_EQ(y.sizes(), r.y_shape);
    expect_bits(y, r.y, DType::float32, "output");
    const Tensor g = from_vector(r.g, r.y_shape, {.dtype = DType::float32});
    std::vector<Tensor> inputs{p};
    if (x.defined()) inputs.push_back(x);
    const std::vector<Tensor> grads = fabric::grad({y}, inputs, {g});
    expect_bits(grads[0], r.grad_p, DType::float32, "gradient of the pooled input");
    if (x.defined()) expect_bits(grads[1], r.grad_x, DType::float32, "round-trip gradient");
  }
}

// Values only move, so every floating dtype gives torch's float32 result in its own rounding:
// float64 as torch's CPU, float16 and bfloat16 (torch 1.13's CPU kernel refuses them).
TEST(MaxUnpoolTorch, Float64AndSixteenBitMoveValuesExactly) {
  for (DType dtype : {DType::float64, DType::float16, DType::bfloat16}) {
    for (const Row& r : max_unpool_torch::rows()) {
      SCOPED_TRACE(std::string(r.name) + " " + std::string(dtype_name(dtype)));
      const Tensor p = from_vector(r.p, r.p_shape, {.dtype = dtype}).set_requires_grad(true);
      const Tensor y = unpool(r, p, indices_of(r));
      EXPECT_EQ(y.dtype(), dtype);
      expect_bits(y, r.y, dtype, "output");
      const Tensor g = from_vector(r.g, r.y_shape, {.dtype = dtype});
      expect_bits(fabric::grad({y}, {p}, {g})[0], r.grad_p, dtype, "gradient");
    }
  }
}

// Of indices repeated within a plane, the last value in the input's order lands (torch's CPU
// loop); each repeated position's gradient goes to every input that named it.
TEST(MaxUnpoolTorch, RepeatedIndicesLastWriteWins) {
  const Tensor x =
      from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 2, 2}).set_requires_grad(true);
  const Tensor idx =
      from_vector<int64_t>({3, 3, 3, 3, 0, 0, 0, 1}, {1, 2, 2, 2}, {.dtype = DType::int64});
  const Tensor y = max_unpool2d(x, idx, {2});
  std::vector<float> want(32, 0.0f);
  want[3] = 4;       // plane 0: the fourth write to position 3
  want[16 + 0] = 7;  // plane 1: position 0 written three times, 7 last
  want[16 + 1] = 8;
  EXPECT_EQ(y.to_vector<float>(), want);
  std::vector<float> gv(32);
  for (int i = 0; i < 32; ++i) gv[i] = static_cast<float>(i);
  fabric::backward(y, from_vector(gv, {1, 2, 4, 4}));
  // torch: [3, 3, 3, 3, 16, 16, 16, 17]
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3, 3, 3, 3, 16, 16, 16, 17}));
}

// torch's messages (substrings; fabric prefixes the op and says what it got).
TEST(MaxUnpoolTorch, ArgumentErrorsAsTorch) {
  const Tensor x = arange(1, 9, 1, DType::float32).view({1, 2, 2, 2});
  const Tensor i =
      from_vector<int64_t>({0, 3, 10, 15, 1, 1, 2, 2}, {1, 2, 2, 2}, {.dtype = DType::int64});
  const Tensor x1 = arange(1, 7, 1, DType::float32).view({1, 2, 3});
  const Tensor i1 = from_vector<int64_t>({0, 3, 5, 1, 2, 5}, {1, 2, 3}, {.dtype = DType::int64});
  const Tensor x3 = ones({1, 1, 2, 2, 2});
  const Tensor i3 = zeros({1, 1, 2, 2, 2}, {.dtype = DType::int64});
  auto bad = [](std::vector<int64_t> v, Shape s) {
    return from_vector(v, s, {.dtype = DType::int64});
  };
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
      {"index_high",
       [&] {
         max_unpool2d(x, bad({0, 16, -1, 17, 1, 1, 2, 2}, {1, 2, 2, 2}), {2});
       },
       as(IndexError("")), "Found an invalid max index: 17 (output volumes are of size 4x4"},
      {"index_negative",
       [&] {
         max_unpool2d(x, bad({0, -3, -1, 2, 1, 1, 2, 2}, {1, 2, 2, 2}), {2});
       },
       as(IndexError("")), "Found an invalid max index: -1 (output volumes are of size 4x4"},
      {"index_small_output",
       [&] {
         max_unpool2d(x, i, {2}, {}, {0}, std::vector<int64_t>{3, 3});
       },
       as(IndexError("")), "Found an invalid max index: 15 (output volumes are of size 3x3"},
      {"index_1d", [&] { max_unpool1d(x1, add(i1, Scalar(1)), 2); }, as(IndexError("")),
       "Found an invalid max index: 6 (output volumes are of size 6x1"},
      {"index_3d",
       [&] {
         max_unpool3d(x3, bad({0, 9, 18, 27, 36, 45, 54, 64}, {1, 1, 2, 2, 2}), {2});
       },
       as(IndexError("")), "Found an invalid max index: 64 (output volumes are of size 4x4x4"},
      {"output_size_length", [&] { max_unpool2d(x, i, {2}, {}, {0}, std::vector<int64_t>{4}); },
       as(ValueError("")),
       "output_size should be a sequence containing 2 or 4 elements, but it has a length of '1'"},
      {"output_size_length_1d",
       [&] {
         max_unpool1d(x1, i1, 2, std::nullopt, 0, std::vector<int64_t>{7, 1});
       },
       as(ValueError("")),
       "output_size should be a sequence containing 1 or 3 elements, but it has a length of '2'"},
      {"output_size_range",
       [&] {
         max_unpool2d(x, i, {2}, {}, {0}, std::vector<int64_t>{2, 5});
       },
       as(ValueError("")), "invalid output_size \"[2, 5]\" (dim 0 must be between 2 and 6)"},
      {"output_size_range_full",
       [&] {
         max_unpool2d(x, i, {2}, {}, {0}, std::vector<int64_t>{1, 2, 4, 6});
       },
       as(ValueError("")), "invalid output_size \"[4, 6]\" (dim 1 must be between 2 and 6)"},
      {"output_size_range_1d",
       [&] { max_unpool1d(x1, i1, 2, std::nullopt, 0, std::vector<int64_t>{8}); },
       as(ValueError("")), "invalid output_size \"[8]\" (dim 0 must be between 4 and 8)"},
      {"indices_int32", [&] { max_unpool2d(x, i.to(DType::int32), {2}); }, as(DTypeError("")),
       "elements in indices should be type int64 but got: "},
      {"indices_shape", [&] { max_unpool2d(x, i.narrow(3, 0, 1), {2}); }, as(ShapeError("")),
       "expected shape of indices to be same as that of the input tensor ((1, 2, 2, 2)) but got "
       "indices tensor with shape: (1, 2, 2, 1)"},
      {"rank_2d",
       [&] {
         max_unpool2d(x.view({2, 4}), i.view({2, 4}), {2});
       },
       as(ShapeError("")),
       "should be 3d (C, H, W) or 4d (N, C, H, W), but got a tensor with 2 dimensions"},
      {"rank_3d",
       [&] {
         max_unpool3d(x3.view({1, 2, 4}), i3.view({1, 2, 4}), {2});
       },
       as(ShapeError("")),
       "should be 4d (C, D, H, W) or 5d (N, C, D, H, W), but got a tensor with 3 dimensions"},
      {"rank_1d", [&] { max_unpool1d(x1.view({6}), i1.view({6}), 2); }, as(ShapeError("")),
       "should be 2d (C, L) or 3d (N, C, L), but got a tensor with 1 dimensions"},
      {"empty_channels",
       [&] {
         max_unpool2d(zeros({1, 0, 2, 2}), zeros({1, 0, 2, 2}, {.dtype = DType::int64}), {2});
       },
       as(ShapeError("")),
       "expected input to have non-zero size for non-batch dimensions, but got (1, 0, 2, 2) "
       "with dimension 1 being empty"},
      {"stride_3d", [&] { max_unpool3d(x3, i3, {2}, {0}); }, as(ValueError("")),
       "strides should be greater than zero, but got stride: (0, 0, 0)"},
      {"integer_input", [&] { max_unpool2d(x.to(DType::int64), i, {2}); }, as(DTypeError("")),
       "not implemented for (1, 2, 2, 2) int64"},
      {"negative_output", [&] { max_unpool2d(x, i, {2}, {}, {3}); }, as(ShapeError("")),
       "the output size [-2, -2] must not be negative"},
      {"kernel_arity",
       [&] {
         max_unpool2d(x, i, {2, 2, 2});
       },
       as(ValueError("")), "kernel_size must have 1 or 2 elements"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    c.expect(c.run, c.message);
  }
}

// torch's sizes and the cases it accepts: a 2-d stride of 0 or a negative padding only change
// the output size; an empty output writes (and checks) nothing; an empty batch or an unbatched
// input without channels gives an empty output, and the empty batch a zero gradient.
TEST(MaxUnpoolTorch, SizesAndEmptyInputsAsTorch) {
  const Tensor x = arange(1, 9, 1, DType::float32).view({1, 2, 2, 2});
  const Tensor i =
      from_vector<int64_t>({0, 3, 10, 15, 1, 1, 2, 2}, {1, 2, 2, 2}, {.dtype = DType::int64});
  EXPECT_EQ(max_unpool2d(x, i, {2}, {}, {-1}).sizes(), (Shape{1, 2, 6, 6}));
  EXPECT_EQ(max_unpool2d(x, i, {2}, {}, {2}).sizes(), (Shape{1, 2, 0, 0}));
  EXPECT_EQ(max_unpool2d(x, i, {2}, {}, {0}, std::vector<int64_t>{1, 2, 5, 5}).sizes(),
            (Shape{1, 2, 5, 5}));
  EXPECT_EQ(max_unpool2d(x[0], i[0], {2}).sizes(), (Shape{2, 4, 4}));
  const Tensor unbatched_empty =
      max_unpool2d(ones({0, 1, 1}), zeros({0, 1, 1}, {.dtype = DType::int64}), {2});
  EXPECT_EQ(unbatched_empty.sizes(), (Shape{0, 2, 2}));
  EXPECT_EQ(
      max_unpool3d(ones({0, 1, 1, 1, 1}), zeros({0, 1, 1, 1, 1}, {.dtype = DType::int64}), {2})
          .sizes(),
      (Shape{0, 1, 2, 2, 2}));
  const Tensor e = zeros({0, 2, 2, 2}).set_requires_grad(true);
  const Tensor y = max_unpool2d(e, zeros({0, 2, 2, 2}, {.dtype = DType::int64}), {2});
  EXPECT_EQ(y.sizes(), (Shape{0, 2, 4, 4}));
  fabric::backward(sum(y));
  EXPECT_EQ(e.grad().sizes(), (Shape{0, 2, 2, 2}));
  // torch: stride 0 (2-d) gives a 2x2 output, where index 15 is out of range.
  EXPECT_CONTAINS(thrown<IndexError>([&] { max_unpool2d(x, i, {2}, {0}); }),
                  "Found an invalid max index: 15 (output volumes are of size 2x2");
}

// A non-contiguous input and indices unpool as their contiguous copies.
TEST(MaxUnpoolTorch, StridedInputs) {
  const Tensor x = randn({2, 3, 4, 4}).set_requires_grad(true);
  const Pool2dAttrs a{{2, 2}, {2, 2}, {0, 0}};
  const Tensor p = max_pool2d(x, {2});
  const Tensor idx = max_pool2d_indices(x, a);
  const Tensor pt = p.transpose(2, 3), it = idx.transpose(2, 3);
  ASSERT_FALSE(pt.is_contiguous());
  const Tensor want = max_unpool2d(pt.contiguous(), it.contiguous(), {2});
  EXPECT_EQ(max_unpool2d(pt, it, {2}).to_vector<float>(), want.to_vector<float>());
}

// The gradient is itself differentiable (create_graph): d/dg of <grad_p, w> is w unpooled.
TEST(MaxUnpoolTorch, DoubleBackward) {
  const Tensor p = randn({1, 2, 2, 3}).set_requires_grad(true);
  const Tensor idx = from_vector<int64_t>({0, 3, 5, 6, 9, 11, 1, 2, 4, 7, 8, 10}, {1, 2, 2, 3},
                                          {.dtype = DType::int64});
  const Tensor y = max_unpool2d(p, idx, {2});
  const Tensor g = randn(y.sizes()).set_requires_grad(true);
  const Tensor gp = fabric::grad({y}, {p}, {g}, std::nullopt, /*create_graph=*/true)[0];
  const Tensor w = randn(gp.sizes());
  const Tensor gg = fabric::grad({sum(mul(gp, w))}, {g})[0];
  EXPECT_EQ(gg.to_vector<float>(), max_unpool2d(w, idx, {2}).to_vector<float>());
}

// max_unpool2d/3d are on CPU autocast's float32 list (1-d runs as torch's max_unpool2d): torch
// 1.13 under autocast('cpu', bfloat16) returns float32 for a bfloat16 input of each.
TEST(MaxUnpoolTorch, CpuAutocastRunsInFloat32) {
  CpuAutocast guard(DType::bfloat16);
  const TensorOptions bf16{.dtype = DType::bfloat16}, i64{.dtype = DType::int64};
  EXPECT_EQ(max_unpool1d(zeros({1, 1, 2}, bf16), zeros({1, 1, 2}, i64), 2).dtype(), DType::float32);
  EXPECT_EQ(max_unpool2d(zeros({1, 1, 2, 2}, bf16), zeros({1, 1, 2, 2}, i64), {2}).dtype(),
            DType::float32);
  EXPECT_EQ(max_unpool3d(zeros({1, 1, 1, 2, 2}, bf16), zeros({1, 1, 1, 2, 2}, i64), {2}).dtype(),
            DType::float32);
}

}  // namespace
}  // namespace fabric
