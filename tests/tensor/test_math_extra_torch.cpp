// torch 1.13's bits for nn/math_extra.h (hypot, logaddexp, xlogy, erfc, lgamma, polygamma, ...),
// tensor/math_extra.h's compositions and tensor/bitwise.h: every op over the inputs
// tools/fixtures/make_math_extra_rows.py hashes (a sweep of float bit patterns over the whole
// range, evenly spaced values, the special values and each pair of them, integer patterns), laid
// out contiguous (vector blocks and tails), strided, broadcast and long, in each dtype, compared
// through FNV-1a hashes with torch's outputs (NaNs canonical); dtypes torch refuses must raise
// DTypeError. Then the gradients of y.sum() at the formulas' edge points and, in float64, the
// derivatives of those gradients (create_graph).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "nn/math_extra.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/fnv1a.h"

namespace fabric {
namespace {

struct MathExtraHash {
  const char* op;
  const char* dtype;
  const char* layout;
  uint64_t hash;
};
struct MathExtraGradRow {
  const char* op;
  const char* dtype;
  std::vector<double> a, b, ga, gb;
};
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
#include "tests/tensor/math_extra_torch_rows.h"

const std::vector<double> kSpecials = {0.0, -0.0, kInf, -kInf, kNaN, 1.0, -1.0,
                                       0.5, -0.5, 2.0,  -3.0,  10.0, 1e-3};

// ---- the fixture's inputs -----------------------------------------------------------------------
Tensor specials(DType dt) {
  return from_vector<double>(kSpecials, {static_cast<int64_t>(kSpecials.size())}).to(dt);
}

// +-v for every (2^exponent_bits) / 3000-th positive finite bit pattern, then the specials; the
// reduced dtypes convert the float32 sweep.
Tensor sweep(DType dt) {
  std::vector<double> v;
  if (dt == DType::float64) {
    const int64_t top = 0x7FF0000000000000;
    for (int64_t b = 0; b < top; b += top / 3000) {
      double d;
      std::memcpy(&d, &b, 8);
      v.push_back(d);
    }
  } else {
    const int64_t top = 0x7F800000;
    for (int64_t b = 0; b < top; b += top / 3000) {
      const auto u = static_cast<uint32_t>(b);
      float f;
      std::memcpy(&f, &u, 4);
      v.push_back(f);
    }
  }
  const size_t n = v.size();
  for (size_t i = 0; i < n; ++i) v.push_back(-v[i]);
  const DType base = dt == DType::float64 ? DType::float64 : DType::float32;
  const Tensor sweep = from_vector<double>(v, {static_cast<int64_t>(v.size())}).to(base).to(dt);
  return cat({sweep, specials(dt)});
}

Tensor spaced(double lo, double hi, DType dt) {
  constexpr int64_t n = 6000;
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i)
    v.push_back(lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(n - 1));
  return cat({from_vector<double>(v, {n}).to(dt), specials(dt)});
}

Tensor float_input(const std::string& kind, DType dt) {
  if (kind == "moderate") return spaced(-40.0, 40.0, dt);
  if (kind == "unit") return spaced(-0.25, 1.25, dt);
  return sweep(dt);
}

// (a, b): b[i] = a[(7919 i + 13) % n], then every pair of specials appended.
std::pair<Tensor, Tensor> with_second(const Tensor& a) {
  const int64_t n = a.numel();
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < n; ++i) perm.push_back((7919 * i + 13) % n);
  const Tensor b = index_select(a, 0, from_vector<int64_t>(perm, {n}));
  std::vector<double> ga, gb;
  const auto k = static_cast<int64_t>(kSpecials.size());
  for (int64_t i = 0; i < k * k; ++i) {
    ga.push_back(kSpecials[static_cast<size_t>(i / k)]);
    gb.push_back(kSpecials[static_cast<size_t>(i % k)]);
  }
  const Tensor sa = from_vector<double>(ga, {k * k}).to(a.dtype());
  const Tensor sb = from_vector<double>(gb, {k * k}).to(a.dtype());
  return {cat({a, sa}), cat({b, sb})};
}

