// pdist and softmin against torch 1.13 (tests/nn/functional_extra_torch_rows.h, from
// tools/fixtures/make_functional_extra_rows.py): pdist's distances and input gradient bit for bit
// for p in {0, 1, 2, inf} (others within a few ulps: torch's vector pow), float32 and float64,
// with zero distances and zero differences; a float64 finite-difference check; softmin with and
// without dtype; torch's errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "nn/functional_extra.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"
#include "tests/nn/functional_extra_torch_rows.h"
#include "tests/tensor/torch_cpu_rng_check.h"

namespace fabric::nn {
namespace {

DType dtype_named(const std::string& name) {
  if (name == "float32") return DType::float32;
  if (name == "bfloat16") return DType::bfloat16;
  return DType::float64;
}

Tensor tensor_of(const std::vector<double>& values, const std::vector<int64_t>& shape, DType dt) {
  return from_vector(values, Shape(shape.begin(), shape.end())).to(dt);
}

// Values within ulps units of the last place of torch's (0: the same bits).
void expect_ulps(const Tensor& t, const std::vector<double>& want, double ulps, const char* what) {
  const DType dt = t.dtype();
  const std::vector<double> got = t.detach().to(DType::float64).contiguous().to_vector<double>();
  ASSERT_EQ(got.size(), want.size()) << what;
  const double eps = dt == DType::float32 ? 0x1p-23 : dt == DType::bfloat16 ? 0x1p-7 : 0x1p-52;
  for (size_t i = 0; i < got.size(); ++i) {
    if (ulps == 0) {
      EXPECT_EQ(std::memcmp(&got[i], &want[i], sizeof(double)), 0)
          << what << " element " << i << ": " << got[i] << " vs torch " << want[i];
    } else {
      EXPECT_NEAR(got[i], want[i], ulps * eps * std::max(std::fabs(want[i]), 1e-30))
          << what << " element " << i;
    }
  }
}

TEST(PdistTorch, MatchesTorch) {
  // torch: x leaf; y = F.pdist(x, p); y.backward(grad_out)  -> y, x.grad
  ASSERT_FALSE(pdist_torch_rows().empty());
  for (const PdistTorchRow& r : pdist_torch_rows()) {
    SCOPED_TRACE(std::string(r.dtype) + " p=" + std::to_string(r.p) +
                 " m=" + std::to_string(r.shape[1]));
    const DType dt = dtype_named(r.dtype);
    Tensor x = tensor_of(r.input, r.shape, dt);
    x.set_requires_grad(true);
    Tensor y = pdist(x, r.p);
    ASSERT_EQ(y.dtype(), dt);
    const int64_t n = r.shape[0];
    ASSERT_EQ(y.sizes(), (Shape{n * (n - 1) / 2}));
    const bool exact = r.p == 0 || r.p == 1 || r.p == 2 || std::isinf(r.p);
    expect_ulps(y, r.out, exact ? 0 : 8, "out");
    y.backward(tensor_of(r.grad_out, {n * (n - 1) / 2}, dt));
    if (exact) {
      expect_ulps(x.grad(), r.grad_input, 0, "grad_input");
    } else {
      // Sums of terms that carry pow's ulps: compare against the gradient's scale.
      const std::vector<double> got = x.grad().to(DType::float64).to_vector<double>();
      const double tol = dt == DType::float32 ? 1e-5 : 1e-13;
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], r.grad_input[i], tol * (1 + std::fabs(r.grad_input[i]))) << i;
    }
  }
}

TEST(PdistTorch, GradientMatchesFiniteDifferences) {
  Generator gen(5);
  for (double p : {1.0, 2.0, 3.0, 1.5, static_cast<double>(INFINITY)}) {
    Tensor x = randn({4, 5}, {.dtype = DType::float64}, &gen);
    x.set_requires_grad(true);
    const Tensor w = randn({6}, {.dtype = DType::float64}, &gen);
    sum(mul(pdist(x, p), w)).backward();
    const std::vector<double> analytic = x.grad().to_vector<double>();
    Tensor probe = x.detach().clone();
    double* v = probe.data<double>();
    for (int64_t i = 0; i < probe.numel(); ++i) {
      const double keep = v[i];
      v[i] = keep + 1e-6;
      const double up = sum(mul(pdist(probe, p), w)).item<double>();
      v[i] = keep - 1e-6;
      const double down = sum(mul(pdist(probe, p), w)).item<double>();
      v[i] = keep;
      EXPECT_NEAR(analytic[static_cast<size_t>(i)], (up - down) / 2e-6, 1e-5)
          << "p " << p << " " << i;
    }
  }
}

TEST(PdistTorch, EdgeShapesAndErrors) {
  // torch: pdist of (1, 2) and (0, 2) -> shape (0,); of (3, 0) -> [0, 0, 0]
  EXPECT_EQ(pdist(zeros({1, 2})).sizes(), (Shape{0}));
  EXPECT_EQ(pdist(zeros({0, 2})).sizes(), (Shape{0}));
  EXPECT_EQ(pdist(zeros({3, 0})).to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_CONTAINS(thrown<ShapeError>([] { pdist(zeros({3})); }),
                  "pdist only supports 2D tensors, got: 1D");
  EXPECT_CONTAINS(thrown<ShapeError>([] {
                    pdist(zeros({2, 3, 2}));
                  }),
                  "pdist only supports 2D tensors, got: 3D");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    pdist(zeros({3, 2}), -1);
                  }),
                  "pdist only supports non-negative p values");
  EXPECT_CONTAINS(thrown<DTypeError>([] {
                    pdist(zeros({3, 2}, {.dtype = DType::int64}));
                  }),
                  "pdist only supports floating-point dtypes");
  EXPECT_CONTAINS(thrown<DTypeError>([] {
                    pdist(zeros({3, 2}, {.dtype = DType::bfloat16}));
                  }),
                  "not implemented for bfloat16");
}

