// Harness cases for the elementwise math family and the products: the trigonometric/hyperbolic/
// log ops and erfinv (domains away from their singularities), nan_to_num, the masks, atan2,
// fmod, remainder, logical_xor, prod, cumprod, all and any, each against a naive float64
// reference with finite-difference gradients. torch's own values at the special points are in
// test_math_torch.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using V = std::vector<Tensor>;
const std::vector<DType> kInt = {DType::int64};    // integer inputs: the case dtype is moot
const std::vector<DType> kF32 = {DType::float32};  // integer inputs with a float32 result
const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

const std::vector<Shape> kShapes = {{7, 9}, {2, 3, 17}, {0, 4}, {1}, {}, {40, 33}};

// erfinv(y) by bisection on erf in long double: an independent reference, not the kernel's
// Newton steps.
double erfinv_ref(double y) {
  if (std::isnan(y)) return y;
  if (std::abs(y) >= 1) return std::abs(y) == 1 ? std::copysign(kInf, y) : kNaN;
  long double lo = -6, hi = 6;
  for (int i = 0; i < 200; ++i) {
    const long double mid = (lo + hi) / 2;
    (std::erf(mid) < y ? lo : hi) = mid;
  }
  return static_cast<double>((lo + hi) / 2);
}

// Python's %: the sign of the divisor.
double remainder_ref(double a, double b) {
  const double r = std::fmod(a, b);
  return r != 0 && ((r < 0) != (b < 0)) ? r + b : r;
}

// Products along dim (all elements when dim is unset), naive.
RefTensor ref_prod(const RefTensor& in, std::optional<int64_t> dim, bool keepdim, bool scan) {
  const int64_t nd = static_cast<int64_t>(in.shape.size());
  if (!dim) {
    double p = 1;
    for (double x : in.v) p *= x;
    return {keepdim ? Shape(static_cast<size_t>(nd), 1) : Shape{}, {p}};
  }
  const int64_t d = nd == 0 ? 0 : (*dim + nd) % nd;
  const int64_t len = nd == 0 ? 1 : in.shape[d];
  int64_t inner = 1, outer = 1;
  for (int64_t i = d + 1; i < nd; ++i) inner *= in.shape[i];
  for (int64_t i = 0; i < d; ++i) outer *= in.shape[i];
  RefTensor out = in;
  if (!scan) {
    out.shape.clear();
    for (int64_t i = 0; i < nd; ++i)
      if (i != d || keepdim) out.shape.push_back(i == d ? 1 : in.shape[i]);
    out.v.assign(static_cast<size_t>(outer * inner), 1.0);
  }
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      double p = 1;
      for (int64_t l = 0; l < len; ++l) {
        p *= in.v[(o * len + l) * inner + j];
        if (scan) out.v[(o * len + l) * inner + j] = p;
      }
      if (!scan) out.v[o * inner + j] = p;
    }
  return out;
}