Tensor int_input(DType dt, const std::string& role) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < 4000; ++i) {
    const int64_t u = (i * 2654435761LL + (role == "a" ? 0 : 97)) % (int64_t{1} << 32);
    int64_t x = 0;
    if (dt == DType::int64) x = (u - (int64_t{1} << 31)) * 65537 + i;
    if (dt == DType::int32) x = std::max(u - (int64_t{1} << 31), -(int64_t{1} << 31) + 1);
    if (dt == DType::int8) x = u % 256 - 128;
    if (dt == DType::uint8) x = u % 256;
    if (dt == DType::bool_) x = u % 2;
    // The fixture's most-negative pairs (MIN, MIN), (MIN, 6), (10, MIN) at 3000, 3003 and 3006.
    const bool is_wide = dt == DType::int32 || dt == DType::int64;
    if (is_wide && (role == "a" || role == "b") && (i == 3000 || i == 3003 || i == 3006)) {
      const int64_t lowest = dt == DType::int32 ? std::numeric_limits<int32_t>::min()
                                                : std::numeric_limits<int64_t>::min();
      if (role == "a") x = i == 3006 ? 10 : lowest;
      if (role == "b") x = i == 3003 ? 6 : lowest;
    }
    if (role == "shift") x = dt == DType::uint8 ? u % 72 : u % 80 - 8;
    if (role == "divisor" && x == 0) x = 1;
    v.push_back(x);
  }
  return from_vector<int64_t>(v, {4000}).to(dt);
}

// ---- hashing ------------------------------------------------------------------------------------
// FNV-1a of t's bytes, NaNs written as the canonical quiet NaN of the dtype.
uint64_t hash_of(const Tensor& t_in) {
  const Tensor t = t_in.contiguous();
  const DType dt = t.dtype();
  if (!is_floating(dt)) return testing::fnv1a(t);
  const Tensor mask = isnan(t);
  Tensor bits = t.clone();
  const auto* m = mask.data<bool>();
  auto* p = static_cast<unsigned char*>(bits.data_ptr());
  const int64_t sz = bits.element_size();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (!m[i]) continue;
    const uint64_t q = dt == DType::float64    ? 0x7FF8000000000000ull
                       : dt == DType::float32  ? 0x7FC00000ull
                       : dt == DType::bfloat16 ? 0x7FC0ull
                                               : 0x7E00ull;
    std::memcpy(p + i * sz, &q, static_cast<size_t>(sz));
  }
  return testing::fnv1a(bits);
}

DType dtype_of(const std::string& name) { return dtype_from_name(name); }

using Fn1 = std::function<Tensor(const Tensor&)>;
using Fn2 = std::function<Tensor(const Tensor&, const Tensor&)>;

const std::map<std::string, std::pair<std::string, Fn1>>& unary_ops() {
  static const std::map<std::string, std::pair<std::string, Fn1>> ops = {
      {"exp2", {"broad", [](const Tensor& x) { return exp2(x); }}},
      {"sinc", {"broad", [](const Tensor& x) { return sinc(x); }}},
      {"logit", {"unit", [](const Tensor& x) { return logit(x); }}},
      {"logit_eps", {"unit", [](const Tensor& x) { return logit(x, 0.25); }}},
      {"erfc", {"broad", [](const Tensor& x) { return erfc(x); }}},
      {"lgamma", {"broad", [](const Tensor& x) { return lgamma(x); }}},
      {"digamma", {"broad", [](const Tensor& x) { return digamma(x); }}},
      {"polygamma1", {"moderate", [](const Tensor& x) { return polygamma(1, x); }}},
      {"polygamma2", {"moderate", [](const Tensor& x) { return polygamma(2, x); }}},
      {"polygamma3", {"moderate", [](const Tensor& x) { return polygamma(3, x); }}},
      {"mvlgamma3", {"moderate", [](const Tensor& x) { return mvlgamma(x, 3); }}},
      {"i0", {"broad", [](const Tensor& x) { return i0(x); }}},
      {"special_i1", {"broad", [](const Tensor& x) { return special::i1(x); }}},
      {"deg2rad", {"broad", [](const Tensor& x) { return deg2rad(x); }}},
      {"rad2deg", {"broad", [](const Tensor& x) { return rad2deg(x); }}},
      {"sgn", {"broad", [](const Tensor& x) { return sgn(x); }}},
      {"frac", {"broad", [](const Tensor& x) { return frac(x); }}},
      {"square", {"broad", [](const Tensor& x) { return square(x); }}},
      {"signbit", {"broad", [](const Tensor& x) { return signbit(x); }}},
  };
  return ops;
}

