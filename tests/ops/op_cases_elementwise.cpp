// Harness cases for the elementwise family: binary (broadcasting, scalars, mixed dtypes),
// comparisons, logical ops, where, addcmul, unary ops and clamp, each against a naive reference.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using V = std::vector<Tensor>;
const std::vector<DType> kInt = {DType::int64};    // integer-only inputs: the case dtype is moot
const std::vector<DType> kF32 = {DType::float32};  // integer inputs with a float32 result

// The shapes every binary op runs on: same shape, broadcasting both ways, size 0 and 1, 0-dim.
const std::vector<std::pair<Shape, Shape>> kPairs = {
    {{3, 4}, {3, 4}}, {{4, 1, 3}, {5, 3}}, {{2, 3, 4}, {4}}, {{1, 5}, {3, 1}},
    {{0, 3}, {1, 3}}, {{1}, {6}},          {{}, {2, 3}},     {{3, 2}, {}},
};

void add_binary(std::vector<OpCase>& cases, const std::string& name,
                std::function<Tensor(const V&)> run, std::function<double(double, double)> ref,
                bool positive_b = false) {
  for (const auto& [sa, sb] : kPairs) {
    cases.push_back({name + "/" + shape_str(sa) + "x" + shape_str(sb),
                     {F(sa), positive_b ? P(sb, 0.5, 2) : F(sb)},
                     run,
                     ref_binary(ref)});
  }
}

void add_unary(std::vector<OpCase>& cases, const std::string& name,
               std::function<Tensor(const V&)> run, std::function<double(double)> ref,
               double lo = -3, double hi = 3, bool positive = false) {
  for (const Shape& s : std::vector<Shape>{{7, 9}, {2, 3, 17}, {0, 4}, {1}, {}, {40, 33}}) {
    cases.push_back(
        {name + "/" + shape_str(s), {positive ? P(s, lo, hi) : F(s, lo, hi)}, run, ref_unary(ref)});
  }
}

// Inputs for the piecewise-constant ops (floor ... sign): values in [-3, 3] at least 0.05 from
// every multiple of 0.5 (a jump of floor/ceil/trunc or round, or sign's 0), so the central
// differences never straddle one and low-precision rounding never moves a value across one.
InputSpec away_from_jumps(const Shape& s) {
  std::vector<double> v(numel_of(s));
  for (size_t i = 0; i < v.size(); ++i) {
    const double frac = std::fmod(0.6180339887 * static_cast<double>(i + 1), 1.0);  // in [0, 1)
    const double half_steps = std::floor(frac * 12);                                // 0 .. 11
    v[i] = -3 + 0.5 * half_steps + 0.05 + 0.4 * std::fmod(frac * 12, 1.0);
  }
  return harness::V(s, std::move(v));  // the input helper, not this file's V alias
}

void add_piecewise_constant(std::vector<OpCase>& cases, const std::string& name,
                            std::function<Tensor(const V&)> run,
                            std::function<double(double)> ref) {
  for (const Shape& s : std::vector<Shape>{{7, 9}, {2, 3, 17}, {0, 4}, {1}, {}, {40, 33}})
    cases.push_back({name + "/" + shape_str(s), {away_from_jumps(s)}, run, ref_unary(ref)});
}

double sign_ref(double x) { return (0 < x) - (x < 0); }

