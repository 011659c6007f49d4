// Reductions, normalisation and losses beyond the harness: result dtypes, PyTorch's special cases
// (empty dims, NaN, ties, Bessel correction, ignore_index, label smoothing), error messages,
// summation accuracy, and the backward helpers of ops_backward.h against central differences.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::nan("");

Tensor vec(std::vector<double> v, Shape shape = {}, DType dt = DType::float32) {
  if (shape.empty()) shape = {static_cast<int64_t>(v.size())};
  return from_vector(v, shape, {.dtype = DType::float64}).to(dt);
}

template <typename E, typename Fn>
void expect_error(Fn&& fn, std::initializer_list<const char*> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected an exception";
  } catch (const E& e) {
    for (const char* p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

// ---- result dtypes ------------------------------------------------------------------------------

TEST(Reduce, ResultDtypes) {
  EXPECT_EQ(sum(ones({3}, {.dtype = DType::bool_})).dtype(), DType::int64);
  EXPECT_EQ(sum(ones({3}, {.dtype = DType::bool_})).item<int64_t>(), 3);
  EXPECT_EQ(sum(ones({3}, {.dtype = DType::int32})).dtype(), DType::int64);
  EXPECT_EQ(sum(ones({3}, {.dtype = DType::uint8})).dtype(), DType::int64);
  EXPECT_EQ(sum(ones({3}, {.dtype = DType::float16})).dtype(), DType::float16);
  EXPECT_EQ(sum(ones({3}, {.dtype = DType::bfloat16})).dtype(), DType::bfloat16);
  EXPECT_EQ(sum(ones({3}, {.dtype = DType::int32}), {}, false, DType::float32).dtype(),
            DType::float32);
  EXPECT_EQ(mean(ones({3}, {.dtype = DType::int64}), {}, false, DType::float64).item<double>(),
            1.0);
  EXPECT_EQ(cumsum(ones({3}, {.dtype = DType::int32}), 0).dtype(), DType::int64);
  EXPECT_EQ(cumsum(ones({3}, {.dtype = DType::bool_}), 0).to_vector<int64_t>(),
            (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(cumsum(ones({3}, {.dtype = DType::bfloat16}), 0).dtype(), DType::bfloat16);
  EXPECT_EQ(argmax(ones({3, 2})).dtype(), DType::int64);
  EXPECT_EQ(amax(ones({3}, {.dtype = DType::int32})).dtype(), DType::int32);
  EXPECT_EQ(std::get<0>(max(ones({3}, {.dtype = DType::bool_}), 0)).dtype(), DType::bool_);
  EXPECT_EQ(logsumexp(ones({3}, {.dtype = DType::int64}), {0}).dtype(), DType::float32);
  EXPECT_EQ(var(ones({3}, {.dtype = DType::bfloat16})).dtype(), DType::bfloat16);
  EXPECT_EQ(norm(ones({3}, {.dtype = DType::float16})).dtype(), DType::float16);
  EXPECT_EQ(softmax(ones({2, 3}, {.dtype = DType::bfloat16}), 1, DType::float32).dtype(),
            DType::float32);
  EXPECT_EQ(softmax(ones({2, 3}, {.dtype = DType::int64}), 1, DType::float32).dtype(),
            DType::float32);
  EXPECT_EQ(
      cross_entropy(ones({2, 3}, {.dtype = DType::bfloat16}), zeros({2}, {.dtype = DType::int64}))
          .dtype(),
      DType::bfloat16);
}

TEST(Reduce, SumWithDtypeCastsFirst) {
  // float32 -> float16 first (as PyTorch): 2049 is not a float16 value and rounds to 2048, so the
  // sum is 3 * 2048; summing the float32 values and rounding once would give 6148.
  Tensor a = vec({2049, 2049, 2049}, {}, DType::float32);
  EXPECT_EQ(sum(a, {}, false, DType::float16).item<double>(), 6144.0);
  EXPECT_EQ(sum(vec({1e10}, {}, DType::float64), {}, false, DType::float32).dtype(),
            DType::float32);
  // int -> float64 accumulates exactly.
  Tensor big = full({4}, int64_t{1} << 40, {.dtype = DType::int64});
  EXPECT_EQ(sum(big, {}, false, DType::float64).item<double>(),
            4.0 * static_cast<double>(int64_t{1} << 40));
}

TEST(Reduce, AutocastLossesRunInFloat32) {
  autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
  Tensor logits = vec({1, 2, 3, 4, 5, 6}, {2, 3}, DType::bfloat16);
  Tensor loss = cross_entropy(logits, vec({0, 2}, {}, DType::int64));
  autocast_exit(DeviceType::cpu);
  EXPECT_EQ(loss.dtype(), DType::float32);
}

// ---- special values and PyTorch semantics
// ----------------------------------------------------------

TEST(Reduce, EmptyReductions) {
  Tensor e = zeros({0, 5});
  EXPECT_EQ(sum(e).item<double>(), 0.0);
  EXPECT_EQ(sum(e, {0}).sizes(), (Shape{5}));
  EXPECT_EQ(sum(e, {0}).to_vector<double>(), std::vector<double>(5, 0.0));
  EXPECT_TRUE(std::isnan(mean(e).item<double>()));
  EXPECT_EQ(sum(e, {1}).sizes(), (Shape{0}));
  EXPECT_EQ(amax(e, {1}).sizes(), (Shape{0}));
  EXPECT_EQ(logsumexp(e, {0}).to_vector<double>(), std::vector<double>(5, -kInf));
  EXPECT_TRUE(std::isnan(var(e).item<double>()));
  EXPECT_EQ(norm(e).item<double>(), 0.0);
  expect_error<IndexError>([&] { max(e); }, {"max", "(0, 5)"});
  expect_error<IndexError>([&] { min(e, 0); }, {"min", "dim 0", "(0, 5)"});
  expect_error<IndexError>([&] { amax(e, {0}); }, {"amax", "(0, 5)"});
  expect_error<IndexError>([&] { argmax(e); }, {"argmax", "(0, 5)"});
  // torch.norm gives 0 for an empty inf-norm too (linalg.vector_norm would refuse it).
  EXPECT_EQ(norm(e, kInf).item<double>(), 0.0);
  EXPECT_EQ(norm(e, -kInf, {0}).to_vector<double>(), std::vector<double>(5, 0.0));
  // ... and for a negative p, whose root of the empty sum would be inf.
  EXPECT_EQ(norm(e, -1.0, {0}).to_vector<double>(), std::vector<double>(5, 0.0));
  EXPECT_EQ(norm(e, -0.5).item<double>(), 0.0);
  // all/any's dim errors name them, not the sum they count with.
  expect_error<IndexError>([&] { all(zeros({2, 3}), {2}); }, {"all: dim 2"});
  expect_error<ValueError>([&] { any(zeros({2, 3}), {0, -2}); }, {"any: dim 0"});
  EXPECT_TRUE(
      std::isnan(cross_entropy(zeros({0, 3}), zeros({0}, {.dtype = DType::int64})).item<double>()));
}

// An inf-norm that is NaN (a NaN in the slice) matches no element: the gradient is 0, as torch's,
// not 0 / 0.
TEST(Reduce, InfNormGradientOfANaNSliceIsZero) {
  for (const double p : {kInf, -kInf}) {
    Tensor x = from_vector(std::vector<float>{0, -1, NAN, 2}, {4});
    x.set_requires_grad(true);
    norm(x, p).backward();
    for (float g : x.grad().to_vector<float>()) EXPECT_EQ(g, 0.0f) << p;
  }
}

TEST(Reduce, NanPropagationAndTies) {
  Tensor a = vec({1, 3, kNaN, 3, kNaN, 0}, {2, 3});
  auto [v, i] = max(a, 1);
  EXPECT_TRUE(std::isnan(v.to_vector<double>()[0]));
  EXPECT_TRUE(std::isnan(v.to_vector<double>()[1]));
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{2, 1}));
  auto [mv, mi] = min(a, 0);
  EXPECT_EQ(mi.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_TRUE(std::isnan(amax(a).item<double>()));
  EXPECT_TRUE(std::isnan(min(a).item<double>()));
  EXPECT_EQ(argmax(a).item<int64_t>(), 2);
  EXPECT_EQ(argmin(a, 1).to_vector<int64_t>(), (std::vector<int64_t>{2, 1}));
  // Ties: the first index, along rows and along columns.
  Tensor t = vec({5, 1, 5, 2, 5, 2}, {3, 2});
  EXPECT_EQ(argmax(t, 0).to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(argmax(t).item<int64_t>(), 0);
  EXPECT_EQ(std::get<1>(max(t.t(), 1)).to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
  // NaN deep in a long row (past the first staged chunk) still wins.
  Tensor longrow = zeros({5000});
  longrow.narrow(0, 4321, 1).fill_(kNaN);
  longrow.narrow(0, 4000, 1).fill_(7.0);
  EXPECT_EQ(argmax(longrow).item<int64_t>(), 4321);
  EXPECT_EQ(argmin(longrow).item<int64_t>(), 4321);
  // Column sweep with a NaN in a later row.
  Tensor cols = zeros({100, 4});
  cols.select(0, 60).select(0, 2).fill_(kNaN);
  EXPECT_EQ(argmax(cols, 0).to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 60, 0}));
  EXPECT_TRUE(std::isnan(sum(cols).item<double>()));
}

// max/min with a dim return the element at the index they return: of -0 and +0, that one's sign
// (torch.tensor([[-0., 0.], [0., -0.]]).max(1) -> values [-0, +0], indices [0, 0]).
TEST(Reduce, MaxMinWithDimReturnTheIndexedZero) {
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor z = from_vector(std::vector<float>{-0.f, 0.f, 0.f, -0.f}, {2, 2}).to(dt);
    for (bool is_max : {true, false}) {
      auto [v, i] = is_max ? max(z, 1) : min(z, 1);
      EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{0, 0}));
      const std::vector<double> got = v.to(DType::float64).to_vector<double>();
      EXPECT_TRUE(std::signbit(got[0]));
      EXPECT_FALSE(std::signbit(got[1]));
    }
  }
}

