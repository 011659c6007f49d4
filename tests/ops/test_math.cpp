// The math family's rules the harness cannot express: result dtypes (integer promotion, prod's
// int64 accumulation, bool masks), integer fmod/remainder's exact arithmetic and its division by
// zero, torch's backward node names, and second derivatives of the product gradients with zeros.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

Tensor vec(std::vector<double> v, DType dt) {
  const int64_t n = static_cast<int64_t>(v.size());
  return from_vector(v, {n}, {.dtype = DType::float64}).to(dt);
}

TEST(Math, ResultDtypesAreTorchs) {
  const Tensor i64 = vec({1, 2}, DType::int64), i32 = vec({1, 2}, DType::int32),
               i8 = vec({1, 2}, DType::int8), u8 = vec({1, 2}, DType::uint8),
               b = vec({1, 0}, DType::bool_), f16 = vec({0.5, 1}, DType::float16),
               f32 = vec({0.5, 1}, DType::float32), f64 = vec({0.5, 1}, DType::float64);
  struct Row {
    std::string what;
    std::function<Tensor()> op;
    DType want;
  };
  const std::vector<Row> rows = {
      {"tan(int64)", [&] { return tan(i64); }, DType::float32},
      {"erfinv(bool)", [&] { return erfinv(b); }, DType::float32},
      {"log10(uint8)", [&] { return log10(u8); }, DType::float32},
      {"asinh(float16)", [&] { return asinh(f16); }, DType::float16},
      {"atan2(int64, int32)", [&] { return atan2(i64, i32); }, DType::float32},
      {"atan2(float16, float32)", [&] { return atan2(f16, f32); }, DType::float32},
      {"fmod(int32, int64)", [&] { return fmod(i32, i64); }, DType::int64},
      {"fmod(int64, 2.5)", [&] { return fmod(i64, 2.5); }, DType::float32},
      {"remainder(int8, 3)", [&] { return remainder(i8, 3); }, DType::int8},
      {"remainder(float16, float64)", [&] { return remainder(f16, f64); }, DType::float64},
      {"prod(bool)", [&] { return prod(b); }, DType::int64},
      {"prod(int32, dim 0)", [&] { return prod(i32, 0); }, DType::int64},
      {"prod(float16)", [&] { return prod(f16); }, DType::float16},
      {"prod(int32, dtype float64)", [&] { return prod(i32, 0, false, DType::float64); },
       DType::float64},
      {"cumprod(uint8)", [&] { return cumprod(u8, 0); }, DType::int64},
      {"cumprod(float32, dtype float64)", [&] { return cumprod(f32, 0, DType::float64); },
       DType::float64},
      {"all(float32)", [&] { return all(f32); }, DType::bool_},
      {"any(uint8)", [&] { return any(u8); }, DType::bool_},
      {"isnan(float16)", [&] { return isnan(f16); }, DType::bool_},
      {"isfinite(int64)", [&] { return isfinite(i64); }, DType::bool_},
      {"logical_xor(int64, float32)", [&] { return logical_xor(i64, f32); }, DType::bool_},
      {"nan_to_num(int32)", [&] { return nan_to_num(i32); }, DType::int32},
  };
  for (const Row& r : rows) EXPECT_EQ(r.op().dtype(), r.want) << r.what;
}

// torch's CPU raises ZeroDivisionError for an integer divisor 0 (its CUDA kernels return garbage);
// here both devices raise, naming the op.
TEST(Math, IntegerDivisionByZeroRaises) {
  const Tensor a = vec({7, -7}, DType::int64), z = vec({3, 0}, DType::int64);
  const std::vector<std::pair<std::string, std::function<void()>>> calls = {
      {"fmod", [&] { fmod(a, z); }},
      {"fmod", [&] { fmod(a, 0); }},
      {"remainder", [&] { remainder(a, z); }},
      {"remainder", [&] { remainder(vec({1}, DType::uint8), 0); }},
  };
  for (const auto& [name, call] : calls)
    EXPECT_CONTAINS(thrown<ValueError>(call), name + ": integer division by zero");
  // A float divisor 0 is no error: NaN, as torch.
  EXPECT_TRUE(std::isnan(fmod(a, 0.0).to_vector<double>()[0]));
}

// A scalar divisor the dtype cannot hold is converted as torch's wrapped number is: it wraps in an
// integer dtype (300 is int8 44) and is inf in a float one, rather than raising.
TEST(Math, ScalarDivisorsOutsideTheDtypeConvertAsTorchs) {
  const Tensor i8 = vec({0, 1, 2, 5, 100, 7}, DType::int8);
  EXPECT_EQ(fmod(i8, 300).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 5, 12, 7}));
  EXPECT_EQ(remainder(vec({5}, DType::float32), 1e39).to_vector<double>(),
            (std::vector<double>{5}));
  EXPECT_EQ(fmod(vec({5}, DType::float16), 1e6).to_vector<double>(), (std::vector<double>{5}));
  // 2^40 wraps to 0 in int32: a division by zero, as torch's ZeroDivisionError.
  EXPECT_CONTAINS(thrown<ValueError>([] { fmod(vec({5}, DType::int32), int64_t{1} << 40); }),
                  "integer division by zero");
}