double gelu_erf_ref(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_ref(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

std::vector<OpCase> elementwise_cases() {
  std::vector<OpCase> c;

  // ---- arithmetic -----------------------------------------------------------------------------
  add_binary(
      c, "add", [](const V& x) { return x[0] + x[1]; }, [](double a, double b) { return a + b; });
  add_binary(
      c, "add_alpha", [](const V& x) { return add(x[0], x[1], 2.5); },
      [](double a, double b) { return a + 2.5 * b; });
  add_binary(
      c, "sub", [](const V& x) { return x[0] - x[1]; }, [](double a, double b) { return a - b; });
  add_binary(
      c, "sub_alpha", [](const V& x) { return sub(x[0], x[1], -1.5); },
      [](double a, double b) { return a + 1.5 * b; });
  add_binary(
      c, "mul", [](const V& x) { return x[0] * x[1]; }, [](double a, double b) { return a * b; });
  add_binary(
      c, "div", [](const V& x) { return x[0] / x[1]; }, [](double a, double b) { return a / b; },
      true);
  add_binary(
      c, "maximum", [](const V& x) { return maximum(x[0], x[1]); },
      [](double a, double b) { return std::max(a, b); });
  add_binary(
      c, "minimum", [](const V& x) { return minimum(x[0], x[1]); },
      [](double a, double b) { return std::min(a, b); });
  for (const auto& [sa, sb] : kPairs) {
    c.push_back({"pow/" + shape_str(sa) + "x" + shape_str(sb),
                 {P(sa, 0.2, 3), F(sb, -2, 2)},
                 [](const V& x) { return pow(x[0], x[1]); },
                 ref_binary([](double a, double b) { return std::pow(a, b); })});
  }

  // Tensor-scalar forms (the Scalar overloads and operators).
  add_unary(
      c, "add_scalar", [](const V& x) { return x[0] + 0.75; }, [](double a) { return a + 0.75; });
  add_unary(
      c, "sub_scalar", [](const V& x) { return x[0] - 2; }, [](double a) { return a - 2; });
  add_unary(
      c, "mul_scalar", [](const V& x) { return x[0] * 3.0; }, [](double a) { return a * 3.0; });
  add_unary(
      c, "div_scalar", [](const V& x) { return x[0] / 4; }, [](double a) { return a / 4; });
  add_unary(
      c, "pow_scalar2", [](const V& x) { return pow(x[0], 2); }, [](double a) { return a * a; });
  add_unary(
      c, "pow_scalar_half", [](const V& x) { return pow(x[0], 0.5); },
      [](double a) { return std::sqrt(a); }, 0.1, 4, true);
  add_unary(
      c, "pow_scalar_neg", [](const V& x) { return pow(x[0], -1.5); },
      [](double a) { return std::pow(a, -1.5); }, 0.5, 3, true);
  // The exponents with their own kernels (x*x, sqrt, 1/x, ...).
  add_unary(
      c, "pow_scalar3", [](const V& x) { return pow(x[0], 3); },
      [](double a) { return a * a * a; });
  add_unary(
      c, "pow_scalar-1", [](const V& x) { return pow(x[0], -1); }, [](double a) { return 1 / a; },
      0.3, 3, true);
  add_unary(
      c, "pow_scalar-2", [](const V& x) { return pow(x[0], -2.0); },
      [](double a) { return 1 / (a * a); }, 0.5, 3, true);
  add_unary(
      c, "pow_scalar-0.5", [](const V& x) { return pow(x[0], -0.5); },
      [](double a) { return 1 / std::sqrt(a); }, 0.3, 3, true);

  // Mixed dtypes: float with integer tensors promote to the float dtype (the case dtype).
  c.push_back({"add/float+int64",
               {F({3, 4}), I({3, 4}, -5, 5)},
               [](const V& x) { return x[0] + x[1]; },
               ref_binary([](double a, double b) { return a + b; })});
  c.push_back({"mul/int32*float_bcast",
               {I({4, 1}, -5, 5, DType::int32), F({4, 6})},
               [](const V& x) { return x[0] * x[1]; },
               ref_binary([](double a, double b) { return a * b; })});

  // Integer arithmetic stays integer and is exact.
  auto exact_int = [&](const std::string& name, std::vector<InputSpec> in, OpFn run, RefFn ref) {
    OpCase k{name, std::move(in), std::move(run), std::move(ref)};
    k.dtypes = kInt;
    k.exact = true;
    c.push_back(k);
  };
  exact_int(
      "add/int64+int32", {I({4, 1, 3}, -100, 100), I({5, 3}, -100, 100, DType::int32)},
      [](const V& x) { return add(x[0], x[1], 3); },
      ref_binary([](double a, double b) { return a + 3 * b; }));
  exact_int(
      "sub/int8", {I({6, 5}, -60, 60, DType::int8), I({6, 5}, -60, 60, DType::int8)},
      [](const V& x) { return x[0] - x[1]; }, ref_binary([](double a, double b) { return a - b; }));
  exact_int(
      "mul/uint8_scalar", {I({7, 3}, 0, 20, DType::uint8)}, [](const V& x) { return x[0] * 5; },
      ref_unary([](double a) { return a * 5; }));
  exact_int(
      "maximum/int32", {I({3, 4}, -9, 9, DType::int32), I({4}, -9, 9, DType::int32)},
      [](const V& x) { return maximum(x[0], x[1]); },
      ref_binary([](double a, double b) { return std::max(a, b); }));
  exact_int(
      "minimum/int64", {I({3, 4}, -9, 9), I({3, 1}, -9, 9)},
      [](const V& x) { return minimum(x[0], x[1]); },
      ref_binary([](double a, double b) { return std::min(a, b); }));
  exact_int(
      "pow/int64", {I({5, 4}, -4, 4), I({5, 4}, 0, 5)}, [](const V& x) { return pow(x[0], x[1]); },
      ref_binary([](double a, double b) { return std::pow(a, b); }));
  exact_int(
      "pow_scalar/int64", {I({5, 4}, -6, 6)}, [](const V& x) { return pow(x[0], 3); },
      ref_unary([](double a) { return a * a * a; }));
  exact_int(
      "add/bool", {B({4, 5}), B({4, 5})}, [](const V& x) { return x[0] + x[1]; },
      ref_binary([](double a, double b) { return (a != 0 || b != 0) ? 1.0 : 0.0; }));
  exact_int(
      "mul/bool", {B({4, 5}), B({5})}, [](const V& x) { return x[0] * x[1]; },
      ref_binary([](double a, double b) { return a * b; }));
  exact_int(
      "neg/int32", {I({4, 6}, -50, 50, DType::int32)}, [](const V& x) { return -x[0]; },
      ref_unary([](double a) { return -a; }));
  exact_int(
      "abs/int8", {I({4, 6}, -50, 50, DType::int8)}, [](const V& x) { return abs(x[0]); },
      ref_unary([](double a) { return std::fabs(a); }));
  exact_int(
      "relu/int64", {I({4, 6}, -50, 50)}, [](const V& x) { return relu(x[0]); },
      ref_unary([](double a) { return a > 0 ? a : 0; }));
  exact_int(
      "clamp/int64", {I({4, 6}, -50, 50)}, [](const V& x) { return clamp(x[0], -7, 9); },
      ref_unary([](double a) { return std::min(std::max(a, -7.0), 9.0); }));
  // The rounding ops keep integer dtypes (values unchanged); sign keeps them too, and bool.
  for (DType dt : {DType::int64, DType::int32, DType::int8, DType::uint8}) {
    const double lo = dt == DType::uint8 ? 0 : -50;
    const std::string d(dtype_name(dt));
    for (auto [name, op] : std::vector<std::pair<std::string, Tensor (*)(const Tensor&)>>{
             {"floor", floor}, {"ceil", ceil}, {"round", round}, {"trunc", trunc}}) {
      exact_int(
          name + "/" + d, {I({4, 6}, lo, 50, dt)}, [op](const V& x) { return op(x[0]); },
          ref_unary([](double a) { return a; }));
    }
    exact_int(
        "sign/" + d, {I({4, 6}, lo, 50, dt)}, [](const V& x) { return sign(x[0]); },
        ref_unary(sign_ref));
  }
  exact_int(
      "sign/bool", {B({4, 5})}, [](const V& x) { return sign(x[0]); },
      ref_unary([](double a) { return a; }));

  // True division and transcendental ops take integers to float32.
  auto int_to_float = [&](const std::string& name, std::vector<InputSpec> in, OpFn run, RefFn ref) {
    OpCase k{name, std::move(in), std::move(run), std::move(ref)};
    k.dtypes = kF32;
    c.push_back(k);
  };
  int_to_float(
      "div/int64", {I({4, 5}, -20, 20), I({5}, 1, 9)}, [](const V& x) { return x[0] / x[1]; },
      ref_binary([](double a, double b) { return a / b; }));
  int_to_float(
      "add/int64+2.5", {I({4, 5}, -20, 20)}, [](const V& x) { return x[0] + 2.5; },
      ref_unary([](double a) { return a + 2.5; }));
  int_to_float(
      "exp/int32", {I({3, 5}, -4, 4, DType::int32)}, [](const V& x) { return exp(x[0]); },
      ref_unary([](double a) { return std::exp(a); }));
  int_to_float(
      "sigmoid/int64", {I({3, 5}, -4, 4)}, [](const V& x) { return sigmoid(x[0]); },
      ref_unary([](double a) { return 1 / (1 + std::exp(-a)); }));
  int_to_float(
      "log1p/int64", {I({3, 5}, -1, 9)}, [](const V& x) { return log1p(x[0]); },
      ref_unary([](double a) { return std::log1p(a); }));
  int_to_float(
      "log1p/uint8", {I({3, 5}, 0, 200, DType::uint8)}, [](const V& x) { return log1p(x[0]); },
      ref_unary([](double a) { return std::log1p(a); }));
  int_to_float(
      "expm1/int8", {I({3, 5}, -9, 9, DType::int8)}, [](const V& x) { return expm1(x[0]); },
      ref_unary([](double a) { return std::expm1(a); }));
  int_to_float(
      "erf/int32", {I({3, 5}, -3, 3, DType::int32)}, [](const V& x) { return erf(x[0]); },
      ref_unary([](double a) { return std::erf(a); }));
  int_to_float(
      "erf/bool", {B({3, 5})}, [](const V& x) { return erf(x[0]); },
      ref_unary([](double a) { return std::erf(a); }));
  int_to_float(
      "clamp/int64_float_bound", {I({3, 5}, -4, 4)},
      [](const V& x) { return clamp(x[0], 0.5, std::nullopt); },
      ref_unary([](double a) { return std::max(a, 0.5); }));

  // ---- comparisons and logical ops (bool results, exact)
  // -----------------------------------------
  auto exact_bool = [&](const std::string& name, std::vector<InputSpec> in, OpFn run, RefFn ref) {
    OpCase k{name, std::move(in), std::move(run), std::move(ref)};
    k.exact = true;
    c.push_back(k);
  };
  auto b2d = [](bool v) { return v ? 1.0 : 0.0; };
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&, const Tensor&)>>>
      cmps = {{"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }},
              {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }},
              {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }},
              {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); }},
              {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }},
              {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }}};
  const std::vector<std::function<bool(double, double)>> cmp_refs = {
      [](double a, double b) { return a == b; }, [](double a, double b) { return a != b; },
      [](double a, double b) { return a < b; },  [](double a, double b) { return a <= b; },
      [](double a, double b) { return a > b; },  [](double a, double b) { return a >= b; }};
  for (size_t k = 0; k < cmps.size(); ++k) {
    const auto fn = cmps[k].second;
    const auto r = cmp_refs[k];
    auto ref = ref_binary([r, b2d](double a, double b) { return b2d(r(a, b)); });
    exact_bool(
        cmps[k].first + "/float", {F({4, 1, 3}), F({5, 3})},
        [fn](const V& x) { return fn(x[0], x[1]); }, ref);
    exact_bool(
        cmps[k].first + "/self", {F({3, 4})}, [fn](const V& x) { return fn(x[0], x[0]); },
        ref_unary([r, b2d](double a) { return b2d(r(a, a)); }));
    // Integer ties (int32 against int64: promoted first).
    OpCase ints{cmps[k].first + "/int32_vs_int64",
                {I({6, 4}, -2, 2, DType::int32), I({4}, -2, 2)},
                [fn](const V& x) { return fn(x[0], x[1]); },
                ref};
    ints.dtypes = kInt;
    ints.exact = true;
    c.push_back(ints);
    exact_bool(
        cmps[k].first + "/0dim", {F({}), F({2, 3})}, [fn](const V& x) { return fn(x[0], x[1]); },
        ref);
    exact_bool(
        cmps[k].first + "/empty", {F({0, 3}), F({3})}, [fn](const V& x) { return fn(x[0], x[1]); },
        ref);
  }
  exact_bool(
      "lt_scalar", {F({5, 7})}, [](const V& x) { return lt(x[0], 0.25); },
      ref_unary([](double a) { return a < 0.25 ? 1.0 : 0.0; }));
  exact_bool(
      "ge_scalar", {F({5, 7})}, [](const V& x) { return ge(x[0], -1); },
      ref_unary([](double a) { return a >= -1 ? 1.0 : 0.0; }));
  exact_bool(
      "eq_scalar_int", {I({5, 7}, -3, 3)}, [](const V& x) { return eq(x[0], 1); },
      ref_unary([](double a) { return a == 1 ? 1.0 : 0.0; }));
  exact_bool(
      "ne_scalar", {I({5, 7}, -3, 3, DType::int32)}, [](const V& x) { return ne(x[0], 0); },
      ref_unary([](double a) { return a != 0 ? 1.0 : 0.0; }));
  exact_bool(
      "gt_scalar", {F({5, 7})}, [](const V& x) { return gt(x[0], 0); },
      ref_unary([](double a) { return a > 0 ? 1.0 : 0.0; }));
  exact_bool(
      "le_scalar", {F({5, 7})}, [](const V& x) { return le(x[0], 0.5); },
      ref_unary([](double a) { return a <= 0.5 ? 1.0 : 0.0; }));

  exact_bool(
      "logical_and/bool", {B({4, 1, 3}), B({5, 3})},
      [](const V& x) { return logical_and(x[0], x[1]); },
      ref_binary([](double a, double b) { return (a != 0 && b != 0) ? 1.0 : 0.0; }));
  exact_bool(
      "logical_or/bool", {B({3, 4}), B({4})}, [](const V& x) { return logical_or(x[0], x[1]); },
      ref_binary([](double a, double b) { return (a != 0 || b != 0) ? 1.0 : 0.0; }));
  exact_bool(
      "logical_and/int_float", {I({3, 4}, -1, 2), F({3, 4})},
      [](const V& x) { return logical_and(x[0], x[1]); },
      ref_binary([](double a, double b) { return (a != 0 && b != 0) ? 1.0 : 0.0; }));
  exact_bool(
      "logical_not/bool", {B({3, 5})}, [](const V& x) { return logical_not(x[0]); },
      ref_unary([](double a) { return a == 0 ? 1.0 : 0.0; }));
  exact_bool(
      "logical_not/int", {I({3, 5}, -1, 2)}, [](const V& x) { return logical_not(x[0]); },
      ref_unary([](double a) { return a == 0 ? 1.0 : 0.0; }));

  // ---- where, addcmul
  // ------------------------------------------------------------------------------
  auto where_ref = [](const std::vector<RefTensor>& in) {
    const Shape s =
        broadcast_shapes(broadcast_shapes(in[0].shape, in[1].shape, "ref"), in[2].shape, "ref");
    // Broadcast each operand with ref_binary's indexing by pairing it with a zero tensor of s.
    RefTensor zero{s, std::vector<double>(numel_of(s), 0.0)};
    auto expand = [&](const RefTensor& t) {
      return ref_binary([](double a, double) { return a; })({t, zero});
    };
    RefTensor c0 = expand(in[0]), a = expand(in[1]), b = expand(in[2]);
    RefTensor out{s, std::vector<double>(numel_of(s))};
    for (int64_t i = 0; i < out.numel(); ++i) out.v[i] = c0.v[i] != 0 ? a.v[i] : b.v[i];
    return out;
  };
  c.push_back({"where/same",
               {B({3, 4}), F({3, 4}), F({3, 4})},
               [](const V& x) { return where(x[0], x[1], x[2]); },
               where_ref});
  c.push_back({"where/broadcast",
               {B({4, 1, 3}), F({5, 3}), F({1})},
               [](const V& x) { return where(x[0], x[1], x[2]); },
               where_ref});
  c.push_back({"where/0dim_empty",
               {B({0, 3}), F({}), F({3})},
               [](const V& x) { return where(x[0], x[1], x[2]); },
               where_ref});
  c.push_back({"where/scalar",
               {B({4, 5}), F({4, 5})},
               [](const V& x) { return where(x[0], x[1], -1.5); },
               ref_binary([](double cnd, double a) { return cnd != 0 ? a : -1.5; })});
  exact_int(
      "where/int", {B({4, 5}), I({4, 5}, -9, 9), I({5}, -9, 9, DType::int32)},
      [](const V& x) { return where(x[0], x[1], x[2]); }, where_ref);

  auto addcmul_ref = [](double v) {
    return [v](const std::vector<RefTensor>& in) {
      RefTensor prod = ref_binary([v](double a, double b) { return v * a * b; })({in[1], in[2]});
      return ref_binary([](double s, double p) { return s + p; })({in[0], prod});
    };
  };
  c.push_back({"addcmul/same",
               {F({3, 4}), F({3, 4}), F({3, 4})},
               [](const V& x) { return addcmul(x[0], x[1], x[2], 0.5); },
               addcmul_ref(0.5)});
  c.push_back({"addcmul/broadcast",
               {F({4, 1, 3}), F({5, 3}), F({1})},
               [](const V& x) { return addcmul(x[0], x[1], x[2], -2); },
               addcmul_ref(-2)});
  c.push_back({"addcmul/0dim_empty",
               {F({}), F({0, 3}), F({3})},
               [](const V& x) { return addcmul(x[0], x[1], x[2]); },
               addcmul_ref(1)});

  // ---- unary -----------------------------------------------------------------------------------
  add_unary(
      c, "neg", [](const V& x) { return -x[0]; }, [](double a) { return -a; });
  add_unary(
      c, "abs", [](const V& x) { return abs(x[0]); }, [](double a) { return std::fabs(a); });
  add_unary(
      c, "exp", [](const V& x) { return exp(x[0]); }, [](double a) { return std::exp(a); }, -5, 5);
  add_unary(
      c, "log", [](const V& x) { return log(x[0]); }, [](double a) { return std::log(a); }, 0.01,
      50, true);
  add_unary(
      c, "sqrt", [](const V& x) { return sqrt(x[0]); }, [](double a) { return std::sqrt(a); }, 0, 9,
      true);
  add_unary(
      c, "rsqrt", [](const V& x) { return rsqrt(x[0]); }, [](double a) { return 1 / std::sqrt(a); },
      0.1, 9, true);
  add_unary(
      c, "tanh", [](const V& x) { return tanh(x[0]); }, [](double a) { return std::tanh(a); }, -5,
      5);
  add_unary(
      c, "sigmoid", [](const V& x) { return sigmoid(x[0]); },
      [](double a) { return 1 / (1 + std::exp(-a)); }, -8, 8);
  add_unary(
      c, "relu", [](const V& x) { return relu(x[0]); }, [](double a) { return a > 0 ? a : 0; });
  add_unary(
      c, "gelu", [](const V& x) { return gelu(x[0]); }, gelu_erf_ref, -6, 6);
  add_unary(
      c, "gelu_tanh", [](const V& x) { return gelu(x[0], "tanh"); }, gelu_tanh_ref, -6, 6);
  add_unary(
      c, "silu", [](const V& x) { return silu(x[0]); },
      [](double a) { return a / (1 + std::exp(-a)); }, -8, 8);
  // Parameterised activations: random inputs rarely land within a finite-difference step of a
  // kink; tests/ops/test_activation_torch.cpp holds the kinks themselves against torch.
  add_unary(
      c, "leaky_relu", [](const V& x) { return leaky_relu(x[0]); },
      [](double a) { return a > 0 ? a : 0.01 * a; });
  add_unary(
      c, "leaky_relu_slope0.2", [](const V& x) { return leaky_relu(x[0], 0.2); },
      [](double a) { return a > 0 ? a : 0.2 * a; });
  add_unary(
      c, "elu", [](const V& x) { return elu(x[0]); },
      [](double a) { return a > 0 ? a : std::expm1(a); }, -5, 3);
  add_unary(
      c, "elu_alpha0.5", [](const V& x) { return elu(x[0], 0.5); },
      [](double a) { return a > 0 ? a : 0.5 * std::expm1(a); }, -5, 3);
  add_unary(
      c, "selu", [](const V& x) { return selu(x[0]); },
      [](double a) {
        const double alpha = 1.6732632423543772848170429916717;
        const double scale = 1.0507009873554804934193349852946;
        return scale * (a > 0 ? a : alpha * std::expm1(a));
      },
      -5, 3);
  add_unary(
      c, "celu_alpha2", [](const V& x) { return celu(x[0], 2.0); },
      [](double a) { return a > 0 ? a : 2.0 * std::expm1(a / 2.0); }, -5, 3);
  add_unary(
      c, "softplus", [](const V& x) { return softplus(x[0]); },
      [](double a) { return std::log1p(std::exp(a)); }, -8, 8);
  // beta * x past the threshold (x > 1) is x itself.
  add_unary(
      c, "softplus_beta2_threshold2", [](const V& x) { return softplus(x[0], 2.0, 2.0); },
      [](double a) { return 2 * a > 2 ? a : std::log1p(std::exp(2 * a)) / 2; });
  add_unary(
      c, "hardtanh", [](const V& x) { return hardtanh(x[0]); },
      [](double a) { return std::min(std::max(a, -1.0), 1.0); });
  add_unary(
      c, "hardtanh_-0.5_2", [](const V& x) { return hardtanh(x[0], -0.5, 2.0); },
      [](double a) { return std::min(std::max(a, -0.5), 2.0); });
  add_unary(
      c, "relu6", [](const V& x) { return relu6(x[0]); },
      [](double a) { return std::min(std::max(a, 0.0), 6.0); }, -3, 9);
  add_unary(
      c, "mish", [](const V& x) { return mish(x[0]); },
      [](double a) { return a * std::tanh(std::log1p(std::exp(a))); }, -6, 6);
  add_unary(
      c, "hardswish", [](const V& x) { return hardswish(x[0]); },
      [](double a) { return a * std::min(std::max(a + 3, 0.0), 6.0) / 6; }, -5, 5);
  add_unary(
      c, "hardsigmoid", [](const V& x) { return hardsigmoid(x[0]); },
      [](double a) { return std::min(std::max(a + 3, 0.0), 6.0) / 6; }, -5, 5);
  add_unary(
      c, "sin", [](const V& x) { return sin(x[0]); }, [](double a) { return std::sin(a); }, -6, 6);
  add_unary(
      c, "cos", [](const V& x) { return cos(x[0]); }, [](double a) { return std::cos(a); }, -6, 6);
  add_unary(
      c, "reciprocal", [](const V& x) { return reciprocal(x[0]); }, [](double a) { return 1 / a; },
      0.2, 5, true);
  add_unary(
      c, "log1p", [](const V& x) { return log1p(x[0]); }, [](double a) { return std::log1p(a); },
      -0.9, 20);
  add_unary(
      c, "log1p_near0", [](const V& x) { return log1p(x[0]); },
      [](double a) { return std::log1p(a); }, -1e-3, 1e-3);
  add_unary(
      c, "expm1", [](const V& x) { return expm1(x[0]); }, [](double a) { return std::expm1(a); },
      -8, 8);
  add_unary(
      c, "expm1_near0", [](const V& x) { return expm1(x[0]); },
      [](double a) { return std::expm1(a); }, -1e-3, 1e-3);
  add_unary(
      c, "erf", [](const V& x) { return erf(x[0]); }, [](double a) { return std::erf(a); }, -4, 4);
  add_piecewise_constant(
      c, "floor", [](const V& x) { return floor(x[0]); }, [](double a) { return std::floor(a); });
  add_piecewise_constant(
      c, "ceil", [](const V& x) { return ceil(x[0]); }, [](double a) { return std::ceil(a); });
  add_piecewise_constant(
      c, "round", [](const V& x) { return round(x[0]); },
      [](double a) { return std::nearbyint(a); });
  add_piecewise_constant(
      c, "trunc", [](const V& x) { return trunc(x[0]); }, [](double a) { return std::trunc(a); });
  add_piecewise_constant(
      c, "sign", [](const V& x) { return sign(x[0]); }, sign_ref);
  // The jumps and special values themselves (no derivative there; signed zeros are checked in
  // tests/ops/test_elementwise.cpp, which this comparison cannot see).
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  auto special = [&](const std::string& name, std::vector<double> v, OpFn run,
                     std::function<double(double)> ref) {
    OpCase k{
        name, {harness::V({static_cast<int64_t>(v.size())}, v)}, std::move(run), ref_unary(ref)};
    k.grad_check = false;
    c.push_back(k);
  };
  const std::vector<double> jumps = {0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.5,  -3.5,
                                     0.0, -0.0, 1.0, -1.0, 2.0, inf,  -inf, nan};
  special(
      "floor/jumps", jumps, [](const V& x) { return floor(x[0]); },
      [](double a) { return std::floor(a); });
  special(
      "ceil/jumps", jumps, [](const V& x) { return ceil(x[0]); },
      [](double a) { return std::ceil(a); });
  special(
      "round/half_to_even", jumps, [](const V& x) { return round(x[0]); },
      [](double a) { return std::nearbyint(a); });
  special(
      "trunc/jumps", jumps, [](const V& x) { return trunc(x[0]); },
      [](double a) { return std::trunc(a); });
  special(
      "sign/zeros_nan_inf", jumps, [](const V& x) { return sign(x[0]); }, sign_ref);
  special(
      "log1p/domain_edges", {-1.0, -2.0, -1.5, 1e-10, -1e-10, 0.0, inf, -inf, nan, 1e4},
      [](const V& x) { return log1p(x[0]); }, [](double a) { return std::log1p(a); });
  special(
      "expm1/tails", {1e-10, -1e-10, 0.0, inf, -inf, nan, -100.0, 10.0, -20.0},
      [](const V& x) { return expm1(x[0]); }, [](double a) { return std::expm1(a); });
  special(
      "erf/tails", {inf, -inf, nan, 0.0, 1e-10, 6.0, -6.0, 3.0, -3.0},
      [](const V& x) { return erf(x[0]); }, [](double a) { return std::erf(a); });
  add_unary(
      c, "clamp", [](const V& x) { return clamp(x[0], -0.5, 0.7); },
      [](double a) { return std::min(std::max(a, -0.5), 0.7); });
  add_unary(
      c, "clamp_min", [](const V& x) { return clamp(x[0], 0.25, std::nullopt); },
      [](double a) { return std::max(a, 0.25); });
  add_unary(
      c, "clamp_max", [](const V& x) { return clamp(x[0], std::nullopt, -0.25); },
      [](double a) { return std::min(a, -0.25); });
  add_unary(
      c, "clamp_min_gt_max", [](const V& x) { return clamp(x[0], 1.0, -1.0); },
      [](double) { return -1.0; });

  // Composite expressions as layers write them (operators chained, scalar on either side).
  c.push_back({"expr/x*sigmoid(x)+1",
               {F({6, 10})},
               [](const V& x) { return x[0] * sigmoid(x[0]) + 1; },
               ref_unary([](double a) { return a / (1 + std::exp(-a)) + 1; })});

  return c;
}

TEST(OpHarness, Elementwise) { run_cases(elementwise_cases()); }
TEST(OpHarnessCuda, Elementwise) { run_cases_on_cuda(elementwise_cases()); }

}  // namespace
}  // namespace fabric::harness