// A 0-dim tensor takes dim 0 (or -1) once: torch's "dim 0 appears multiple times" otherwise.
TEST(Reduce, ZeroDimTensorRefusesARepeatedDim) {
  const Tensor s = full({}, 2.0);
  EXPECT_EQ(sum(s, {0}).item<float>(), 2.0f);
  EXPECT_EQ(mean(s, {-1}).item<float>(), 2.0f);
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0, -1}, {0, 0}}) {
    EXPECT_THROW(sum(s, dims), ValueError);
    EXPECT_THROW(amax(s, dims), ValueError);
  }
}

TEST(Reduce, ArgmaxWithoutDimKeepdim) {
  Tensor a = vec({1, 9, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(argmax(a).sizes(), Shape{});
  EXPECT_EQ(argmax(a, std::nullopt, true).sizes(), (Shape{1, 1}));
  EXPECT_EQ(argmax(a, std::nullopt, true).item<int64_t>(), 1);
  EXPECT_EQ(argmin(a.t()).item<int64_t>(), 0);
  EXPECT_EQ(argmax(a.t()).item<int64_t>(), 2);  // flattened in logical order: (1, 4, 9, 5, 3, 6)
}

TEST(Reduce, VarCorrection) {
  Tensor a = vec({1, 2, 3, 4}, {}, DType::float64);
  EXPECT_DOUBLE_EQ(var(a).item<double>(), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(var(a, {}, 0).item<double>(), 1.25);
  EXPECT_DOUBLE_EQ(fabric::std(a, {}, 0).item<double>(), std::sqrt(1.25));
  EXPECT_TRUE(std::isinf(var(a, {}, 4).item<double>()));  // N - correction = 0, non-zero sum: inf
  EXPECT_TRUE(std::isinf(var(a, {}, 5).item<double>()));  // negative clamps to 0: inf
  EXPECT_TRUE(std::isnan(var(vec({3}), {}, 1).item<double>()));  // one element: 0/0
  EXPECT_TRUE(std::isnan(fabric::std(vec({2, 2}), {}, 2).item<double>()));
  // Large offset: the two-pass algorithm keeps the variance exact where a one-pass sum of squares
  // fails.
  Tensor off = vec({1e8 + 1, 1e8 + 2, 1e8 + 3}, {}, DType::float64);
  EXPECT_DOUBLE_EQ(var(off).item<double>(), 1.0);
}

// torch's CPU var of float32/float16/bfloat16 accumulates in double: a constant row has a
// variance of exactly 0 (a float32 mean of 0.1 x 7 is not 0.1f exactly), and rows far from zero
// keep the bits of the double result (torch 1.13's values). A float32 reduction to one value
// centres on the float32 mean first, as torch's std_var_all_cpu.
TEST(Reduce, VarAccumulatesInDoubleAsTorch) {
  auto bits = [](const Tensor& t) {
    std::vector<uint32_t> out;
    for (float f : t.to_vector<float>()) {
      uint32_t u;
      std::memcpy(&u, &f, 4);
      out.push_back(u);
    }
    return out;
  };
  Tensor c = full({3, 7}, 0.1, {.dtype = DType::float32, .requires_grad = true});
  EXPECT_EQ(var(c, {1}).to_vector<float>(), (std::vector<float>{0, 0, 0}));
  Tensor s = fabric::std(c, {1});
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{0, 0, 0}));
  sum(s).backward();  // torch: a zero standard deviation passes a zero gradient
  EXPECT_EQ(c.grad().to_vector<float>(), std::vector<float>(21, 0.0f));
  EXPECT_EQ(var(full({5}, 0.1, {.dtype = DType::float16}), {0}).item<double>(), 0.0);
  EXPECT_EQ(var(full({5}, 0.1, {.dtype = DType::bfloat16})).item<double>(), 0.0);
  // One value from a float32 constant: torch's float32 mean, then double deviations.
  Tensor y = full({10}, 0.1, {.dtype = DType::float32});
  EXPECT_EQ(bits(var(y)), (std::vector<uint32_t>{0x248e38e4}));
  EXPECT_EQ(bits(fabric::std(y)), (std::vector<uint32_t>{0x3206ec81}));
  Tensor z = add(mul(sin(arange(0, 4000, 1, DType::float64)), 0.01), 1000.0)
                 .to(DType::float32)
                 .reshape({4, 1000});
  EXPECT_EQ(bits(var(z, {1})),
            (std::vector<uint32_t>{0x3851af2c, 0x3851f3f0, 0x38520ffd, 0x3851b509}));
  EXPECT_EQ(bits(fabric::std(z, {1}, 0)),
            (std::vector<uint32_t>{0x3be79261, 0x3be7b856, 0x3be7c7d0, 0x3be7959d}));
  EXPECT_EQ(bits(var(z)), (std::vector<uint32_t>{0x3851b1c5}));
}

// The 2-norm's gradient is torch 1.13's grad * (x / ||x||) with 0 where the norm is 0: its
// rounding (11 of these 54 float64 values differed with x * (grad / ||x||)), and a NaN gradient on
// a zero row stays NaN.
TEST(Reduce, TwoNormGradientIsTorchs) {
  Tensor x = sin(arange(0, 54, 1, DType::float64)).reshape({6, 9});
  x.set_requires_grad(true);
  norm(x, 2, {1}).backward(cos(arange(0, 6, 1, DType::float64)));
  const std::vector<uint64_t> want = {
      0x0000000000000000ull, 0x3fd9498447f71b39ull, 0x3fdb534fe0e11db8ull, 0x3fb0f6994e0c70fcull,
      0xbfd6be276899f976ull, 0xbfdcd1189aa0984dull, 0xbfc0cb23e906c3ddull, 0x3fd3be42bd9f040bull,
      0x3fddbb3a41b1eeb3ull, 0x3fbb5b7eb10fdb37ull, 0xbfc20e843f3602ccull, 0xbfd0986e1aad1800ull,
      0xbfc1cf3aceac6b72ull, 0x3fbbe4456470aa02ull, 0x3fd070913bc4089full, 0x3fc595757f4e4e0dull,
      0xbfb31c98ac04084bull, 0xbfcfe8f0a8de9806ull, 0x3fc364736e2eaa1bull, 0xbf9ef62f8afdda61ull,
      0xbfc79315c2dc3a94ull, 0xbfc59ac4792a8299ull, 0x3f5d418ea6fa3a88ull, 0x3fc5d9fef9361911ull,
      0x3fc76262bd2d2977ull, 0x3f9b575c2b03df67ull, 0xbfc3b0f16f861261ull, 0xbfdd1a7275fa1850ull,
      0xbfc07cdeba7dddb4ull, 0x3fd431e6bba9c049ull, 0x3fde110de05b567dull, 0x3fc8972456179a5aull,
      0xbfd0c7c645985556ull, 0xbfde6d9acde85b11ull, 0xbfd019b55108e652ull, 0x3fca0f55e2491e6cull,
      0x3fd37fefbaaa3cbdull, 0x3fc94e42fc04eb4eull, 0xbfb74eddee850860ull, 0xbfd2f31638fcb436ull,
      0xbfcd4cc7b4094e39ull, 0x3fa8f32f2960719cull, 0x3fd2052483d5e791ull, 0x3fd05a95ce54f284ull,
      0xbf76465c4f395375ull, 0x3fbc7ffb92b7ae80ull, 0x3fbe344a0d6bcc68ull, 0x3f908e4249a34067ull,
      0xbfb9bb51983db0f5ull, 0xbfbff1da0b19341cull, 0xbfa193693ffb604dull, 0x3fb672cf3cd39cf1ull,
      0x3fc085de0213c7f7ull, 0x3faa85a315e11fbfull,
  };
  std::vector<uint64_t> got;
  for (double v : x.grad().to_vector<double>()) got.push_back(std::bit_cast<uint64_t>(v));
  EXPECT_EQ(got, want);
  Tensor z = from_vector<double>({0, 0, 0, 1, 2, 3}, {2, 3});
  z.set_requires_grad(true);
  norm(z, 2, {1}).backward(from_vector<double>({kNaN, 1.0}, {2}));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::isnan(z.grad().to_vector<double>()[i])) << i;
}