TEST(SoftminTorch, MatchesTorch) {
  // torch: y = F.softmin(x, dim, dtype=out_dtype or None); y.backward(grad_out)
  for (const SoftminTorchRow& r : softmin_torch_rows()) {
    SCOPED_TRACE(std::string(r.dtype) + " -> " + r.out_dtype);
    const DType dt = dtype_named(r.dtype), odt = dtype_named(r.out_dtype);
    Tensor x = tensor_of(r.input, r.shape, dt);
    x.set_requires_grad(true);
    Tensor y = softmin(x, r.dim, dt == odt ? std::nullopt : std::optional<DType>(odt));
    ASSERT_EQ(y.dtype(), odt);
    expect_ulps(y, r.out, 0, "out");
    y.backward(tensor_of(r.grad_out, r.shape, odt));
    ASSERT_EQ(x.grad().dtype(), dt);
    expect_ulps(x.grad(), r.grad_input, 0, "grad_input");
  }
}

// gumbel_softmax with a torch_cpu generator draws torch's noise (exponential_, bit for bit: see
// TorchCpuRng.Exponential), and its log and last-dim softmax are torch's bits too, so the values
// are torch's; the gradient of a softmax over another dim rounds differently (a few ulps). torch:
//   logits = (((torch.arange(40) * 13) % 23 - 11).float() / 4).reshape(4, 10)
//   torch.manual_seed(46); F.gumbel_softmax(logits, tau=0.5)  # kSoft below
//   torch.manual_seed(46); y = F.gumbel_softmax(logits, tau=2.0, hard=True, dim=0)  # the row
//     gumbel_softmax_hard_dim0 of tests/tensor/torch_cpu_rng_rows.h (a one-hot: exact)
//   w = torch.arange(40.).reshape(4, 10); (y * w).sum().backward(); logits.grad[:, :3]
// The hard form's gradient is y_soft's (straight through).
TEST(GumbelSoftmaxTorch, TorchsNoiseAndStraightThroughGradient) {
  const Tensor logits = div(sub(remainder(mul(arange(0, 40, 1, DType::int64), 13), 23), 11), 4.0)
                            .to(DType::float32)
                            .reshape({4, 10});
  const std::vector<double> kSoft{
      9.713506005937234e-05,  0.3324602246284485,     0.0299238134175539,
      0.0559050515294075,     0.005638428498059511,   0.39152994751930237,
      0.00042046731687150896, 0.1316772848367691,     0.052339036017656326,
      8.629461262898985e-06,  0.0745031088590622,     8.386800800508354e-06,
      0.8533579707145691,     0.0027592757251113653,  0.05292731150984764,
      0.0002032323245657608,  0.00023029788280837238, 0.002333451295271516,
      2.74145513685653e-05,   0.013649567030370235,   5.160407818038948e-05,
      0.905755877494812,      0.00042357551865279675, 2.0025958292535506e-05,
      0.004989278968423605,   1.2522916222224012e-05, 0.07777424901723862,
      1.3814662452205084e-05, 0.010858745314180851,   0.00010044263035524637,
      0.04902192950248718,    0.0014017954235896468,  3.256248601246625e-05,
      0.06727790087461472,    1.0618682608765084e-06, 0.005204716697335243,
      5.422598769655451e-05,  0.8766554594039917,     0.000350376678397879,
      5.547589410070941e-08};
  {
    Generator g(46, RngAlgorithm::torch_cpu);
    const std::vector<double> got =
        gumbel_softmax(logits, 0.5, false, -1, &g).reshape({-1}).to_vector<double>();
    ASSERT_EQ(got.size(), kSoft.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], kSoft[i]) << i;
  }
  Generator g(testing::torch_cpu_rng_row("gumbel_softmax_hard_dim0").seed, RngAlgorithm::torch_cpu);
  const Tensor x = logits.detach().set_requires_grad(true);
  const Tensor y = gumbel_softmax(x, 2.0, true, 0, &g);
  testing::expect_torch_values("gumbel_softmax_hard_dim0", y.detach());
  sum(mul(y, arange(0, 40, 1, DType::float32).reshape({4, 10}))).backward();
  const std::vector<double> want{-0.5204998254776001,   -2.20113468170166,    -1.0560696125030518,
                                 -1.9125422239303589,   -0.07657302916049957, -0.19644849002361298,
                                 -0.022849811241030693, 1.1450141668319702,   0.47646793723106384,
                                 2.455892324447632,     1.1326937675476074,   0.7760499119758606};
  const std::vector<double> got = x.grad().narrow(1, 0, 3).contiguous().to_vector<double>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 4e-6) << i;
}

}  // namespace
}  // namespace fabric::nn
