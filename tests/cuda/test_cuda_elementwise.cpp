// The CUDA elementwise kernels against the CPU through the public ops: every unary and binary
// op in fp32/fp16/bf16 (and the integer, bool and fp64 forms), the parameterised activations,
// comparisons, where, clamp and addcmul, with broadcasting, non-contiguous inputs, in-place
// forms and large tensors.
// Exact where both devices round the same IEEE operations; a few ulp for libm-style functions.
#include <gtest/gtest.h>

#include <functional>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;
using test::Tolerance;

constexpr DType kFloatTypes[] = {DType::float32, DType::float16, DType::bfloat16};
constexpr DType kIntTypes[] = {DType::int64, DType::int32, DType::int8, DType::uint8};

using test::check_op;

std::string name_of(const char* op, DType t) {
  return std::string(op) + " " + std::string(dtype_name(t));
}

// Uniform values in [lo, hi) with the specials every function must pass through (NaN, +-inf, +-0).
Tensor domain_tensor(const Shape& shape, DType dt, float lo, float hi, uint64_t seed) {
  Tensor t = test::uniform_tensor(shape, DType::float32, lo, hi, seed);
  float* p = t.data<float>();
  const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
  for (size_t i = 0; i < std::size(specials) && static_cast<int64_t>(i) < t.numel(); ++i)
    p[(i * 7919 + seed) % static_cast<size_t>(t.numel())] = specials[i];
  return t.to(dt);
}

TEST(CudaElementwise, ExactUnaryOpsOnFloats) {
  FABRIC_REQUIRE_CUDA();
  const std::vector<std::pair<const char*, Tensor (*)(const Tensor&)>> ops = {
      {"neg", &neg},   {"abs", &abs},     {"relu", &relu},
      {"sqrt", &sqrt}, {"rsqrt", &rsqrt}, {"reciprocal", &reciprocal}};
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16, DType::float64}) {
    const Tensor a = test::awkward_tensor({37, 29}, dt, 3);
    for (const auto& [name, fn] : ops) {
      check_op(name_of(name, dt), {a}, [fn = fn](const std::vector<Tensor>& x) { return fn(x[0]); },
               {});
    }
  }
}

TEST(CudaElementwise, TranscendentalUnaryOpsOnFloats) {
  FABRIC_REQUIRE_CUDA();
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&)> fn;
    float lo, hi;
  };
  const std::vector<Case> cases = {
      {"exp", [](const Tensor& x) { return exp(x); }, -20, 20},
      {"log", [](const Tensor& x) { return log(x); }, -1, 100},
      {"tanh", [](const Tensor& x) { return tanh(x); }, -6, 6},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, -20, 20},
      {"silu", [](const Tensor& x) { return silu(x); }, -20, 20},
      {"gelu", [](const Tensor& x) { return gelu(x); }, -8, 8},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, "tanh"); }, -20, 20},
      {"sin", [](const Tensor& x) { return sin(x); }, -10, 10},
      {"cos", [](const Tensor& x) { return cos(x); }, -10, 10},
      // parameterised activations (tensor/activation_kernels.h)
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.2); }, -5, 5},
      {"elu", [](const Tensor& x) { return elu(x, 0.5); }, -10, 5},
      {"selu", [](const Tensor& x) { return selu(x); }, -10, 5},
      {"celu", [](const Tensor& x) { return celu(x, 2.0); }, -10, 5},
      {"softplus", [](const Tensor& x) { return softplus(x); }, -30, 30},
      {"softplus_beta2_threshold3", [](const Tensor& x) { return softplus(x, 2.0, 3.0); }, -5, 5},
      {"hardtanh", [](const Tensor& x) { return hardtanh(x, -0.5, 2.0); }, -4, 4},
      {"relu6", [](const Tensor& x) { return relu6(x); }, -3, 9},
      {"mish", [](const Tensor& x) { return mish(x); }, -20, 20},
      {"hardswish", [](const Tensor& x) { return hardswish(x); }, -5, 5},
      {"hardsigmoid", [](const Tensor& x) { return hardsigmoid(x); }, -5, 5},
  };
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16, DType::float64}) {
    for (const Case& c : cases) {
      const Tensor a = domain_tensor({41, 53}, dt, c.lo, c.hi, 5);
      check_op(
          name_of(c.name, dt), {a}, [&](const std::vector<Tensor>& x) { return c.fn(x[0]); },
          test::transcendental_tolerance(dt));
    }
  }
}

