// torch 1.13's float64 exp, log, log2, log10, log1p, expm1, tanh, sinh, cosh, sin, cos, tan, asin,
// acos, atan, erf, sigmoid and silu compute with SLEEF (Sleef_<op>d4_u10, AVX2): fabric's
// transcriptions (kernels/cpu/vec_sleef_f64_*.h) must give torch's bits through the ops, for
// contiguous, strided, interleaved, 2-D, stride-0 and short inputs (the vml ops send every element
// through SLEEF; sinh, cosh, sigmoid and silu whole blocks of 8 of a contiguous row, libm the
// rest). The hashes come from tools/fixtures/sleef_f64_torch_hashes.py (sleef_f64_torch_rows.h),
// whose header comment defines the inputs rebuilt here. (The transcriptions were also checked
// against Debian's libsleef 3.5.1 lane by lane on 10^8 inputs each, AVX-512 and AVX2 builds;
// nothing here needs libsleef.)
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/fnv1a.h"
#include "tests/kernels/sleef_f64_torch_rows.h"

namespace fabric {
namespace {

using testing::fnv1a;
using testing::kFnv1aStart;
using testing::kSleefF64TorchRows;
using testing::SleefF64TorchRow;

// A: k * 0xFFDFFFFFFFE9 as bits for k < 32768, then the negatives.
std::vector<double> sweep() {
  std::vector<double> v;
  for (uint64_t k = 0; k < 32768; ++k) v.push_back(std::bit_cast<double>(k * 0xFFDFFFFFFFE9ull));
  for (size_t i = 0; i < 32768; ++i) v.push_back(-v[i]);
  return v;
}
// B, C: (u - 2^52) * (r / 2^52), u = ((i + 1 + off) * 0x9E3779B97F4A7C15 mod 2^64) >> 11.
std::vector<double> weyl(uint64_t off, double r) {
  std::vector<double> v;
  for (uint64_t i = 0; i < 65536; ++i) {
    const uint64_t u = ((i + 1 + off) * 0x9E3779B97F4A7C15ull) >> 11;
    v.push_back(static_cast<double>(static_cast<int64_t>(u) - (int64_t{1} << 52)) *
                (r / 4503599627370496.0));
  }
  return v;
}

struct Inputs {
  Tensor x, xm, specials;  // A ++ B ++ C; A, B, C interleaved
};
const Inputs& inputs() {
  static const Inputs in = [] {
    const std::vector<double> a = sweep(), b = weyl(0, 40.0), c = weyl(65536, 1.25);
    std::vector<double> x = a, xm;
    x.insert(x.end(), b.begin(), b.end());
    x.insert(x.end(), c.begin(), c.end());
    for (size_t i = 0; i < a.size(); ++i) xm.insert(xm.end(), {a[i], b[i], c[i]});
    std::vector<double> sp;
    for (uint64_t bits : testing::kSleefF64Specials) sp.push_back(std::bit_cast<double>(bits));
    const auto n = static_cast<int64_t>(x.size());
    return Inputs{from_vector<double>(x, {n}), from_vector<double>(xm, {n}),
                  from_vector<double>(sp, {static_cast<int64_t>(sp.size())})};
  }();
  return in;
}

std::function<Tensor(const Tensor&)> op_named(const std::string& name) {
  using F = Tensor (*)(const Tensor&);
  static const std::vector<std::pair<std::string, F>> ops = {
      {"exp", exp},     {"log", log},         {"log2", log2}, {"log10", log10}, {"log1p", log1p},
      {"expm1", expm1}, {"tanh", tanh},       {"sinh", sinh}, {"cosh", cosh},   {"sin", sin},
      {"cos", cos},     {"tan", tan},         {"asin", asin}, {"acos", acos},   {"atan", atan},
      {"erf", erf},     {"sigmoid", sigmoid}, {"silu", silu}};
  for (const auto& [n, f] : ops)
    if (n == name) return f;
  ADD_FAILURE() << "no op " << name;
  return [](const Tensor& t) { return t; };
}

class VecSleefF64 : public ::testing::TestWithParam<size_t> {};

TEST_P(VecSleefF64, GivesTorchsBits) {
  const SleefF64TorchRow& e = kSleefF64TorchRows[GetParam()];
  SCOPED_TRACE(e.op);
  const auto f = op_named(e.op);
  const Inputs& in = inputs();
  const int64_t n = in.x.numel();
  ASSERT_EQ(n, 196608);
  EXPECT_EQ(fnv1a(f(in.x)), e.full);
  EXPECT_EQ(fnv1a(f(in.x.slice(0, 0, n, 3))), e.strided);
  EXPECT_EQ(fnv1a(f(in.xm)), e.mixed);
  EXPECT_EQ(fnv1a(f(in.x.view({384, 512}).slice(1, 0, 300))), e.rows);
  const Tensor v = from_vector<double>({e.broadcast_value}, {1}).expand({40});
  EXPECT_EQ(fnv1a(f(v)), e.broadcast);
  uint64_t h = kFnv1aStart;
  for (int64_t k = 1; k <= 40; ++k) h = fnv1a(f(in.xm.narrow(0, 0, k).contiguous()), h);
  EXPECT_EQ(h, e.tails);
  EXPECT_EQ(fnv1a(f(in.specials)), e.specials);
}

INSTANTIATE_TEST_SUITE_P(Ops, VecSleefF64,
                         ::testing::Range<size_t>(0, std::size(kSleefF64TorchRows)),
                         [](const ::testing::TestParamInfo<size_t>& i) {
                           return std::string(kSleefF64TorchRows[i.param].op);
                         });

// The u10 functions' own accuracy, against long double libm (64-bit significand: its error is
// negligible here): at most 1 ulp for SLEEF's functions over B and C (the logarithms over their
// absolute values; tanh's 1.0 is at its cut to 1 above 18.714973875), 3 for sigmoid and silu (the
// exp inside, then a sum and a quotient; measured 2.47 and 1.92, far in the left tail).
long double reference(const std::string& op, long double x) {
  if (op == "exp") return std::exp(x);
  if (op == "log") return std::log(x);
  if (op == "log2") return std::log2(x);
  if (op == "log10") return std::log10(x);
  if (op == "log1p") return std::log1p(x);
  if (op == "expm1") return std::expm1(x);
  if (op == "tanh") return std::tanh(x);
  if (op == "sinh") return std::sinh(x);
  if (op == "cosh") return std::cosh(x);
  if (op == "sin") return std::sin(x);
  if (op == "cos") return std::cos(x);
  if (op == "tan") return std::tan(x);
  if (op == "asin") return std::asin(x);
  if (op == "acos") return std::acos(x);
  if (op == "atan") return std::atan(x);
  if (op == "erf") return std::erf(x);
  if (op == "sigmoid") return 1.0L / (1.0L + std::exp(-x));
  return x / (1.0L + std::exp(-x));  // silu
}

TEST(VecSleefF64, UlpBoundsAgainstLongDouble) {
  std::vector<double> b = weyl(0, 40.0), c = weyl(65536, 1.25);
  b.insert(b.end(), c.begin(), c.end());
  for (const SleefF64TorchRow& e : kSleefF64TorchRows) {
    const std::string op = e.op;
    std::vector<double> xs = b;
    if (op.rfind("log", 0) == 0)
      for (double& x : xs) x = std::fabs(x);
    const auto n = static_cast<int64_t>(xs.size());
    const std::vector<double> y = op_named(op)(from_vector<double>(xs, {n})).to_vector<double>();
    double worst = 0, at = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const long double want = reference(op, xs[i]);
      const double w = static_cast<double>(want);
      if (!std::isfinite(w) || w == 0) continue;
      const double ulp = std::fabs(w) < std::numeric_limits<double>::min()
                             ? std::ldexp(1.0, -1074)
                             : std::ldexp(1.0, std::ilogb(w) - 52);
      const double err = static_cast<double>(std::fabs(y[i] - want) / ulp);
      if (err > worst) worst = err, at = xs[i];
    }
    const double bound = op == "sigmoid" || op == "silu" ? 3.0 : 1.001;
    EXPECT_LE(worst, bound) << op << " at x = " << at;
    std::printf("%-8s max %.3f ulp (x = %.17g)\n", op.c_str(), worst, at);
  }
}

// Long 1-D rows are cut for threads at multiples of 8 elements: the 4-lane groups and the
// SLEEF/libm split stay one-thread torch's whatever the thread count.
TEST(VecSleefF64, ThreadCountDoesNotChangeBits) {
#ifdef _OPENMP
  const int before = omp_get_max_threads();
  omp_set_num_threads(3);
#endif
  const Inputs& in = inputs();
  for (const SleefF64TorchRow& e : kSleefF64TorchRows) {
    const std::string op = e.op;
    if (op != "cos" && op != "tan" && op != "sinh" && op != "sigmoid") continue;
    EXPECT_EQ(fnv1a(op_named(op)(in.x)), e.full) << op;
    EXPECT_EQ(fnv1a(op_named(op)(in.xm)), e.mixed) << op;
  }
#ifdef _OPENMP
  omp_set_num_threads(before);
#endif
}

// SLEEF reduces a 4-lane vector's arguments together: by pi in two parts when all four are below
// 15, by Payne-Hanek when one is at least 1e14, and the two can differ in the last bit. torch 1.13:
//   torch.cos(torch.tensor(xs, dtype=torch.float64)) for the rows below.
TEST(VecSleefF64Cos, PicksSleefsReductionPerGroupOfFour) {
  const double a = 0.1, big = 1e15;
  const double small_path = 0x1.fd712f9a817c0p-1, large_path = 0x1.fd712f9a817c1p-1,
               cos_big = -0x1.06c154609d33fp-1;
  const struct {
    std::vector<double> x, want;
  } rows[] = {
      {{a, a, a, a}, {small_path, small_path, small_path, small_path}},
      {{a, a, a, big}, {large_path, large_path, large_path, cos_big}},
      {{a, a, a, a, a, a, a, big},
       {small_path, small_path, small_path, small_path, large_path, large_path, large_path,
        cos_big}},
      {{a, a, a, big, a, a, a, a},
       {large_path, large_path, large_path, cos_big, small_path, small_path, small_path,
        small_path}},
      {{big, a, a, a, a}, {cos_big, large_path, large_path, large_path, small_path}},
      {{a, a, a, a, a, a, a, big, a},
       {small_path, small_path, small_path, small_path, large_path, large_path, large_path, cos_big,
        small_path}},
  };
  for (const auto& r : rows) {
    const auto y = cos(from_vector<double>(r.x, {static_cast<int64_t>(r.x.size())}));
    const std::vector<double> got = y.to_vector<double>();
    for (size_t i = 0; i < r.want.size(); ++i)
      EXPECT_EQ(std::bit_cast<uint64_t>(got[i]), std::bit_cast<uint64_t>(r.want[i]))
          << "row of " << r.x.size() << ", element " << i;
  }
}

}  // namespace
}  // namespace fabric