const std::map<std::string, Fn2>& binary_ops() {
  static const std::map<std::string, Fn2> ops = {
      {"hypot", [](const Tensor& a, const Tensor& b) { return hypot(a, b); }},
      {"logaddexp", [](const Tensor& a, const Tensor& b) { return logaddexp(a, b); }},
      {"logaddexp2", [](const Tensor& a, const Tensor& b) { return logaddexp2(a, b); }},
      {"xlogy", [](const Tensor& a, const Tensor& b) { return xlogy(a, b); }},
      {"xlog1py", [](const Tensor& a, const Tensor& b) { return xlog1py(a, b); }},
      {"copysign", [](const Tensor& a, const Tensor& b) { return copysign(a, b); }},
      {"nextafter", [](const Tensor& a, const Tensor& b) { return nextafter(a, b); }},
      {"heaviside", [](const Tensor& a, const Tensor& b) { return heaviside(a, b); }},
      {"floor_divide", [](const Tensor& a, const Tensor& b) { return floor_divide(a, b); }},
      {"true_divide", [](const Tensor& a, const Tensor& b) { return true_divide(a, b); }},
      {"fmax", [](const Tensor& a, const Tensor& b) { return fmax(a, b); }},
      {"fmin", [](const Tensor& a, const Tensor& b) { return fmin(a, b); }},
      {"clamp_min", [](const Tensor& a, const Tensor& b) { return clamp_min(a, b); }},
      {"clamp_max", [](const Tensor& a, const Tensor& b) { return clamp_max(a, b); }},
  };
  return ops;
}

const std::map<std::string, Fn1>& scalar_ops() {
  static const std::map<std::string, Fn1> ops = {
      {"clamp_min_scalar", [](const Tensor& x) { return clamp_min(x, 0.5); }},
      {"clamp_max_scalar", [](const Tensor& x) { return clamp_max(x, -0.5); }},
      {"floor_divide_scalar", [](const Tensor& x) { return floor_divide(x, 2.5); }},
      {"copysign_scalar", [](const Tensor& x) { return copysign(x, -0.0); }},
      {"xlogy_scalar", [](const Tensor& x) { return xlogy(x, 3.0); }},
      {"xlogy_scalar_x", [](const Tensor& x) { return xlogy(2.0, x); }},
      {"xlog1py_scalar", [](const Tensor& x) { return xlog1py(x, 0.5); }},
  };
  return ops;
}

// integer binary ops: second operand's role, op
const std::map<std::string, std::pair<std::string, Fn2>>& integer_ops() {
  static const std::map<std::string, std::pair<std::string, Fn2>> ops = {
      {"bitwise_and", {"b", [](const Tensor& a, const Tensor& b) { return bitwise_and(a, b); }}},
      {"bitwise_or", {"b", [](const Tensor& a, const Tensor& b) { return bitwise_or(a, b); }}},
      {"bitwise_xor", {"b", [](const Tensor& a, const Tensor& b) { return bitwise_xor(a, b); }}},
      {"bitwise_left_shift",
       {"shift", [](const Tensor& a, const Tensor& b) { return bitwise_left_shift(a, b); }}},
      {"bitwise_right_shift",
       {"shift", [](const Tensor& a, const Tensor& b) { return bitwise_right_shift(a, b); }}},
      {"gcd", {"b", [](const Tensor& a, const Tensor& b) { return gcd(a, b); }}},
      {"lcm", {"b", [](const Tensor& a, const Tensor& b) { return lcm(a, b); }}},
      {"floor_divide_int",
       {"divisor", [](const Tensor& a, const Tensor& b) { return floor_divide(a, b); }}},
      {"heaviside_int", {"b", [](const Tensor& a, const Tensor& b) { return heaviside(a, b); }}},
  };
  return ops;
}