TEST(CudaElementwise, IntegerAndBoolUnaryOps) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kIntTypes) {
    // Includes the minimum of each type (negating it wraps to itself).
    const Tensor a = test::random_ints({300}, DType::int64, -200000, 200000, 17).to(dt);
    check_op(name_of("neg", dt), {a}, [](const std::vector<Tensor>& x) { return neg(x[0]); }, {});
    check_op(name_of("abs", dt), {a}, [](const std::vector<Tensor>& x) { return abs(x[0]); }, {});
    check_op(name_of("relu", dt), {a}, [](const std::vector<Tensor>& x) { return relu(x[0]); }, {});
  }
  const Tensor mins = from_vector<int64_t>({INT64_MIN, INT32_MIN, -128, 0, 5}, {5});
  check_op("neg int64 minima", {mins}, [](const std::vector<Tensor>& x) { return neg(x[0]); }, {});
  check_op("abs int32 minima", {mins.to(DType::int32)},
           [](const std::vector<Tensor>& x) { return abs(x[0]); }, {});
  check_op("abs int8 minima", {mins.to(DType::int8)},
           [](const std::vector<Tensor>& x) { return abs(x[0]); }, {});
  const Tensor f = test::awkward_tensor({64}, DType::float32, 9);
  check_op("logical_not bool", {f.to(DType::bool_)},
           [](const std::vector<Tensor>& x) { return logical_not(x[0]); }, {});
  check_op("logical_not float", {f}, [](const std::vector<Tensor>& x) { return logical_not(x[0]); },
           {});
}

TEST(CudaElementwise, BinaryOpsOnFloats) {
  FABRIC_REQUIRE_CUDA();
  using BinFn = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<std::pair<const char*, BinFn>> exact = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"add alpha", [](const Tensor& a, const Tensor& b) { return add(a, b, 2.5); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"sub alpha", [](const Tensor& a, const Tensor& b) { return sub(a, b, -0.75); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }},
  };
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16, DType::float64}) {
    const Tensor a = test::awkward_tensor({45, 67}, dt, 21),
                 b = test::awkward_tensor({45, 67}, dt, 22);
    for (const auto& [name, fn] : exact) {
      check_op(name_of(name, dt), {a, b},
               [fn = fn](const std::vector<Tensor>& x) { return fn(x[0], x[1]); }, {});
    }
    // Signed zeros and NaN in both positions of maximum/minimum.
    const Tensor z1 = from_vector<float>({0.0f, -0.0f, 0.0f, -0.0f, NAN, 1.0f, NAN}, {7}).to(dt);
    const Tensor z2 = from_vector<float>({-0.0f, 0.0f, 0.0f, -0.0f, 1.0f, NAN, NAN}, {7}).to(dt);
    check_op(name_of("maximum zeros", dt), {z1, z2},
             [](const std::vector<Tensor>& x) { return maximum(x[0], x[1]); }, {});
    check_op(name_of("minimum zeros", dt), {z1, z2},
             [](const std::vector<Tensor>& x) { return minimum(x[0], x[1]); }, {});
    const Tensor base = domain_tensor({45, 67}, dt, 0.1f, 4.0f, 23),
                 expo = domain_tensor({45, 67}, dt, -3, 3, 24);
    check_op(
        name_of("pow", dt), {base, expo},
        [](const std::vector<Tensor>& x) { return pow(x[0], x[1]); },
        test::transcendental_tolerance(dt));
  }
}