TEST(Reduce, Norms) {
  Tensor a = vec({3, -4, 0, 1}, {2, 2}, DType::float64);
  EXPECT_DOUBLE_EQ(norm(a).item<double>(), std::sqrt(26.0));
  EXPECT_DOUBLE_EQ(norm(a, 1).item<double>(), 8.0);
  EXPECT_DOUBLE_EQ(norm(a, kInf).item<double>(), 4.0);
  EXPECT_DOUBLE_EQ(norm(a, -kInf).item<double>(), 0.0);
  EXPECT_DOUBLE_EQ(norm(a, 0).item<double>(), 3.0);
  EXPECT_NEAR(norm(a, 3).item<double>(), std::cbrt(27.0 + 64.0 + 1.0), 1e-12);
  EXPECT_EQ(norm(a, kInf, {1}).to_vector<double>(), (std::vector<double>{4, 1}));
}

TEST(Reduce, LogSumExpStable) {
  Tensor a = vec({1000, 1000, -kInf, -kInf, kInf, 0}, {3, 2}, DType::float32);
  std::vector<double> r = logsumexp(a, {1}).to_vector<double>();
  EXPECT_NEAR(r[0], 1000 + std::log(2.0), 1e-3);
  EXPECT_EQ(r[1], -kInf);
  EXPECT_EQ(r[2], kInf);
  EXPECT_NEAR(logsumexp(vec({-1000, -1000}), {0}).item<double>(), -1000 + std::log(2.0), 1e-3);
}