const std::map<std::string, Fn1>& integer_unary_ops() {
  static const std::map<std::string, Fn1> ops = {
      {"bitwise_not", [](const Tensor& x) { return bitwise_not(x); }},
      {"signbit_int", [](const Tensor& x) { return signbit(x); }},
      {"sgn_int", [](const Tensor& x) { return sgn(x); }},
      {"square_int", [](const Tensor& x) { return square(x); }},
      {"bitwise_and_scalar", [](const Tensor& x) { return bitwise_and(x, 5); }},
      {"bitwise_xor_scalar", [](const Tensor& x) { return bitwise_xor(x, -3); }},
      {"bitwise_left_shift_scalar", [](const Tensor& x) { return bitwise_left_shift(x, 3); }},
      {"bitwise_right_shift_scalar", [](const Tensor& x) { return bitwise_right_shift(x, 2); }},
      {"floor_divide_int_scalar", [](const Tensor& x) { return floor_divide(x, -3); }},
  };
  return ops;
}

std::vector<Tensor> unary_layout(const Tensor& x, const std::string& layout) {
  const int64_t n = x.numel();
  if (layout == "strided") return {x.slice(0, 0, n, 3)};
  if (layout == "bcast") return {x.narrow(0, 0, 20).reshape({20, 1}).expand({20, 37})};
  if (layout == "long") return {repeat(x, {17})};
  return {x};
}
std::vector<Tensor> binary_layout(const Tensor& a, const Tensor& b, const std::string& layout) {
  const int64_t n = a.numel();
  if (layout == "strided") return {a.slice(0, 0, n, 3), b.slice(0, 0, n, 3)};
  if (layout == "bcast") return {a.narrow(0, 0, 20).reshape({20, 1}), b.narrow(0, 0, 37)};
  if (layout == "long") return {repeat(a, {17}), repeat(b, {17})};
  return {a, b};
}

// Runs one fixture row: the op's hash must be torch's, or (hash 0) the op must refuse the dtype.
void check_row(const MathExtraHash& row) {
  SCOPED_TRACE(std::string(row.op) + " " + row.dtype + " " + row.layout);
  const std::string op = row.op, layout = row.layout;
  const DType dt = dtype_of(row.dtype);
  std::function<Tensor()> run;
  if (auto u = unary_ops().find(op); u != unary_ops().end()) {
    const std::vector<Tensor> args = unary_layout(float_input(u->second.first, dt), layout);
    run = [=] { return u->second.second(args[0]); };
  } else if (auto b = binary_ops().find(op); b != binary_ops().end()) {
    const auto [x, y] = with_second(sweep(dt));
    const std::vector<Tensor> args = binary_layout(x, y, layout);
    run = [=] { return b->second(args[0], args[1]); };
  } else if (auto s = scalar_ops().find(op); s != scalar_ops().end()) {
    const Tensor x = sweep(dt);
    run = [=] { return s->second(x); };
  } else if (auto i = integer_ops().find(op); i != integer_ops().end()) {
    const std::vector<Tensor> args =
        binary_layout(int_input(dt, "a"), int_input(dt, i->second.first), layout);
    run = [=] { return i->second.second(args[0], args[1]); };
  } else if (auto iu = integer_unary_ops().find(op); iu != integer_unary_ops().end()) {
    const Tensor x = int_input(dt, "a");
    run = [=] { return iu->second(x); };
  } else {
    FAIL() << "no op " << op << " in the test's tables";
  }
  if (row.hash == 0) {
    EXPECT_THROW(run(), DTypeError) << "torch's CPU kernel refuses this dtype";
    return;
  }
  EXPECT_EQ(hash_of(run()), row.hash);
}