// add/sub/mul/div of a float32 and a bf16/f16 tensor widen the narrower input in the kernel
// (MixedFloatArith), as the CPU does, instead of a float32 cast copy first: the same bits, in
// both orders, with alpha, a broadcast row, a transposed input and in place.
TEST(CudaElementwise, MixedFloatInputsWidenInTheKernel) {
  FABRIC_REQUIRE_CUDA();
  using BinFn = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<std::pair<const char*, BinFn>> ops = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"add alpha", [](const Tensor& a, const Tensor& b) { return add(a, b, 0.5); }},
      {"sub alpha", [](const Tensor& a, const Tensor& b) { return sub(a, b, -0.75); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
  };
  for (DType half : {DType::bfloat16, DType::float16}) {
    const Tensor f = test::awkward_tensor({45, 67}, DType::float32, 31);
    const Tensor h = test::awkward_tensor({45, 67}, half, 32);
    const Tensor row = test::awkward_tensor({67}, half, 33);
    const Tensor ht = test::awkward_tensor({67, 45}, half, 34);
    for (const auto& [name, fn] : ops) {
      const std::string what = name_of(name, half);
      check_op(what + " f32 first", {f, h},
               [fn = fn](const std::vector<Tensor>& x) { return fn(x[0], x[1]); }, {});
      check_op(what + " f32 second", {h, f},
               [fn = fn](const std::vector<Tensor>& x) { return fn(x[0], x[1]); }, {});
      check_op(what + " broadcast row", {f, row},
               [fn = fn](const std::vector<Tensor>& x) { return fn(x[0], x[1]); }, {});
      check_op(what + " transposed", {f, ht},
               [fn = fn](const std::vector<Tensor>& x) { return fn(x[0], x[1].t()); }, {});
    }
    check_op(name_of("add_ in place", half), {f, h},
             [](const std::vector<Tensor>& x) {
               Tensor a = x[0].clone();
               a.add_(x[1], 0.25);
               return a;
             },
             {});
  }
}

TEST(CudaElementwise, BinaryOpsWithAScalar) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16, DType::float64}) {
    const Tensor a = test::awkward_tensor({33, 31}, dt, 31);
    auto one = [&](const char* name, std::function<Tensor(const Tensor&)> fn, Tolerance tol = {}) {
      check_op(
          name_of(name, dt), {a}, [&](const std::vector<Tensor>& x) { return fn(x[0]); }, tol);
    };
    one("add 2.5", [](const Tensor& x) { return add(x, 2.5); });
    one("sub 1", [](const Tensor& x) { return sub(x, 1); });
    one("mul -3.5", [](const Tensor& x) { return mul(x, -3.5); });
    one("div 3", [](const Tensor& x) { return div(x, 3); });
    one("div 0.1", [](const Tensor& x) { return div(x, 0.1); });
    // The special exponents are exact forms (x*x, sqrt, 1/x, ...) on both devices.
    for (double e : {2.0, 3.0, 0.5, -0.5, -1.0, -2.0}) {
      one(("pow " + std::to_string(e)).c_str(), [e](const Tensor& x) { return pow(x, e); });
    }
    // 2 + 1e-10 is 2.0f in fp32: the CPU squares, and so must the GPU.
    if (dt != DType::float64)
      one("pow 2+1e-10", [](const Tensor& x) { return pow(x, 2.0000000001); });
    // float16/bfloat16 round the exponent to the dtype first (2.0001 squares, 3.0004 cubes in
    // bfloat16: negative bases stay finite), then take pow (kernels/cuda/pow_form.h).
    if (dt == DType::float16 || dt == DType::bfloat16) {
      for (double e : {2.0001, 3.0004, -1.9996, 0.50001}) {
        one(("pow " + std::to_string(e)).c_str(), [e](const Tensor& x) { return pow(x, e); },
            test::rounding_tolerance(dt));
      }
    }
    const Tensor pos = domain_tensor({33, 31}, dt, 0.01f, 10.0f, 32);
    check_op(
        name_of("pow 1.7", dt), {pos}, [](const std::vector<Tensor>& x) { return pow(x[0], 1.7); },
        test::transcendental_tolerance(dt));
  }
}