// torch 1.13's CPU logsumexp of bfloat16 rounds each step (max, exp(x - max), sum, log, + max) to
// bfloat16: 11 of these 40 rows differ from the float32 result rounded once.
TEST(Reduce, Bfloat16LogsumexpRoundsEachStepAsTorch) {
  const Tensor x =
      mul(sin(arange(0, 37 * 40, 1, DType::float64)), 4.0).to(DType::bfloat16).reshape({40, 37});
  const std::vector<uint16_t> want = {
      0x40c2, 0x40c2, 0x40c2, 0x40c2, 0x40c2, 0x40c0, 0x40bf, 0x40c2, 0x40c2, 0x40c2,
      0x40c2, 0x40c2, 0x40c2, 0x40c2, 0x40bf, 0x40c0, 0x40c2, 0x40c2, 0x40c2, 0x40c2,
      0x40c2, 0x40c2, 0x40c2, 0x40bf, 0x40bf, 0x40c2, 0x40c2, 0x40c2, 0x40c2, 0x40c2,
      0x40c2, 0x40c2, 0x40c0, 0x40bf, 0x40c2, 0x40c2, 0x40c2, 0x40c2, 0x40c2, 0x40c2};
  const Tensor r = logsumexp(x, {1}).contiguous();
  ASSERT_EQ(r.dtype(), DType::bfloat16);
  std::vector<uint16_t> got(40);
  std::memcpy(got.data(), r.data_ptr(), 80);
  EXPECT_EQ(got, want);
  // An all -inf row gives -inf, a row holding +inf gives +inf (the max taken as 0 there).
  Tensor y = x.clone();
  y.select(0, 3).fill_(-kInf);
  y.select(0, 5).select(0, 2).fill_(kInf);
  const std::vector<double> ry = logsumexp(y, {1}).to_vector<double>();
  EXPECT_EQ(ry[3], -kInf);
  EXPECT_EQ(ry[5], kInf);
}

TEST(Reduce, SoftmaxSpecialValues) {
  std::vector<double> s = softmax(vec({0, -kInf, 0}, {1, 3}), 1).to_vector<double>();
  EXPECT_EQ(s, (std::vector<double>{0.5, 0.0, 0.5}));
  std::vector<double> l = log_softmax(vec({1000, 1000}, {1, 2}), 1).to_vector<double>();
  EXPECT_NEAR(l[0], -std::log(2.0), 1e-4);  // float32: ulp(1000) = 6e-5
  EXPECT_TRUE(std::isnan(softmax(vec({kNaN, 1}), 0).to_vector<double>()[1]));
  EXPECT_EQ(softmax(scalar_tensor(3.0), 0).item<double>(), 1.0);
}

TEST(Reduce, LongFloat32SumsStayAccurate) {
  // 2^24 + 3 values: a naive float32 running sum of values in [0, 1) loses whole digits.
  const int64_t n = (int64_t{1} << 24) + 3;
  Tensor a = rand({n});
  std::vector<float> v = a.to_vector<float>();
  double want = 0;
  for (float x : v) want += x;
  const double got = sum(a).item<double>();
  EXPECT_LT(std::abs(got - want) / want, 4 * 6e-8) << got << " vs " << want;
  EXPECT_LT(std::abs(mean(a).item<double>() - want / n) / (want / n), 4 * 6e-8);
  // Column sums (bias-gradient shape): (B, C) over dim 0.
  const int64_t B = 200000, C = 8;
  Tensor b = rand({B, C});
  std::vector<float> bv = b.to_vector<float>();
  std::vector<double> col(C, 0.0);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < C; ++j) col[j] += bv[i * C + j];
  std::vector<double> got_cols = sum(b, {0}).to_vector<double>();
  for (int64_t j = 0; j < C; ++j) EXPECT_LT(std::abs(got_cols[j] - col[j]) / col[j], 4 * 6e-8) << j;
  // bfloat16 accumulates in float32: a sum of 4096 ones is exact (a bf16 accumulator stalls at
  // 256).
  EXPECT_EQ(sum(ones({4096}, {.dtype = DType::bfloat16})).item<double>(), 4096.0);
}

// torch 1.13 CPU, torch.full(..., 0.1).cumsum(0): float32 scans accumulate in double there, so the
// millionth running sum is still 0.1f * n rounded once (float accumulation drifts to ~1.09x).
TEST(Reduce, Float32CumsumAccumulatesInDoubleAsTorchCpu) {
  const Tensor rows = cumsum(full({1 << 20}, 0.1), 0);
  EXPECT_EQ(rows[(1 << 20) - 1].item<float>(), 104857.6015625f);
  EXPECT_EQ(rows[(1 << 19) - 1].item<float>(), 52428.80078125f);
  const Tensor cols = cumsum(full({1 << 18, 3}, 0.1), 0);  // the running-rows (inner > 1) path
  EXPECT_EQ(cols[(1 << 18) - 1][0].item<float>(), 26214.400390625f);
  EXPECT_EQ(cols[(1 << 18) - 1][2].item<float>(), 26214.400390625f);
}