// Every element of each reduced group truthy (all) or some (any); dims empty = all.
RefTensor ref_all_any(const RefTensor& in, const std::vector<int64_t>& dims, bool keepdim,
                      bool is_all) {
  const int64_t nd = static_cast<int64_t>(in.shape.size());
  std::vector<bool> red(static_cast<size_t>(nd), dims.empty());
  for (int64_t d : dims) red[(d + nd) % nd] = true;
  Shape out_shape;
  for (int64_t i = 0; i < nd; ++i)
    if (!red[i] || keepdim) out_shape.push_back(red[i] ? 1 : in.shape[i]);
  RefTensor out{out_shape,
                std::vector<double>(static_cast<size_t>(numel_of(out_shape)), is_all ? 1.0 : 0.0)};
  std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
  for (int64_t i = 0; i < in.numel(); ++i) {
    int64_t o = 0;
    for (int64_t d = 0; d < nd; ++d)
      if (!red[d]) o = o * in.shape[d] + idx[d];
    const bool truthy = in.v[i] != 0;  // NaN is truthy
    if (is_all && !truthy) out.v[o] = 0;
    if (!is_all && truthy) out.v[o] = 1;
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < in.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

std::vector<OpCase> math_cases() {
  std::vector<OpCase> c;
  auto unary = [&](const std::string& name, Tensor (*op)(const Tensor&), double (*ref)(double),
                   double lo, double hi) {
    for (const Shape& s : kShapes)
      c.push_back({name + "/" + shape_str(s),
                   {F(s, lo, hi)},
                   [op](const V& x) { return op(x[0]); },
                   ref_unary(ref)});
  };
  unary(
      "tan", tan, [](double a) { return std::tan(a); }, -1.2, 1.2);
  unary(
      "asin", asin, [](double a) { return std::asin(a); }, -0.9, 0.9);
  unary(
      "acos", acos, [](double a) { return std::acos(a); }, -0.9, 0.9);
  unary(
      "atan", atan, [](double a) { return std::atan(a); }, -4, 4);
  unary(
      "sinh", sinh, [](double a) { return std::sinh(a); }, -4, 4);
  unary(
      "cosh", cosh, [](double a) { return std::cosh(a); }, -4, 4);
  unary(
      "asinh", asinh, [](double a) { return std::asinh(a); }, -4, 4);
  unary(
      "acosh", acosh, [](double a) { return std::acosh(a); }, 1.2, 5);
  unary(
      "atanh", atanh, [](double a) { return std::atanh(a); }, -0.9, 0.9);
  unary(
      "log2", log2, [](double a) { return std::log2(a); }, 0.1, 5);
  unary(
      "log10", log10, [](double a) { return std::log10(a); }, 0.1, 5);
  unary("erfinv", erfinv, erfinv_ref, -0.9, 0.9);
  unary(
      "nan_to_num", [](const Tensor& a) { return nan_to_num(a); }, [](double a) { return a; }, -3,
      3);

  // The special values (no derivative checked there): the domain edges, and nan_to_num's
  // replacements with the dtype's own largest value (float16's 65504, not float32's).
  auto special = [&](const std::string& name, std::vector<double> v, OpFn run,
                     std::function<double(double)> ref, std::vector<DType> dtypes = {}) {
    OpCase k{
        name, {harness::V({static_cast<int64_t>(v.size())}, v)}, std::move(run), ref_unary(ref)};
    k.grad_check = false;
    if (!dtypes.empty()) k.dtypes = dtypes;
    c.push_back(k);
  };
  special(
      "asin/domain_edges", {-1.5, -1.0, 1.0, 1.5, kNaN, kInf},
      [](const V& x) { return asin(x[0]); }, [](double a) { return std::asin(a); });
  special(
      "acos/domain_edges", {-1.5, -1.0, 1.0, 1.5, kNaN}, [](const V& x) { return acos(x[0]); },
      [](double a) { return std::acos(a); });
  special(
      "atanh/domain_edges", {-1.5, -1.0, 1.0, 1.5, -0.0, kNaN},
      [](const V& x) { return atanh(x[0]); }, [](double a) { return std::atanh(a); });
  special(
      "acosh/domain_edges", {0.5, 1.0, -1.0, kInf, kNaN}, [](const V& x) { return acosh(x[0]); },
      [](double a) { return std::acosh(a); });
  special(
      "log2/domain_edges", {-1.0, 0.0, -0.0, kInf, kNaN, 1024.0},
      [](const V& x) { return log2(x[0]); }, [](double a) { return std::log2(a); });
  special(
      "log10/domain_edges", {-1.0, 0.0, kInf, kNaN, 1000.0}, [](const V& x) { return log10(x[0]); },
      [](double a) { return std::log10(a); });
  special(
      "erfinv/domain_edges", {-1.0, 1.0, 1.5, -1.5, 0.0, kNaN},
      [](const V& x) { return erfinv(x[0]); }, erfinv_ref);
  special(
      "sinh_cosh/overflow", {-1000.0, 1000.0, kInf, -kInf},
      [](const V& x) { return sinh(x[0]) + cosh(x[0]); },
      [](double a) { return std::sinh(a) + std::cosh(a); });
  special(
      "nan_to_num/custom", {kNaN, kInf, -kInf, 1.5, -0.5},
      [](const V& x) { return nan_to_num(x[0], 0.25, 3.0, -4.0); },
      [](double a) {
        return std::isnan(a) ? 0.25 : a == kInf ? 3.0 : a == -kInf ? -4.0 : a;
      });
  for (auto [dt, big] :
       std::vector<std::pair<DType, double>>{{DType::float64, std::numeric_limits<double>::max()},
                                             {DType::float32, std::numeric_limits<float>::max()},
                                             {DType::float16, 65504.0},
                                             {DType::bfloat16, 3.3895313892515355e38}}) {
    special(
        "nan_to_num/dtype_max", {kNaN, kInf, -kInf, 2.0},
        [](const V& x) { return nan_to_num(x[0]); },
        [big](double a) {
          return std::isnan(a) ? 0.0 : a == kInf ? big : a == -kInf ? -big : a;
        },
        {dt});
  }

  // Integers and bool promote to the default float dtype (torch: float32).
  auto int_to_float = [&](const std::string& name, InputSpec in, Tensor (*op)(const Tensor&),
                          double (*ref)(double)) {
    OpCase k{name, {std::move(in)}, [op](const V& x) { return op(x[0]); }, ref_unary(ref)};
    k.dtypes = kF32;
    c.push_back(k);
  };
  int_to_float("atan/int8", I({3, 5}, -9, 9, DType::int8), atan,
               [](double a) { return std::atan(a); });
  int_to_float("acosh/int64", I({3, 5}, 1, 9), acosh, [](double a) { return std::acosh(a); });
  int_to_float("log10/uint8", I({3, 5}, 1, 200, DType::uint8), log10,
               [](double a) { return std::log10(a); });
  int_to_float("log2/int32", I({3, 5}, 1, 100, DType::int32), log2,
               [](double a) { return std::log2(a); });
  int_to_float("asinh/bool", B({3, 5}), asinh, [](double a) { return std::asinh(a); });
  int_to_float("erfinv/int64", I({3, 5}, -1, 2), erfinv, erfinv_ref);

  // ---- masks and logical_xor (bool results, exact) -------------------------------------------
  auto exact = [&](const std::string& name, std::vector<InputSpec> in, OpFn run, RefFn ref,
                   std::vector<DType> dtypes = {}) {
    OpCase k{name, std::move(in), std::move(run), std::move(ref)};
    k.exact = true;
    k.grad_check = false;
    if (!dtypes.empty()) k.dtypes = dtypes;
    c.push_back(k);
  };
  const std::vector<double> specials = {kNaN, kInf, -kInf, 0.0, -0.0, 1.5, -2.0, 1e30};
  const InputSpec sv = harness::V({static_cast<int64_t>(specials.size())}, specials);
  exact(
      "isnan", {sv}, [](const V& x) { return isnan(x[0]); },
      ref_unary([](double a) { return std::isnan(a) ? 1.0 : 0.0; }));
  exact(
      "isinf", {sv}, [](const V& x) { return isinf(x[0]); },
      ref_unary([](double a) { return std::isinf(a) ? 1.0 : 0.0; }));
  exact(
      "isfinite", {sv}, [](const V& x) { return isfinite(x[0]); },
      ref_unary([](double a) { return std::isfinite(a) ? 1.0 : 0.0; }));
  exact(
      "isnan/int64", {I({3, 4}, -5, 5)}, [](const V& x) { return isnan(x[0]); },
      ref_unary([](double) { return 0.0; }), kInt);
  exact(
      "isinf/int32", {I({3, 4}, -5, 5, DType::int32)}, [](const V& x) { return isinf(x[0]); },
      ref_unary([](double) { return 0.0; }), kInt);
  exact(
      "isfinite/bool", {B({3, 4})}, [](const V& x) { return isfinite(x[0]); },
      ref_unary([](double) { return 1.0; }), kInt);
  exact(
      "nan_to_num/int64", {I({3, 4}, -5, 5)}, [](const V& x) { return nan_to_num(x[0]); },
      ref_unary([](double a) { return a; }), kInt);
  auto xor_ref = ref_binary([](double a, double b) { return (a != 0) != (b != 0) ? 1.0 : 0.0; });
  exact(
      "logical_xor/bool", {B({4, 5}), B({5})}, [](const V& x) { return logical_xor(x[0], x[1]); },
      xor_ref, kInt);
  exact(
      "logical_xor/int_float", {I({3, 4}, -1, 2), harness::V({4}, {0.0, kNaN, -0.0, 2.5})},
      [](const V& x) { return logical_xor(x[0], x[1]); }, xor_ref);

  // ---- atan2, fmod, remainder ---------------------------------------------------------------
  // Divisors kept away from 0 (b in +-[0.3, 2]); with a in [-2, 2] a jump of fmod/remainder is
  // rarely within a finite-difference step.
  const std::vector<std::pair<Shape, Shape>> pairs = {{{3, 4}, {3, 4}}, {{4, 1, 3}, {5, 3}},
                                                      {{2, 3, 4}, {4}}, {{0, 3}, {1, 3}},
                                                      {{}, {2, 3}},     {{3, 2}, {}}};
  for (const auto& [sa, sb] : pairs) {
    const std::string s = shape_str(sa) + "x" + shape_str(sb);
    c.push_back({"atan2/" + s,
                 {F(sa), F(sb)},
                 [](const V& x) { return atan2(x[0], x[1]); },
                 ref_binary([](double a, double b) { return std::atan2(a, b); })});
    c.push_back({"fmod/" + s,
                 {F(sa), P(sb, 0.3, 2)},
                 [](const V& x) { return fmod(x[0], x[1]); },
                 ref_binary([](double a, double b) { return std::fmod(a, b); })});
    c.push_back({"fmod/neg_divisor/" + s,
                 {F(sa), P(sb, 0.3, 2)},
                 [](const V& x) { return fmod(x[0], -x[1]); },
                 ref_binary([](double a, double b) { return std::fmod(a, -b); })});
    c.push_back({"remainder/" + s,
                 {F(sa), P(sb, 0.3, 2)},
                 [](const V& x) { return remainder(x[0], x[1]); },
                 ref_binary([](double a, double b) { return remainder_ref(a, b); })});
    c.push_back({"remainder/neg_divisor/" + s,
                 {F(sa), P(sb, 0.3, 2)},
                 [](const V& x) { return remainder(x[0], -x[1]); },
                 ref_binary([](double a, double b) { return remainder_ref(a, -b); })});
  }
  c.push_back({"fmod/scalar",
               {F({4, 5}, -5, 5)},
               [](const V& x) { return fmod(x[0], 1.5); },
               ref_unary([](double a) { return std::fmod(a, 1.5); })});
  c.push_back({"remainder/scalar_neg",
               {F({4, 5}, -5, 5)},
               [](const V& x) { return remainder(x[0], -1.5); },
               ref_unary([](double a) { return remainder_ref(a, -1.5); })});
  OpCase atan2_int{"atan2/int64",
                   {I({3, 4}, -5, 5), I({4}, -3, 3)},
                   [](const V& x) { return atan2(x[0], x[1]); },
                   ref_binary([](double a, double b) { return std::atan2(a, b); })};
  atan2_int.dtypes = kF32;
  c.push_back(atan2_int);
  for (DType dt : {DType::int64, DType::int32, DType::int8}) {
    const std::string d(dtype_name(dt));
    exact(
        "fmod/" + d, {I({4, 6}, -50, 50, dt), I({6}, 1, 9, dt)},
        [](const V& x) { return fmod(x[0], x[1]); },
        ref_binary([](double a, double b) { return std::fmod(a, b); }), kInt);
    exact(
        "fmod/neg_divisor/" + d, {I({4, 6}, -50, 50, dt), I({6}, 1, 9, dt)},
        [](const V& x) { return fmod(x[0], -x[1]); },
        ref_binary([](double a, double b) { return std::fmod(a, -b); }), kInt);
    exact(
        "remainder/" + d, {I({4, 6}, -50, 50, dt), I({6}, 1, 9, dt)},
        [](const V& x) { return remainder(x[0], x[1]); },
        ref_binary([](double a, double b) { return remainder_ref(a, b); }), kInt);
    exact(
        "remainder/neg_divisor/" + d, {I({4, 6}, -50, 50, dt), I({6}, 1, 9, dt)},
        [](const V& x) { return remainder(x[0], -x[1]); },
        ref_binary([](double a, double b) { return remainder_ref(a, -b); }), kInt);
  }
  exact(
      "remainder/uint8_scalar", {I({4, 6}, 0, 250, DType::uint8)},
      [](const V& x) { return remainder(x[0], 7); },
      ref_unary([](double a) { return std::fmod(a, 7); }), kInt);

  // ---- prod, cumprod, all, any --------------------------------------------------------------
  // Values in +-[0.5, 1.5] keep long products in range; the rows with zeros check the gradient
  // where torch's formula changes (one zero: the others' product there; two: zero).
  struct P_ {
    std::string name;
    InputSpec in;
    std::optional<int64_t> dim;
    bool keepdim;
  };
  const std::vector<P_> prods = {
      {"all", F({3, 4}, 0.5, 1.5), std::nullopt, false},
      {"all_keepdim", F({2, 3, 2}, -1.5, 1.5), std::nullopt, true},
      {"dim1", F({3, 5}, -1.5, 1.5), 1, false},
      {"dim0_keepdim", F({4, 3}, -1.5, 1.5), 0, true},
      {"mid", F({2, 5, 3}, 0.5, 1.5), 1, false},
      {"neg_dim", F({2, 3, 4}, 0.5, 1.5), -1, false},
      {"size1", F({3, 1}), 1, false},
      {"empty", F({0, 5}), 1, false},
      {"empty_reduced", F({3, 0}), 1, false},
      {"scalar", F({}), std::nullopt, false},
      {"scalar_dim", F({}), 0, false},
      {"long", F({2, 300}, 0.9, 1.1), 1, false},
      {"one_zero", harness::V({2, 3}, {1.5, 0.0, -2.0, 0.5, 1.0, 2.0}), 1, false},
      {"two_zeros", harness::V({4}, {0.0, 1.5, 0.0, 2.0}), std::nullopt, false},
      {"zeros_cols", harness::V({3, 2}, {0.0, 0.0, 1.5, 0.0, -2.0, 3.0}), 0, false},
  };
  for (const P_& p : prods) {
    OpCase k{
        "prod/" + p.name,
        {p.in},
        [p](const V& x) { return prod(x[0], p.dim, p.keepdim); },
        [p](const std::vector<RefTensor>& r) { return ref_prod(r[0], p.dim, p.keepdim, false); }};
    if (p.name == "long") k.tol_scale = 4;
    c.push_back(k);
  }
  const std::vector<P_> scans = {
      {"last", F({3, 5}, -1.5, 1.5), 1, false},
      {"first", F({4, 6}, -1.5, 1.5), 0, false},
      {"mid", F({2, 5, 3}, 0.5, 1.5), 1, false},
      {"neg", F({2, 3, 4}, 0.5, 1.5), -1, false},
      {"empty", F({0, 5}), 1, false},
      {"scalar", F({}), 0, false},
      {"long", F({2, 300}, 0.9, 1.1), 1, false},
      {"zeros", harness::V({2, 5}, {2.0, 0.0, 1.5, 0.0, 3.0, 0.0, 1.5, -2.0, 0.5, 0.0}), 1, false},
      {"zeros_dim0", harness::V({3, 2}, {0.0, 1.5, 2.0, 0.0, -1.0, 0.0}), 0, false},
  };
  for (const P_& p : scans) {
    OpCase k{"cumprod/" + p.name,
             {p.in},
             [p](const V& x) { return cumprod(x[0], *p.dim); },
             [p](const std::vector<RefTensor>& r) { return ref_prod(r[0], p.dim, false, true); }};
    if (p.name == "long") k.tol_scale = 4;
    c.push_back(k);
  }
  exact(
      "prod/int32_to_int64", {I({3, 4}, -3, 4, DType::int32)},
      [](const V& x) { return prod(x[0], 1); },
      [](const std::vector<RefTensor>& r) { return ref_prod(r[0], 1, false, false); }, kInt);
  exact(
      "prod/bool", {B({3, 4})}, [](const V& x) { return prod(x[0]); },
      [](const std::vector<RefTensor>& r) { return ref_prod(r[0], std::nullopt, false, false); },
      kInt);
  exact(
      "cumprod/int8_to_int64", {I({3, 4}, -3, 4, DType::int8)},
      [](const V& x) { return cumprod(x[0], 1); },
      [](const std::vector<RefTensor>& r) { return ref_prod(r[0], 1, false, true); }, kInt);
  c.push_back({"prod/dtype_f64",
               {F({3, 4})},
               [](const V& x) { return prod(x[0], 0, false, DType::float64); },
               [](const std::vector<RefTensor>& r) { return ref_prod(r[0], 0, false, false); }});
  c.push_back({"cumprod/dtype_f64",
               {F({3, 4})},
               [](const V& x) { return cumprod(x[0], 1, DType::float64); },
               [](const std::vector<RefTensor>& r) { return ref_prod(r[0], 1, false, true); }});

  struct A_ {
    std::string name;
    InputSpec in;
    std::vector<int64_t> dims;
    bool keepdim;
  };
  const std::vector<A_> alls = {
      {"bool", B({4, 5}), {}, false},
      {"bool_dim1", B({4, 3}), {1}, false},
      {"int_dims", I({3, 2, 4}, 0, 3), {0, 2}, true},
      {"float_nan_zeros",
       harness::V({2, 4}, {kNaN, 1.0, 0.0, -0.0, 2.0, kInf, 0.5, -3.0}),
       {1},
       false},
      {"empty", F({0, 3}), {0}, false},
      {"empty_all", F({0}), {}, false},
      {"scalar", harness::V({}, {0.0}), {}, false},
  };
  for (const A_& a : alls) {
    for (bool is_all : {true, false}) {
      exact(
          std::string(is_all ? "all/" : "any/") + a.name, {a.in},
          [a, is_all](const V& x) {
            return is_all ? all(x[0], a.dims, a.keepdim) : any(x[0], a.dims, a.keepdim);
          },
          [a, is_all](const std::vector<RefTensor>& r) {
            return ref_all_any(r[0], a.dims, a.keepdim, is_all);
          },
          a.in.kind == InputSpec::Kind::floating ? std::vector<DType>{} : kInt);
    }
  }
  return c;
}

TEST(OpHarness, Math) { run_cases(math_cases()); }
TEST(OpHarnessCuda, Math) { run_cases_on_cuda(math_cases()); }

}  // namespace
}  // namespace fabric::harness