TEST(MathExtraTorch, FloatOpsGiveTorchsBitsInEveryLayoutAndDtype) {
  int n = 0;
  for (const MathExtraHash& row : kMathExtraHashes) {
    if (!is_floating(dtype_of(row.dtype))) continue;
    check_row(row);
    ++n;
  }
  EXPECT_GT(n, 400);
}

TEST(MathExtraTorch, IntegerAndBoolOpsGiveTorchsResults) {
  int n = 0;
  for (const MathExtraHash& row : kMathExtraHashes) {
    if (is_floating(dtype_of(row.dtype))) continue;
    check_row(row);
    ++n;
  }
  EXPECT_GT(n, 100);
}

// float_power is pow in float64 (torch's definition): fabric's pow's bits, whatever the input
// dtypes.
TEST(MathExtraTorch, FloatPowerIsPowInFloat64) {
  for (DType dt : {DType::float64, DType::float32, DType::bfloat16, DType::float16}) {
    const auto [a, b] = with_second(sweep(dt));
    const Tensor a64 = a.to(DType::float64), b64 = b.to(DType::float64);
    EXPECT_EQ(hash_of(float_power(a, b)), hash_of(pow(a64, b64))) << dtype_name(dt);
    EXPECT_EQ(hash_of(float_power(a, 1.5)), hash_of(pow(a64, 1.5))) << dtype_name(dt);
    EXPECT_EQ(hash_of(float_power(2.0, b)), hash_of(pow(full_like(b64, 2.0), b64)))
        << dtype_name(dt);
    EXPECT_EQ(float_power(a, b).dtype(), DType::float64);
  }
}

// ---- gradients ----------------------------------------------------------------------------------
using GradFn = std::function<Tensor(const Tensor&, const Tensor&)>;
const std::map<std::string, GradFn>& grad_ops() {
  static const std::map<std::string, GradFn> ops = {
      {"exp2", [](const Tensor& a, const Tensor&) { return exp2(a); }},
      {"sinc", [](const Tensor& a, const Tensor&) { return sinc(a); }},
      {"logit", [](const Tensor& a, const Tensor&) { return logit(a); }},
      {"logit_eps", [](const Tensor& a, const Tensor&) { return logit(a, 0.25); }},
      {"erfc", [](const Tensor& a, const Tensor&) { return erfc(a); }},
      {"lgamma", [](const Tensor& a, const Tensor&) { return lgamma(a); }},
      {"digamma", [](const Tensor& a, const Tensor&) { return digamma(a); }},
      {"polygamma2", [](const Tensor& a, const Tensor&) { return polygamma(2, a); }},
      {"mvlgamma2", [](const Tensor& a, const Tensor&) { return mvlgamma(a, 2); }},
      {"i0", [](const Tensor& a, const Tensor&) { return i0(a); }},
      {"special_i1", [](const Tensor& a, const Tensor&) { return special::i1(a); }},
      {"frac", [](const Tensor& a, const Tensor&) { return frac(a); }},
      {"deg2rad", [](const Tensor& a, const Tensor&) { return deg2rad(a); }},
      {"square", [](const Tensor& a, const Tensor&) { return square(a); }},
      {"hypot", [](const Tensor& a, const Tensor& b) { return hypot(a, b); }},
      {"logaddexp", [](const Tensor& a, const Tensor& b) { return logaddexp(a, b); }},
      {"logaddexp2", [](const Tensor& a, const Tensor& b) { return logaddexp2(a, b); }},
      {"xlogy", [](const Tensor& a, const Tensor& b) { return xlogy(a, b); }},
      {"xlog1py", [](const Tensor& a, const Tensor& b) { return xlog1py(a, b); }},
      {"copysign", [](const Tensor& a, const Tensor& b) { return copysign(a, b); }},
      {"fmax", [](const Tensor& a, const Tensor& b) { return fmax(a, b); }},
      {"fmin", [](const Tensor& a, const Tensor& b) { return fmin(a, b); }},
      {"clamp_min", [](const Tensor& a, const Tensor& b) { return clamp_min(a, b); }},
      {"clamp_max", [](const Tensor& a, const Tensor& b) { return clamp_max(a, b); }},
      {"float_power", [](const Tensor& a, const Tensor& b) { return float_power(a, b); }},
  };
  return ops;
}