TEST(Reduce, LayerNormAndRmsNormValues) {
  Tensor x = vec({1, 2, 3, 4}, {1, 4}, DType::float64);
  std::vector<double> y = layer_norm(x, {4}).to_vector<double>();
  const double r = 1.0 / std::sqrt(1.25 + 1e-5);  // biased variance, eps inside the sqrt
  EXPECT_NEAR(y[0], -1.5 * r, 1e-12);
  EXPECT_NEAR(y[3], 1.5 * r, 1e-12);
  // rms_norm's default eps is finfo(dtype).eps: it matters for tiny inputs.
  Tensor t = full({1, 4}, 1e-4, {.dtype = DType::float32});
  const double eps = 1.1920928955078125e-07;
  EXPECT_NEAR(rms_norm(t, {4}).to_vector<double>()[0], 1e-4 / std::sqrt(1e-8 + eps), 1e-5);
  Tensor t64 = full({1, 4}, 1e-4, {.dtype = DType::float64});
  EXPECT_NEAR(rms_norm(t64, {4}).to_vector<double>()[0], 1.0, 1e-7);
  auto [out, mean_t, rstd] =
      layer_norm_with_stats(vec({1, 2, 3, 4, 5, 6}, {2, 3}, DType::bfloat16), {3});
  EXPECT_EQ(mean_t.dtype(), DType::float32);
  EXPECT_EQ(mean_t.sizes(), (Shape{2, 1}));
  EXPECT_EQ(mean_t.to_vector<double>(), (std::vector<double>{2, 5}));
  EXPECT_EQ(out.dtype(), DType::bfloat16);
}

TEST(Reduce, CrossEntropySemantics) {
  Tensor logits = vec({2, 1, 0, 0, 0, 3, 1, 1, 1, -1, 4, 2}, {4, 3}, DType::float64);
  Tensor target = vec({0, -100, 1, 2}, {}, DType::int64);
  std::vector<double> none = cross_entropy(logits, target, -100, "none").to_vector<double>();
  EXPECT_EQ(none[1], 0.0);  // ignored
  auto lse = [](std::vector<double> r) {
    double s = 0;
    for (double v : r) s += std::exp(v);
    return std::log(s);
  };
  EXPECT_NEAR(none[0], lse({2, 1, 0}) - 2, 1e-12);
  EXPECT_NEAR(none[3], lse({-1, 4, 2}) - 2, 1e-12);
  const double mean_want = (none[0] + none[2] + none[3]) / 3;  // over the non-ignored targets
  EXPECT_NEAR(cross_entropy(logits, target).item<double>(), mean_want, 1e-12);
  EXPECT_NEAR(cross_entropy(logits, target, -100, "sum").item<double>(),
              none[0] + none[2] + none[3], 1e-12);
  // Label smoothing: (1 - e) nll + e * mean_c(-log p_c), the smoothing term also skipping ignored
  // rows.
  const double e = 0.1;
  double smooth_total = 0, nll_total = 0;
  for (int r : {0, 2, 3}) {
    std::vector<double> row = logits.select(0, r).to_vector<double>();
    const double l = lse(row);
    for (double v : row) smooth_total += (l - v) / 3.0;
    nll_total += none[r];
  }
  EXPECT_NEAR(cross_entropy(logits, target, -100, "mean", e).item<double>(),
              ((1 - e) * nll_total + e * smooth_total) / 3, 1e-12);
  // All ignored: mean is NaN, sum is 0.
  Tensor all_ignored = full({4}, int64_t{-100}, {.dtype = DType::int64});
  EXPECT_TRUE(std::isnan(cross_entropy(logits, all_ignored).item<double>()));
  EXPECT_EQ(cross_entropy(logits, all_ignored, -100, "sum").item<double>(), 0.0);
  // Fused cross_entropy == nll_loss(log_softmax).
  EXPECT_NEAR(nll_loss(log_softmax(logits, 1), target).item<double>(), mean_want, 1e-12);
  // (C,) logits with a 0-dim target.
  EXPECT_NEAR(
      cross_entropy(vec({2, 1, 0}, {}, DType::float64), scalar_tensor(0, {.dtype = DType::int64}))
          .item<double>(),
      lse({2, 1, 0}) - 2, 1e-12);
}

TEST(Reduce, Errors) {
  Tensor a = zeros({2, 3});
  expect_error<ValueError>([&] { sum(a, {1, -1}); }, {"sum", "dim 1", "multiple"});
  expect_error<IndexError>([&] { sum(a, {2}); }, {"sum", "dim 2"});
  expect_error<IndexError>([&] { softmax(a, 5); }, {"softmax", "dim 5"});
  expect_error<DTypeError>([&] { mean(zeros({2}, {.dtype = DType::int64})); }, {"mean", "int64"});
  expect_error<DTypeError>([&] { mean(a, {}, false, DType::int32); }, {"mean", "int32"});
  expect_error<DTypeError>([&] { var(zeros({2}, {.dtype = DType::int32})); }, {"var", "int32"});
  expect_error<DTypeError>([&] { softmax(zeros({2}, {.dtype = DType::int64}), 0); },
                           {"softmax", "int64"});
  expect_error<DTypeError>([&] { sum(zeros({2}, {.dtype = DType::float8_e4m3fn})); },
                           {"sum", "float8_e4m3fn"});
  Tensor logits = zeros({4, 5});
  expect_error<IndexError>(
      [&] {
        cross_entropy(logits, vec({0, 7, 1, 2}, {}, DType::int64));
      },
      {"cross_entropy", "target 7", "5 classes", "(4, 5)"});
  expect_error<IndexError>(
      [&] {
        cross_entropy(logits, vec({0, -3, 1, 2}, {}, DType::int64));
      },
      {"target -3"});
  expect_error<IndexError>(
      [&] {
        nll_loss(logits, vec({0, 5, 1, 2}, {}, DType::int64));
      },
      {"nll_loss", "target 5"});
  expect_error<DTypeError>([&] { cross_entropy(logits, zeros({4})); },
                           {"cross_entropy", "float32", "int64"});
  expect_error<DTypeError>(
      [&] {
        cross_entropy(zeros({4, 5}, {.dtype = DType::int64}), zeros({4}, {.dtype = DType::int64}));
      },
      {"cross_entropy", "int64", "(4, 5)"});
  expect_error<ShapeError>([&] { cross_entropy(logits, zeros({3}, {.dtype = DType::int64})); },
                           {"cross_entropy", "(4,)", "(3,)", "(4, 5)"});
  expect_error<ValueError>(
      [&] { cross_entropy(logits, zeros({4}, {.dtype = DType::int64}), -100, "avg"); },
      {"cross_entropy", "avg"});
  expect_error<ValueError>(
      [&] { cross_entropy(logits, zeros({4}, {.dtype = DType::int64}), -100, "mean", 1.5); },
      {"label_smoothing", "1.5"});
  expect_error<ShapeError>([&] { layer_norm(a, {2}); }, {"layer_norm", "(2,)", "(2, 3)"});
  expect_error<ShapeError>([&] { layer_norm(a, {3}, zeros({4})); },
                           {"layer_norm", "weight", "(3,)", "(4,)"});
  expect_error<ShapeError>([&] { rms_norm(a, {3, 2}); }, {"rms_norm", "(3, 2)"});
  expect_error<ShapeError>(
      [&] {
        mse_loss(zeros({2, 3}), zeros({4}));
      },
      {"mse_loss", "(2, 3)", "(4,)"});
  expect_error<DTypeError>([&] { mse_loss(zeros({2}, {.dtype = DType::int64}), zeros({2})); },
                           {"mse_loss", "int64"});
}