// INT_MIN % -1 overflows in C++; its value is 0 (torch's CPU crashes with SIGFPE here).
TEST(Math, IntegerMinimumByMinusOneIsZero) {
  const Tensor a = from_vector(std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 5}, {2});
  const Tensor m1 = from_vector(std::vector<int64_t>{-1, -1}, {2});
  EXPECT_EQ(fmod(a, m1).to_vector<int64_t>(), (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(remainder(a, m1).to_vector<int64_t>(), (std::vector<int64_t>{0, 0}));
}

TEST(Math, NodeNamesAreTorchs) {
  Tensor x = vec({0.5, 0.25}, DType::float64);
  x.set_requires_grad(true);
  const std::vector<std::pair<Tensor, std::string>> cases = {
      {tan(x), "TanBackward0"},
      {erfinv(x), "ErfinvBackward0"},
      {log2(x), "Log2Backward0"},
      {nan_to_num(x), "NanToNumBackward0"},
      {atan2(x, x), "Atan2Backward0"},
      {fmod(x, x), "FmodBackward1"},
      {fmod(x, 2.0), "FmodBackward0"},
      {remainder(x, x), "RemainderBackward1"},
      {remainder(x, 2.0), "RemainderBackward0"},
      {prod(x), "ProdBackward0"},
      {prod(x, 0), "ProdBackward1"},
      {cumprod(x, 0), "CumprodBackward0"},
  };
  for (const auto& [y, name] : cases) EXPECT_EQ(grad_fn_name(y), name);
}

// cumsum's gradient is the reversed cumulative sum summed from the far end (torch's): "total -
// prefix + g" gave 1 + 1e8 - (1e8 + 1) = 0 where torch has 7, and lost small entries in bfloat16.
TEST(Math, CumsumGradientKeepsSmallEntriesBesideLargeOnes) {
  Tensor x = zeros({8});
  x.set_requires_grad(true);
  cumsum(x, 0).backward(vec({1e8, 1, 1, 1, 1, 1, 1, 1}, DType::float32));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{100000008.0f, 7, 6, 5, 4, 3, 2, 1}));
  Tensor h = zeros({8}, {.dtype = DType::bfloat16});
  h.set_requires_grad(true);
  cumsum(h, 0).backward(vec({1000, 1, 1, 1, 1, 1, 1, 1}, DType::bfloat16));
  EXPECT_EQ(h.grad().to(DType::float32).to_vector<float>(),
            (std::vector<float>{1008, 7, 6, 5, 4, 3, 2, 1}));
  Tensor m = zeros({2, 3});
  m.set_requires_grad(true);
  cumsum(m, 1).backward(vec({1, 2, 3, 4, 5, 6}, DType::float32).view({2, 3}));
  EXPECT_EQ(m.grad().to_vector<float>(), (std::vector<float>{6, 5, 3, 15, 11, 6}));
}

// d/dx of sum(d f/dx) for f = prod and sum(cumprod) with zeros in x: the first derivatives are
// themselves differentiable there (torch 1.13's values).
TEST(Math, ProductGradientsWithZerosDifferentiateAgain) {
  struct Row {
    std::string name;
    std::vector<double> x;
    Shape shape;
    std::function<Tensor(const Tensor&)> f;
    std::vector<double> grad, grad_of_grad_sum;
  };
  const std::vector<Row> rows = {
      {"prod", {0, 3, 5}, {3}, [](const Tensor& x) { return prod(x); }, {15, 0, 0}, {8, 5, 3}},
      {"cumprod",
       {0, 3, 5},
       {3},
       [](const Tensor& x) { return sum(cumprod(x, 0)); },
       {19, 0, 0},
       {9, 6, 3}},
      // Along dim 0 of (3, 2), weighted: the transposed path of the polynomial form.
      {"cumprod/dim0_weighted",
       {0, 2, 3, 0, 5, 4},
       {3, 2},
       [](const Tensor& x) {
         const Tensor w = from_vector(std::vector<double>{1, 2, -1, 0.5, 3, 1}, {3, 2});
         return sum(mul(cumprod(x, 0), w));
       },
       {43, 2, 0, 9, 0, 0},
       {23, 4.5, 14, 6.5, 9, 2}},
  };
  for (const Row& r : rows) {
    Tensor x = from_vector(r.x, r.shape);
    x.set_requires_grad(true);
    const Tensor g = grad({r.f(x)}, {x}, {}, std::nullopt, true)[0];
    EXPECT_EQ(g.to_vector<double>(), r.grad) << r.name;
    const Tensor gg = grad({sum(g)}, {x})[0];
    EXPECT_EQ(gg.to_vector<double>(), r.grad_of_grad_sum) << r.name;
  }
}

// Second derivatives of the unary family: d/dx (d tan/dx) = 2 tan (1 + tan^2).
TEST(Math, UnaryGradientsDifferentiateAgain) {
  Tensor x = vec({0.3, -0.7}, DType::float64);
  x.set_requires_grad(true);
  const Tensor g = grad({sum(tan(x))}, {x}, {}, std::nullopt, true)[0];
  const std::vector<double> gg = grad({sum(g)}, {x})[0].to_vector<double>();
  for (size_t i = 0; i < 2; ++i) {
    const double t = std::tan(x.to_vector<double>()[i]);
    EXPECT_NEAR(gg[i], 2 * t * (1 + t * t), 1e-14);
  }
}

}  // namespace
}  // namespace fabric