TEST(CudaElementwise, BroadcastingAndNonContiguousInputs) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    const Tensor a = test::awkward_tensor({4, 1, 5}, dt, 41),
                 b = test::awkward_tensor({3, 1}, dt, 42);
    check_op(name_of("add broadcast", dt), {a, b},
             [](const std::vector<Tensor>& x) { return add(x[0], x[1], 1.5); }, {});
    check_op(name_of("mul broadcast row", dt),
             {test::awkward_tensor({6, 7}, dt, 43), test::awkward_tensor({7}, dt, 44)},
             [](const std::vector<Tensor>& x) { return mul(x[0], x[1]); }, {});
    const Tensor m = test::awkward_tensor({40, 50}, dt, 45),
                 n = test::awkward_tensor({50, 40}, dt, 46);
    check_op(name_of("sub transposed", dt), {m, n},
             [](const std::vector<Tensor>& x) { return sub(x[0], x[1].t()); }, {});
    check_op(name_of("div sliced", dt), {m, n},
             [](const std::vector<Tensor>& x) {
               return div(x[0].slice(1, 0, 50, 2), x[1].t().slice(1, 1, 50, 2));
             },
             {});
    const Tensor p = test::awkward_tensor({3, 4, 5, 6}, dt, 47);
    check_op(name_of("neg permuted", dt), {p},
             [](const std::vector<Tensor>& x) {
               return neg(x[0].permute({3, 1, 0, 2}));
             },
             {});
    check_op(name_of("maximum expanded", dt), {p, test::awkward_tensor({1, 4, 1, 6}, dt, 48)},
             [](const std::vector<Tensor>& x) {
               return maximum(x[0].permute({0, 2, 1, 3}), x[1].permute({0, 2, 1, 3}));
             },
             {});
  }
}

TEST(CudaElementwise, InPlaceAndMixedDTypes) {
  FABRIC_REQUIRE_CUDA();
  const Tensor a = test::awkward_tensor({21, 22}, DType::bfloat16, 51);
  const Tensor b = test::awkward_tensor({21, 22}, DType::float32, 52);
  check_op("bf16 add_ f32 (computes in fp32, rounds once)", {a, b},
           [](const std::vector<Tensor>& x) {
             Tensor t = x[0].clone();
             add_(t, x[1], 0.5);
             return t;
           },
           {});
  check_op("f32 mul_ scalar, in place on a view", {b},
           [](const std::vector<Tensor>& x) {
             Tensor t = x[0].clone();
             Tensor v = t.slice(0, 2, 21, 3);
             mul_(v, 4.0);
             return t;
           },
           {});
  check_op("f32 sub_ of its own transpose", {test::awkward_tensor({16, 16}, DType::float32, 53)},
           [](const std::vector<Tensor>& x) {
             Tensor t = x[0].clone();
             sub_(t, t.t());  // aliasing: the op layer copies the operand first
             return t;
           },
           {});
  check_op("half + float promotes",
           {test::awkward_tensor({9, 9}, DType::float16, 54), b.slice(0, 0, 9).slice(1, 0, 9)},
           [](const std::vector<Tensor>& x) { return add(x[0], x[1]); }, {});
  check_op("int32 / int32 is float division",
           {test::random_ints({50}, DType::int32, -100, 100, 55),
            test::random_ints({50}, DType::int32, 1, 9, 56)},
           [](const std::vector<Tensor>& x) { return div(x[0], x[1]); }, {});
}