// An undefined Tensor() names the public op, as add and conv2d do, not the Tensor accessor that
// first reads it.
TEST(Reduce, UndefinedInputNamesTheReduction) {
  const Tensor U;
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] { sum(U); }, "sum"},
      {[&] { mean(U); }, "mean"},
      {[&] { fabric::max(U); }, "max"},
      {[&] { fabric::min(U); }, "min"},
      {[&] { fabric::max(U, 1); }, "max"},
      {[&] { fabric::min(U, 0, true); }, "min"},
      {[&] { amax(U, {0}); }, "amax"},
      {[&] { amin(U); }, "amin"},
      {[&] { argmax(U); }, "argmax"},
      {[&] { argmin(U, 1); }, "argmin"},
      {[&] { var(U); }, "var"},
      {[&] { fabric::std(U); }, "std"},
      {[&] { norm(U); }, "norm"},
      {[&] { logsumexp(U, {0}); }, "logsumexp"},
      {[&] { cumsum(U, 0); }, "cumsum"},
  };
  for (const auto& [call, op] : cases) {
    SCOPED_TRACE(op);
    EXPECT_CONTAINS(thrown<ValueError>(call), op + ": got an undefined tensor");
  }
}

TEST(Reduce, UndefinedInputNamesTheNormalization) {
  const Tensor U;
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] { softmax(U, 1); }, "softmax: got an undefined tensor"},
      {[&] { log_softmax(U, 0, DType::float64); }, "log_softmax: got an undefined tensor"},
      {[&] { layer_norm(U, {3}); }, "layer_norm: got an undefined tensor"},
      {[&] { layer_norm_with_stats(U, {3}, Tensor(), Tensor(), 1e-5); },
       "layer_norm: got an undefined tensor"},
      {[&] { rms_norm(U, {3}); }, "rms_norm: got an undefined tensor"},
      {[&] { rms_norm(U, {3}, Tensor(), 1e-6); }, "rms_norm: got an undefined tensor"},
      {[&] { rms_norm_with_stats(U, {3}, Tensor(), std::nullopt); },
       "rms_norm: got an undefined tensor"},
  };
  for (const auto& [call, message] : cases) {
    SCOPED_TRACE(message);
    EXPECT_CONTAINS(thrown<ValueError>(call), message);
  }
}

TEST(Reduce, UndefinedInputOrTargetNamesTheLoss) {
  const Tensor U, x = zeros({2, 3}), t = zeros({2}, {.dtype = DType::int64});
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] { cross_entropy(U, t); }, "cross_entropy: got an undefined tensor (input)"},
      {[&] { cross_entropy(x, U); }, "cross_entropy: got an undefined tensor (target)"},
      {[&] { cross_entropy(x, U, -100, "mean", 0.0, ones({3})); },
       "cross_entropy: got an undefined tensor (target)"},
      {[&] { nll_loss(U, t); }, "nll_loss: got an undefined tensor (input)"},
      {[&] { nll_loss(x, U); }, "nll_loss: got an undefined tensor (target)"},
      {[&] { nll_loss(x, U, -100, "mean", ones({3})); },
       "nll_loss: got an undefined tensor (target)"},
      {[&] { mse_loss(U, x); }, "mse_loss: got an undefined tensor (input)"},
      {[&] { mse_loss(x, U); }, "mse_loss: got an undefined tensor (target)"},
  };
  for (const auto& [call, message] : cases) {
    SCOPED_TRACE(message);
    EXPECT_CONTAINS(thrown<ValueError>(call), message);
  }
}

// ---- large inputs (the OpenMP-parallel paths) against naive double loops
// ---------------------------

std::vector<double> randv(int64_t n, uint64_t seed, double lo = -3, double hi = 3) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = u(rng);
  return v;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol,
                  const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i])))
        << what << " element " << i;
}

