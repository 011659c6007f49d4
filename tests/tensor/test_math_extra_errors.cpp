// nn/math_extra.h's functions on inputs torch refuses (each raises the fabric error torch's
// RuntimeError / ZeroDivisionError corresponds to, naming the function) and the result dtypes of
// mixed operands, as torch 1.13 promotes them (the dtypes below are torch's, printed from it).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "nn/math_extra.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

Tensor ints(DType dt) { return from_vector<int64_t>({1, -2, 3}, {3}).to(dt); }
Tensor floats(DType dt) { return from_vector<double>({1.5, -2.0, 0.25}, {3}).to(dt); }
Tensor bools() { return from_vector<int64_t>({1, 0, 1}, {3}).to(DType::bool_); }

// Runs f, expecting error type E whose message names `op`.
template <typename E>
void expect_refused(const std::function<Tensor()>& f, const std::string& op) {
  try {
    f();
    ADD_FAILURE() << op << ": no error";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(op), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << op << ": wrong error type: " << e.what();
  }
}

TEST(MathExtraErrors, InputsTorchRefusesRaiseErrorsNamingTheFunction) {
  const Tensor i64 = ints(DType::int64), f32 = floats(DType::float32);
  expect_refused<DTypeError>([&] { return positive(bools()); }, "positive");
  expect_refused<DTypeError>([&] { return frac(i64); }, "frac");
  expect_refused<DTypeError>([&] { return hypot(i64, i64); }, "hypot");
  expect_refused<DTypeError>([&] { return logaddexp(i64, i64); }, "logaddexp");
  expect_refused<DTypeError>([&] { return nextafter(i64, i64); }, "nextafter");
  expect_refused<DTypeError>([&] { return heaviside(f32, floats(DType::float64)); }, "heaviside");
  expect_refused<DTypeError>([&] { return floor_divide(bools(), bools()); }, "floor_divide");
  expect_refused<ValueError>(
      [&] {
        return floor_divide(i64, from_vector<int64_t>({2, 0, 1}, {3}));
      },
      "floor_divide");
  expect_refused<DTypeError>([&] { return bitwise_and(f32, f32); }, "bitwise_and");
  expect_refused<DTypeError>([&] { return bitwise_not(f32); }, "bitwise_not");
  expect_refused<DTypeError>([&] { return bitwise_left_shift(bools(), bools()); },
                             "bitwise_left_shift");
  expect_refused<DTypeError>([&] { return gcd(f32, f32); }, "gcd");
  expect_refused<DTypeError>([&] { return lgamma(floats(DType::float16)); }, "lgamma");
  expect_refused<DTypeError>([&] { return special::i1(floats(DType::bfloat16)); }, "i1");
  expect_refused<ValueError>([&] { return polygamma(-1, f32); }, "polygamma");
  expect_refused<ValueError>([&] { return mvlgamma(f32, 0); }, "mvlgamma");
}

TEST(MathExtraErrors, MixedOperandsPromoteAsTorch) {
  const Tensor i8 = ints(DType::int8), i32 = ints(DType::int32), i64 = ints(DType::int64);
  const Tensor f16 = floats(DType::float16), bf16 = floats(DType::bfloat16);
  const Tensor f32 = floats(DType::float32);
  struct Case {
    const char* what;
    Tensor result;
    DType torch_dtype;
  };
  const std::vector<Case> cases = {
      {"xlogy(int64, int64)", xlogy(i64, i64), DType::float32},
      {"xlog1py(int32, int8)", xlog1py(i32, i8), DType::float32},
      {"bitwise_xor(int8, int64)", bitwise_xor(i8, i64), DType::int64},
      {"bitwise_xor(int8, 5)", bitwise_xor(i8, 5), DType::int8},
      {"bitwise_xor(bool, bool)", bitwise_xor(bools(), bools()), DType::bool_},
      {"gcd(int8, int64)", gcd(i8, i64), DType::int64},
      {"square(bool)", square(bools()), DType::int64},
      {"square(int8)", square(i8), DType::int8},
      {"deg2rad(int64)", deg2rad(i64), DType::float32},
      {"rad2deg(bool)", rad2deg(bools()), DType::float32},
      {"copysign(int64, int64)", copysign(i64, i64), DType::float32},
      {"copysign(int8, float16)", copysign(i8, f16), DType::float16},
      {"float_power(int64, 2)", float_power(i64, 2), DType::float64},
      {"float_power(float32, int64)", float_power(f32, i64), DType::float64},
      {"floor_divide(int8, int64)", floor_divide(i8, i64), DType::int64},
      {"floor_divide(int64, 2.5)", floor_divide(i64, 2.5), DType::float32},
      {"hypot(bfloat16, float32)", hypot(bf16, f32), DType::float32},
      {"heaviside(int64, int64)", heaviside(i64, i64), DType::int64},
      {"true_divide(int64, int64)", true_divide(i64, i64), DType::float32},
      {"sgn(bool)", sgn(bools()), DType::bool_},
      {"signbit(int8)", signbit(i8), DType::bool_},
      {"lgamma(int64)", lgamma(i64), DType::float32},
      {"polygamma(1, int64)", polygamma(1, i64), DType::float32},
      {"clamp_min(int64, 0.5)", clamp_min(i64, 0.5), DType::float32},
      {"clamp_min(int64, 2)", clamp_min(i64, 2), DType::int64},
      {"exp2(int64)", exp2(i64), DType::float32},
      {"fmax(int8, int64)", fmax(i8, i64), DType::int64},
      {"fmax(int64, float32)", fmax(i64, f32), DType::float32},
  };
  for (const Case& c : cases) EXPECT_EQ(c.result.dtype(), c.torch_dtype) << c.what;
}

}  // namespace
}  // namespace fabric