TEST(CudaElementwise, IntegerAndBoolBinaryOps) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kIntTypes) {
    // Large magnitudes so that add/mul wrap around.
    const Tensor a =
        test::random_ints({200}, DType::int64, INT64_MIN / 4, INT64_MAX / 4, 61).to(dt);
    const Tensor b =
        test::random_ints({200}, DType::int64, INT64_MIN / 4, INT64_MAX / 4, 62).to(dt);
    const Tensor e = test::random_ints({200}, dt, 0, 6, 63);
    check_op(name_of("add", dt), {a, b},
             [](const std::vector<Tensor>& x) { return add(x[0], x[1]); }, {});
    check_op(name_of("add alpha 3", dt), {a, b},
             [](const std::vector<Tensor>& x) { return add(x[0], x[1], 3); }, {});
    check_op(name_of("sub", dt), {a, b},
             [](const std::vector<Tensor>& x) { return sub(x[0], x[1]); }, {});
    check_op(name_of("mul", dt), {a, b},
             [](const std::vector<Tensor>& x) { return mul(x[0], x[1]); }, {});
    check_op(name_of("mul 7", dt), {a}, [](const std::vector<Tensor>& x) { return mul(x[0], 7); },
             {});
    check_op(name_of("maximum", dt), {a, b},
             [](const std::vector<Tensor>& x) { return maximum(x[0], x[1]); }, {});
    check_op(name_of("minimum", dt), {a, b},
             [](const std::vector<Tensor>& x) { return minimum(x[0], x[1]); }, {});
    check_op(name_of("pow", dt), {a, e},
             [](const std::vector<Tensor>& x) { return pow(x[0], x[1]); }, {});
    check_op(name_of("pow 3", dt), {a}, [](const std::vector<Tensor>& x) { return pow(x[0], 3); },
             {});
  }
  const Tensor p = test::awkward_tensor({100}, DType::bool_, 64),
               q = test::awkward_tensor({100}, DType::bool_, 65);
  const Tensor pf = test::awkward_tensor({100}, DType::float32, 66);
  check_op("logical_and", {p, q},
           [](const std::vector<Tensor>& x) { return logical_and(x[0], x[1]); }, {});
  check_op("logical_or", {p, q},
           [](const std::vector<Tensor>& x) { return logical_or(x[0], x[1]); }, {});
  check_op("logical_and float", {pf, q},
           [](const std::vector<Tensor>& x) { return logical_and(x[0], x[1]); }, {});
  check_op("bool add", {p, q}, [](const std::vector<Tensor>& x) { return add(x[0], x[1]); }, {});
  check_op("bool mul", {p, q}, [](const std::vector<Tensor>& x) { return mul(x[0], x[1]); }, {});
  check_op("bool maximum", {p, q}, [](const std::vector<Tensor>& x) { return maximum(x[0], x[1]); },
           {});
}