TEST(Reduce, LargeInputsParallelPaths) {
  const int64_t R = 600, C = 700;  // 420K elements: parallel rows, tiles and chunks
  std::vector<double> xv = randv(R * C, 41);
  Tensor x = from_vector(xv, {R, C}, {.dtype = DType::float64}).to(DType::float32);
  std::vector<double> xf = x.to_vector<double>();  // the float32 values, exactly
  auto at = [&](int64_t r, int64_t c) { return xf[r * C + c]; };
  // Row and column sums, argmax along both dims, cumsum along both dims.
  std::vector<double> rs(R, 0), cs(C, 0), cum0(R * C), cum1(R * C);
  std::vector<double> am0(C, 0), am1(R, 0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) {
      rs[r] += at(r, c);
      cs[c] += at(r, c);
      cum1[r * C + c] = (c ? cum1[r * C + c - 1] : 0) + at(r, c);
      cum0[r * C + c] = (r ? cum0[(r - 1) * C + c] : 0) + at(r, c);
      if (at(r, c) > at(static_cast<int64_t>(am0[c]), c)) am0[c] = static_cast<double>(r);
      if (at(r, c) > at(r, static_cast<int64_t>(am1[r]))) am1[r] = static_cast<double>(c);
    }
  expect_close(sum(x, {1}).to_vector<double>(), rs, 1e-5, "sum dim 1");
  expect_close(sum(x, {0}).to_vector<double>(), cs, 1e-5, "sum dim 0");
  expect_close(sum(x.t(), {1}).to_vector<double>(), cs, 1e-5, "sum of the transpose");
  EXPECT_EQ(argmax(x, 0).to_vector<double>(), am0);
  EXPECT_EQ(argmax(x, 1).to_vector<double>(), am1);
  expect_close(cumsum(x, 1).to_vector<double>(), cum1, 2e-4,
               "cumsum dim 1");  // sequential, as torch
  expect_close(cumsum(x, 0).to_vector<double>(), cum0, 2e-4, "cumsum dim 0");
  // Softmax along the last dim and along dim 0 (column tiles).
  std::vector<double> sm1(R * C), sm0(R * C);
  for (int64_t r = 0; r < R; ++r) {
    double m = -kInf, z = 0;
    for (int64_t c = 0; c < C; ++c) m = std::max(m, at(r, c));
    for (int64_t c = 0; c < C; ++c) z += std::exp(at(r, c) - m);
    for (int64_t c = 0; c < C; ++c) sm1[r * C + c] = std::exp(at(r, c) - m) / z;
  }
  for (int64_t c = 0; c < C; ++c) {
    double m = -kInf, z = 0;
    for (int64_t r = 0; r < R; ++r) m = std::max(m, at(r, c));
    for (int64_t r = 0; r < R; ++r) z += std::exp(at(r, c) - m);
    for (int64_t r = 0; r < R; ++r) sm0[r * C + c] = std::exp(at(r, c) - m) / z;
  }
  expect_close(softmax(x, 1).to_vector<double>(), sm1, 1e-5, "softmax dim 1");
  expect_close(softmax(x, 0).to_vector<double>(), sm0, 1e-5, "softmax dim 0");
  // layer_norm forward and backward (dweight/dbias are column sums over the 600 rows).
  Tensor w = from_vector(randv(C, 42, 0.5, 1.5), {C}, {.dtype = DType::float64}).to(DType::float32);
  Tensor b = from_vector(randv(C, 43), {C}, {.dtype = DType::float64}).to(DType::float32);
  Tensor dy = from_vector(randv(R * C, 44), {R, C}, {.dtype = DType::float64}).to(DType::float32);
  std::vector<double> wv = w.to_vector<double>(), bv = b.to_vector<double>(),
                      dyv = dy.to_vector<double>();
  std::vector<double> y(R * C), dw(C, 0), db(C, 0);
  for (int64_t r = 0; r < R; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += at(r, c) / C;
    for (int64_t c = 0; c < C; ++c) var += (at(r, c) - mean) * (at(r, c) - mean) / C;
    const double rstd = 1 / std::sqrt(var + 1e-5);
    for (int64_t c = 0; c < C; ++c) {
      const double xhat = (at(r, c) - mean) * rstd;
      y[r * C + c] = xhat * wv[c] + bv[c];
      dw[c] += dyv[r * C + c] * xhat;
      db[c] += dyv[r * C + c];
    }
  }
  auto [out, mean_t, rstd_t] = layer_norm_with_stats(x, {C}, w, b, 1e-5);
  expect_close(out.to_vector<double>(), y, 2e-5, "layer_norm");
  auto [dx, dwt, dbt] = layer_norm_backward(dy, x, {C}, w, mean_t, rstd_t);
  expect_close(dwt.to_vector<double>(), dw, 1e-4, "layer_norm dweight");
  expect_close(dbt.to_vector<double>(), db, 1e-4, "layer_norm dbias");
  auto [dx64, dw64, db64] =
      layer_norm_backward(dy.to(DType::float64), x.to(DType::float64), {C}, w.to(DType::float64),
                          mean_t.to(DType::float64), rstd_t.to(DType::float64));
  expect_close(dx.to_vector<double>(), dx64.to_vector<double>(), 1e-4, "layer_norm dx");
  // cross_entropy forward and backward over 600 rows of 700 classes.
  std::vector<int64_t> tv(R);
  for (int64_t r = 0; r < R; ++r) tv[r] = (r * 37) % C;
  Tensor t = from_vector(tv, {R}, {.dtype = DType::int64});
  double loss = 0;
  std::vector<double> dlog(R * C);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t c = 0; c < C; ++c) dlog[r * C + c] = sm1[r * C + c] / R;
    dlog[r * C + tv[r]] -= 1.0 / R;
    loss -= std::log(sm1[r * C + tv[r]]) / R;
  }
  EXPECT_NEAR(cross_entropy(x, t).item<double>(), loss, 1e-5 * loss);
  expect_close(cross_entropy_backward(scalar_tensor(1.0), x, t).to_vector<double>(), dlog, 1e-6,
               "cross_entropy_backward");
}

// ---- backward helpers vs central differences (float64, h = 1e-6)
// -----------------------------------

Tensor rand64(Shape s, uint64_t seed, double lo = -2, double hi = 2) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(numel_of(s)));
  for (double& x : v) x = u(rng);
  return from_vector(v, {}, {.dtype = DType::float64}).reshape(s);  // from_vector's {} means 1-D
}