// Equal, both NaN, or within `rel` of torch's value (plus `abs_tol`, for values that are rounding
// noise around 0 in torch's result).
void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rel,
                  const char* what, double abs_tol = 0) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << "[" << i << "] = " << got[i] << ", torch NaN";
      continue;
    }
    if (got[i] == want[i]) continue;
    EXPECT_LE(std::abs(got[i] - want[i]), rel * std::abs(want[i]) + abs_tol)
        << what << "[" << i << "] = " << got[i] << ", torch " << want[i];
  }
}

bool is_second_order(const MathExtraGradRow& row) {
  return std::string(row.dtype) == "float64_2nd";
}

TEST(MathExtraTorch, GradientsAreTorchsAtTheFormulasEdges) {
  int n = 0;
  for (const MathExtraGradRow& row : kMathExtraGradRows) {
    if (is_second_order(row)) continue;
    ++n;
    SCOPED_TRACE(std::string(row.op) + " " + row.dtype);
    const DType dt = dtype_of(row.dtype);
    const auto n = static_cast<int64_t>(row.a.size());
    Tensor a = from_vector<double>(row.a, {n}).to(dt).set_requires_grad(true);
    Tensor b =
        row.b.empty() ? Tensor() : from_vector<double>(row.b, {n}).to(dt).set_requires_grad(true);
    sum(grad_ops().at(row.op)(a, b)).backward();
    const double rel = dt == DType::float64 ? 1e-13 : 1e-6;
    expect_close(a.grad().to(DType::float64).to_vector<double>(), row.ga, rel, "grad a");
    if (b.defined())
      expect_close(b.grad().to(DType::float64).to_vector<double>(), row.gb, rel, "grad b");
  }
  EXPECT_EQ(n, 2 * static_cast<int>(grad_ops().size()));
}

// The gradients taken with create_graph differentiate again to torch's second derivatives (the
// rows of the ops whose torch gradient has a history).
TEST(MathExtraTorch, SecondDerivativesAreTorchs) {
  int n = 0;
  for (const MathExtraGradRow& row : kMathExtraGradRows) {
    if (!is_second_order(row)) continue;
    ++n;
    SCOPED_TRACE(row.op);
    const auto len = static_cast<int64_t>(row.a.size());
    Tensor a = from_vector<double>(row.a, {len}).set_requires_grad(true);
    Tensor b = row.b.empty() ? Tensor() : from_vector<double>(row.b, {len}).set_requires_grad(true);
    const Tensor y = sum(grad_ops().at(row.op)(a, b));
    if (b.defined()) {
      const std::vector<Tensor> g = grad({y}, {a, b}, {}, std::nullopt, /*create_graph=*/true);
      add(sum(g[0]), sum(g[1])).backward();
    } else {
      sum(grad({y}, {a}, {}, std::nullopt, /*create_graph=*/true)[0]).backward();
    }
    const auto grad_or_zeros = [&](const Tensor& t) {
      return t.grad().defined() ? t.grad().to_vector<double>() : std::vector<double>(len, 0.0);
    };
    expect_close(grad_or_zeros(a), row.ga, 1e-11, "d/da", 1e-15);
    if (b.defined()) expect_close(grad_or_zeros(b), row.gb, 1e-11, "d/db", 1e-15);
  }
  EXPECT_GE(n, 15);
}

}  // namespace
}  // namespace fabric