TEST(CudaElementwise, Comparisons) {
  FABRIC_REQUIRE_CUDA();
  using CmpT = Tensor (*)(const Tensor&, const Tensor&);
  using CmpS = Tensor (*)(const Tensor&, const Scalar&);
  const std::vector<std::tuple<const char*, CmpT, CmpS>> ops = {{"eq", &eq, &eq}, {"ne", &ne, &ne},
                                                                {"lt", &lt, &lt}, {"le", &le, &le},
                                                                {"gt", &gt, &gt}, {"ge", &ge, &ge}};
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16, DType::float64, DType::int32,
                   DType::uint8, DType::bool_}) {
    const Tensor a = test::awkward_tensor({30, 40}, dt, 71);
    // Half of b equals a, so equality is exercised, not just ordering.
    Tensor b = test::awkward_tensor({30, 40}, dt, 72);
    b.slice(0, 0, 15).copy_(a.slice(0, 0, 15));
    for (const auto& [name, tt, ts] : ops) {
      check_op(name_of(name, dt), {a, b},
               [tt = tt](const std::vector<Tensor>& x) { return tt(x[0], x[1]); }, {});
      check_op(name_of(name, dt) + " broadcast", {a, b.slice(0, 3, 4)},
               [tt = tt](const std::vector<Tensor>& x) { return tt(x[0], x[1]); }, {});
      // 0.1 is first rounded to the dtype (bf16(0.1) != 0.1).
      for (const Scalar& s : {Scalar(0.1), Scalar(0), Scalar(-1), Scalar(2.5)}) {
        check_op(name_of(name, dt) + " scalar", {a},
                 [ts = ts, s](const std::vector<Tensor>& x) { return ts(x[0], s); }, {});
      }
    }
  }
  check_op(
      "lt int vs float promotes",
      {test::random_ints({64}, DType::int32, -5, 5), test::awkward_tensor({64}, DType::float32)},
      [](const std::vector<Tensor>& x) { return lt(x[0], x[1]); }, {});
}

TEST(CudaElementwise, Where) {
  FABRIC_REQUIRE_CUDA();
  const Tensor c = test::awkward_tensor({25, 27}, DType::float32, 81);
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16, DType::float64, DType::int64,
                   DType::int8, DType::bool_}) {
    const Tensor a = test::awkward_tensor({25, 27}, dt, 82),
                 b = test::awkward_tensor({25, 27}, dt, 83);
    check_op(name_of("where", dt), {c, a, b},
             [](const std::vector<Tensor>& x) { return where(gt(x[0], 0.0), x[1], x[2]); }, {});
    // (Inputs move to the GPU contiguous: views are made inside the op.)
    check_op(name_of("where broadcast cond", dt), {c, a, b},
             [](const std::vector<Tensor>& x) {
               return where(lt(x[0].slice(1, 0, 1), 0.5), x[1], x[2].t().contiguous().t());
             },
             {});
    check_op(name_of("where scalar", dt), {c, a},
             [](const std::vector<Tensor>& x) { return where(ge(x[0], 1.0), x[1], Scalar(2)); },
             {});
  }
}

TEST(CudaElementwise, Clamp) {
  FABRIC_REQUIRE_CUDA();
  using Opt = std::optional<Scalar>;
  const std::vector<std::pair<Opt, Opt>> bounds = {
      {Scalar(-1), Scalar(2)},      {std::nullopt, Scalar(0.5)}, {Scalar(1), std::nullopt},
      {Scalar(3), Scalar(-3)},      {Scalar(NAN), Scalar(1)},    {Scalar(-5), Scalar(100)},
      {Scalar(-1e30), Scalar(1e30)}};
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16, DType::float64, DType::int32,
                   DType::uint8, DType::int8}) {
    const Tensor a = is_floating(dt) ? test::awkward_tensor({31, 33}, dt, 91)
                                     : test::random_ints({31, 33}, dt, -300, 300, 92);
    for (const auto& [lo, hi] : bounds) {
      if (!is_floating(dt) && ((lo && lo->is_floating()) || (hi && hi->is_floating()))) continue;
      const std::string what = name_of("clamp", dt) + " [" +
                               (lo ? std::to_string(lo->to_double()) : "-") + ", " +
                               (hi ? std::to_string(hi->to_double()) : "-") + "]";
      check_op(what, {a},
               [lo = lo, hi = hi](const std::vector<Tensor>& x) { return clamp(x[0], lo, hi); },
               {});
      check_op(what + " transposed", {a},
               [lo = lo, hi = hi](const std::vector<Tensor>& x) { return clamp(x[0].t(), lo, hi); },
               {});
    }
  }
}