double dot_all(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

// Checks `analytic` (the gradient of L(x) = sum(f(x) * R) with respect to x) element by element.
void check_grad(const std::string& what, Tensor x, const std::function<Tensor(const Tensor&)>& f,
                const Tensor& R, const Tensor& analytic) {
  ASSERT_EQ(analytic.sizes(), x.sizes()) << what;
  ASSERT_EQ(analytic.dtype(), DType::float64) << what;
  x = x.clone();
  double* p = x.data<double>();
  std::vector<double> g = analytic.to_vector<double>();
  const double h = 1e-6;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double keep = p[i];
    p[i] = keep + h;
    const double up = dot_all(f(x), R);
    p[i] = keep - h;
    const double down = dot_all(f(x), R);
    p[i] = keep;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(g[i], numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << what << " element " << i;
  }
}

TEST(ReduceBackward, Softmax) {
  for (int64_t dim : {1, 0, -1}) {
    for (bool log : {false, true}) {
      Tensor x = rand64({3, 4, 5}, 11 + dim), R = rand64({3, 4, 5}, 12);
      auto f = [&](const Tensor& t) { return log ? log_softmax(t, dim) : softmax(t, dim); };
      Tensor y = f(x);
      Tensor dx = log ? log_softmax_backward(R, y, dim) : softmax_backward(R, y, dim);
      check_grad(std::string(log ? "log_softmax" : "softmax") + " dim " + std::to_string(dim), x, f,
                 R, dx);
    }
  }
}

TEST(ReduceBackward, LayerNorm) {
  const Shape ns = {3, 4};
  Tensor x = rand64({5, 3, 4}, 1), w = rand64(ns, 2, 0.5, 1.5), b = rand64(ns, 3),
         R = rand64({5, 3, 4}, 4);
  auto [y, mean_t, rstd] = layer_norm_with_stats(x, ns, w, b, 1e-5);
  auto [dx, dw, db] = layer_norm_backward(R, x, ns, w, mean_t, rstd);
  check_grad(
      "layer_norm dx", x, [&](const Tensor& t) { return layer_norm(t, ns, w, b, 1e-5); }, R, dx);
  check_grad(
      "layer_norm dweight", w, [&](const Tensor& t) { return layer_norm(x, ns, t, b, 1e-5); }, R,
      dw);
  check_grad(
      "layer_norm dbias", b, [&](const Tensor& t) { return layer_norm(x, ns, w, t, 1e-5); }, R, db);
  // Without weight.
  auto [y2, m2, r2] = layer_norm_with_stats(x, {4});
  auto [dx2, dw2, db2] = layer_norm_backward(R, x, {4}, Tensor(), m2, r2);
  EXPECT_FALSE(dw2.defined());
  check_grad(
      "layer_norm dx (no weight)", x, [&](const Tensor& t) { return layer_norm(t, {4}); }, R, dx2);
}

TEST(ReduceBackward, RmsNorm) {
  Tensor x = rand64({6, 7}, 5), w = rand64({7}, 6, 0.5, 1.5), R = rand64({6, 7}, 7);
  auto [y, rstd] = rms_norm_with_stats(x, {7}, w, 1e-6);
  auto [dx, dw] = rms_norm_backward(R, x, {7}, w, rstd);
  check_grad(
      "rms_norm dx", x, [&](const Tensor& t) { return rms_norm(t, {7}, w, 1e-6); }, R, dx);
  check_grad(
      "rms_norm dweight", w, [&](const Tensor& t) { return rms_norm(x, {7}, t, 1e-6); }, R, dw);
  auto [y2, r2] = rms_norm_with_stats(x, {6, 7});
  auto [dx2, dw2] = rms_norm_backward(R, x, {6, 7}, Tensor(), r2);
  check_grad(
      "rms_norm dx (no weight, 2 dims)", x,
      [&](const Tensor& t) {
        return rms_norm(t, {6, 7});
      },
      R, dx2);
}

TEST(ReduceBackward, CrossEntropy) {
  struct C {
    Shape x;
    Shape t;
    int64_t classes;
    int64_t ignore;
    const char* red;
    double s;
  };
  for (const C& c : std::vector<C>{{{6, 5}, {6}, 5, -100, "mean", 0.0},
                                   {{6, 5}, {6}, 5, 2, "mean", 0.1},
                                   {{6, 5}, {6}, 5, 1, "sum", 0.2},
                                   {{6, 5}, {6}, 5, 3, "none", 0.1},
                                   {{3, 4, 2, 3}, {3, 2, 3}, 4, 0, "mean", 0.1},
                                   {{5}, {}, 5, -100, "none", 0.0}}) {
    Tensor x = rand64(c.x, 21);
    std::vector<int64_t> tv(static_cast<size_t>(numel_of(c.t)));
    for (size_t i = 0; i < tv.size(); ++i) tv[i] = static_cast<int64_t>((i * 7 + 3) % c.classes);
    Tensor target = from_vector(tv, {}, {.dtype = DType::int64}).reshape(c.t);
    const bool none = std::string(c.red) == "none";
    Tensor R = none ? rand64(c.t, 22) : scalar_tensor(1.7, {.dtype = DType::float64});
    Tensor dx = cross_entropy_backward(R, x, target, c.ignore, c.red, c.s);
    check_grad(
        std::string("cross_entropy ") + c.red + " s=" + std::to_string(c.s) +
            " x=" + shape_str(c.x),
        x, [&](const Tensor& t) { return cross_entropy(t, target, c.ignore, c.red, c.s); }, R, dx);
  }
}

TEST(ReduceBackward, LowPrecisionMatchesFloat64) {
  // The bf16 backward helpers compute in float32: close to the float64 result at bf16 precision.
  Tensor x = rand64({4, 16}, 31), R = rand64({4, 16}, 32);
  Tensor y64 = softmax(x, 1);
  Tensor d64 = softmax_backward(R, y64, 1);
  Tensor y16 = softmax(x.to(DType::bfloat16), 1);
  Tensor d16 = softmax_backward(R.to(DType::bfloat16), y16, 1);
  EXPECT_EQ(d16.dtype(), DType::bfloat16);
  std::vector<double> a = d64.to_vector<double>(), b = d16.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(a[i], b[i], 0.03 * std::max(0.1, std::abs(a[i]))) << i;
  Tensor t = from_vector(std::vector<int64_t>{0, 3, 15, 7}, {4}, {.dtype = DType::int64});
  Tensor g = scalar_tensor(1.0, {.dtype = DType::float64});
  Tensor c64 = cross_entropy_backward(g, x, t),
         c16 = cross_entropy_backward(g, x.to(DType::bfloat16), t);
  EXPECT_EQ(c16.dtype(), DType::bfloat16);
  a = c64.to_vector<double>();
  b = c16.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 0.02) << i;
}

}  // namespace
}  // namespace fabric
