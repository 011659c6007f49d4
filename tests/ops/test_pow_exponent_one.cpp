// pow(x, 1) is x, bit for bit (torch's pow_out copies the base), through its own kernel path in
// every floating dtype; and the backward of pow(x, 2), which no longer runs a pow pass, gives
// torch's 2 * x * g bit for bit, once and twice differentiated. The harness family checks both
// against float64 references and finite differences in every dtype and layout.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/omp_threads.h"
#include "tests/common/same_bits.h"
#include "tests/ops/op_harness.h"

namespace fabric {
namespace {

const std::vector<DType> kFloating = {DType::float64, DType::float32, DType::bfloat16,
                                      DType::float16};

// The special values first, then random ones: n elements, in `dt`.
Tensor values_with_specials(int64_t n, DType dt) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> v = {std::nan(""), inf, -inf, -0.0, 0.0, 1e-40, -3.5, 65000.0};
  const std::vector<double> r = randn({n}, {.dtype = DType::float64}).to_vector<double>();
  for (int64_t i = static_cast<int64_t>(v.size()); i < n; ++i) v.push_back(r[i] * 100);
  v.resize(n);
  return from_vector(v, {n}, {.dtype = DType::float64}).to(dt);
}

// Odd sizes (vector tails, a single element, one large enough to be split across threads).
const std::vector<int64_t> kSizes = {1, 15, 17, 1000, (1 << 20) + 3};

TEST(PowExponentOne, IsTheBaseBitForBit) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (DType dt : kFloating) {
      for (int64_t n : kSizes) {
        const Tensor x = values_with_specials(n, dt);
        const std::string what = std::string(dtype_name(dt)) + " n=" + std::to_string(n) +
                                 " threads=" + std::to_string(threads);
        expect_same_bits(pow(x, 1), x, what);
        expect_same_bits(pow(x, 1.0), x, what + " (double exponent)");
      }
    }
  }
}

TEST(PowExponentOne, StridedAndBroadcastInputs) {
  for (DType dt : kFloating) {
    const Tensor x = values_with_specials(33 * 17, dt).reshape({33, 17});
    expect_same_bits(pow(x.t(), 1), x.t().contiguous(), std::string(dtype_name(dt)) + " .t()");
    const Tensor row = x.narrow(0, 2, 1).expand({5, 17});
    expect_same_bits(pow(row, 1), row.contiguous(), std::string(dtype_name(dt)) + " expanded");
  }
}

TEST(PowExponentOne, IntegersStayIntegers) {
  const Tensor i =
      from_vector(std::vector<int64_t>{-7, 0, 3, 1 << 20}, {4}, {.dtype = DType::int64});
  EXPECT_EQ(pow(i, 1).dtype(), DType::int64);
  EXPECT_EQ(pow(i, 1).to_vector<int64_t>(), (std::vector<int64_t>{-7, 0, 3, 1 << 20}));
}

TEST(PowSquareBackward, IsTwoTimesBaseTimesGrad) {
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (DType dt : kFloating) {
      for (int64_t n : kSizes) {
        const Tensor x = values_with_specials(n, dt).set_requires_grad(true);
        const Tensor g = randn({n}, {.dtype = DType::float64}).to(dt);
        pow(x, 2).backward(g);
        Tensor want;
        {
          NoGradGuard no_grad;
          want = mul(g, mul(x, 2));  // torch's grad * (2 * x^1), in its order
        }
        expect_same_bits(x.grad(), want,
                         std::string(dtype_name(dt)) + " n=" + std::to_string(n) +
                             " threads=" + std::to_string(threads));
      }
    }
  }
}

TEST(PowSquareBackward, DifferentiatesTwice) {
  const Tensor x = randn({37}, {.dtype = DType::float64}).set_requires_grad(true);
  const Tensor g = randn({37}, {.dtype = DType::float64});
  const Tensor gx = grad({pow(x, 2)}, {x}, {g}, std::nullopt, /*create_graph=*/true)[0];
  const Tensor ggx = grad({sum(gx)}, {x})[0];  // d/dx sum(2 x g) = 2 g
  const std::vector<double> got = ggx.to_vector<double>(), gv = g.to_vector<double>();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], 2 * gv[i]) << i;
}

}  // namespace

namespace harness {
namespace {

using Ts = std::vector<Tensor>;

std::vector<OpCase> pow_exponent_cases() {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<OpCase> c;
  for (const Shape& s : std::vector<Shape>{{7, 9}, {2, 3, 17}, {0, 4}, {1}, {}, {40, 33}}) {
    c.push_back({"pow_scalar1/" + shape_str(s),
                 {F(s, -3, 3)},
                 [](const Ts& x) { return pow(x[0], 1); },
                 ref_unary([](double a) { return a; })});
    // pow(x, 2)'s gradient without its pow pass, checked by finite differences.
    c.push_back({"pow_scalar2_grad/" + shape_str(s),
                 {F(s, -3, 3)},
                 [](const Ts& x) { return pow(x[0], 2.0); },
                 ref_unary([](double a) { return a * a; })});
  }
  OpCase specials{"pow_scalar1/specials",
                  {V({8}, {std::nan(""), inf, -inf, -0.0, 0.0, 1e-30, -3.5, 1000.0})},
                  [](const Ts& x) { return pow(x[0], 1); },
                  ref_unary([](double a) { return a; })};
  specials.grad_check = false;  // inf and NaN have no finite difference
  c.push_back(specials);
  return c;
}

TEST(OpHarness, PowSpecialExponents) { run_cases(pow_exponent_cases()); }
TEST(OpHarnessCuda, PowSpecialExponents) { run_cases_on_cuda(pow_exponent_cases()); }

}  // namespace
}  // namespace harness
}  // namespace fabric