// PyTorch's rule for a 0-d CPU tensor beside a CUDA tensor: it acts as a number (the host clip
// coefficient times CUDA gradients in FSDP's clip_gradients), in either position and in place;
// its gradient comes back to the host. Any other tensor must be on the same device.
TEST(CudaElementwise, AHostScalarTensorMeetsACudaTensor) {
  FABRIC_REQUIRE_CUDA();
  const Tensor x = from_vector<float>({1, -2, 3}).to(kGpu);
  const Tensor two = scalar_tensor(2.0, {.dtype = DType::float32});
  const Tensor y = mul(x, two), z = add(two, x);
  EXPECT_EQ(y.device(), kGpu);
  EXPECT_EQ(z.device(), kGpu);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{2, -4, 6}));
  EXPECT_EQ(z.to_vector<float>(), (std::vector<float>{3, 0, 5}));
  Tensor g = x.clone();
  mul_(g, two);
  EXPECT_EQ(g.device(), kGpu);
  EXPECT_EQ(g.to_vector<float>(), (std::vector<float>{2, -4, 6}));
  Tensor s = scalar_tensor(3.0, {.dtype = DType::float32});
  s.set_requires_grad(true);
  Tensor xl = x.clone();
  xl.set_requires_grad(true);
  sum(mul(xl, s)).backward();
  ASSERT_TRUE(s.grad().defined());
  EXPECT_EQ(s.grad().device(), Device::cpu());
  EXPECT_EQ(s.grad().item<float>(), 2.0f);
  EXPECT_EQ(xl.grad().device(), kGpu);
  EXPECT_EQ(xl.grad().to_vector<float>(), (std::vector<float>{3, 3, 3}));
  EXPECT_THROW(mul(x, from_vector<float>({2})), DeviceError);
}

TEST(CudaElementwise, Addcmul) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16, DType::float64}) {
    const Tensor s = test::awkward_tensor({20, 30}, dt, 101),
                 t1 = test::awkward_tensor({20, 30}, dt, 102),
                 t2 = test::awkward_tensor({30}, dt, 103);
    // g++ contracts the CPU's s + v*a*b into fma(v*a, b, s) (checked), and the CUDA kernel
    // computes that same fma: bit-exact.
    check_op(name_of("addcmul", dt), {s, t1, t2},
             [](const std::vector<Tensor>& x) { return addcmul(x[0], x[1], x[2], 0.7); }, {});
  }
  const Tensor i = test::random_ints({64}, DType::int32, -1000000, 1000000, 104);
  check_op("addcmul int32", {i, i, i},
           [](const std::vector<Tensor>& x) { return addcmul(x[0], x[1], x[2], 3); }, {});
}

TEST(CudaElementwise, LargeTensorsUseTheWholeGrid) {
  FABRIC_REQUIRE_CUDA();
  // 300 x 500 x 200 = 30M elements over 3 dims with broadcasting: the index decomposition path,
  // and more elements than one grid's threads, so the grid-stride loop wraps.
  const Tensor a = test::uniform_tensor({300, 1, 200}, DType::float32, -1, 1, 111);
  const Tensor b = test::uniform_tensor({1, 500, 1}, DType::float32, -1, 1, 112);
  check_op("large broadcast add", {a, b},
           [](const std::vector<Tensor>& x) { return add(x[0], x[1], 0.25); }, {});
  const Tensor c = test::uniform_tensor({(1 << 24) + 3}, DType::bfloat16, -4, 4, 113);
  check_op(
      "large flat gelu", {c}, [](const std::vector<Tensor>& x) { return gelu(x[0]); },
      test::transcendental_tolerance(DType::bfloat16));
}

TEST(CudaElementwise, Fp8OperandsAreRejectedLikeOnTheCpu) {
  FABRIC_REQUIRE_CUDA();
  const Tensor f8 = test::awkward_tensor({4}, DType::float8_e4m3fn).to(kGpu);
  EXPECT_THROW(neg(f8), DTypeError);
  EXPECT_THROW(add(f8, f8), DTypeError);
}

}  // namespace
}  // namespace fabric
