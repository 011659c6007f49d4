// cdist's matmul formula (p = 2, more than 25 rows) runs on the CPU as one node (ops_cdist.cpp):
// the GEMM writes the output, one in-place pass clamps and takes the root, and the backward is a
// fused scale pass plus two GEMMs. Its values, gradients and second derivatives must stay those
// of torch's composition (rebuilt here from recorded ops), clamped pairs included, and it must
// not allocate the composition's extra (P, R) temporaries. The torch fixture rows
// (test_products_torch.cpp) check the values against torch itself.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

// torch's _euclidean_dist as recorded ops: the reference.
Tensor composed_cdist(const Tensor& x1, const Tensor& x2) {
  const Tensor n1 = sum(pow(x1, 2), {-1}, true), n2 = sum(pow(x2, 2), {-1}, true);
  const Tensor a = cat({mul(x1, -2), n1, ones_like(n1)}, -1);
  const Tensor b = cat({x2, ones_like(n2), n2}, -1);
  const Tensor floor = full({}, 1e-30, {.dtype = x1.dtype(), .device = x1.device()});
  return sqrt(maximum(matmul(a, b.transpose(-1, -2)), floor));
}

void expect_near(const Tensor& got, const Tensor& want, double tol) {
  ASSERT_EQ(got.sizes(), want.sizes());
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], w[i], tol) << "at " << i;
}

Tensor leaf_copy(const Tensor& t) { return t.detach().clone().set_requires_grad(true); }

// x1 (batch, 30, 5) against x2 (28, 5), broadcast; x2's row 3 is x1[0]'s row 7, so that pair's
// squared distance is clamped to 1e-30 and passes no gradient (torch's clamp_min).
std::pair<Tensor, Tensor> inputs(DType dtype) {
  manual_seed(3);
  Tensor x1 = randn({2, 30, 5}, {.dtype = dtype});
  Tensor x2 = randn({28, 5}, {.dtype = dtype});
  x2.narrow(0, 3, 1).copy_(x1.select(0, 0).narrow(0, 7, 1));
  return {x1, x2};
}

TEST(CdistMm, OneNodeWithTheCompositionsValuesAndGradients) {
  for (DType dtype : {DType::float64, DType::float32}) {
    SCOPED_TRACE(dtype_name(dtype));
    const double tol = dtype == DType::float64 ? 1e-10 : 2e-4;
    const auto [x1, x2] = inputs(dtype);
    const Tensor a1 = leaf_copy(x1), a2 = leaf_copy(x2), r1 = leaf_copy(x1), r2 = leaf_copy(x2);
    const Tensor out = cdist(a1, a2), ref = composed_cdist(r1, r2);
    EXPECT_EQ(grad_fn_name(out), "SqrtBackward0");
    expect_near(out, ref, tol);
    const Tensor g = randn(out.sizes(), {.dtype = dtype});
    sum(mul(out, g)).backward();
    sum(mul(ref, g)).backward();
    expect_near(a1.grad(), r1.grad(), tol);
    expect_near(a2.grad(), r2.grad(), tol);
  }
}

// clamp_min keeps NaN (the AVX-512 max takes it from its second operand): a NaN feature makes its
// row of distances NaN, as the composition's.
TEST(CdistMm, NanStaysNan) {
  for (DType dtype : {DType::float64, DType::float32}) {
    SCOPED_TRACE(dtype_name(dtype));
    auto [x1, x2] = inputs(dtype);
    x1.select(0, 1).select(0, 4).select(0, 2).fill_(NAN);
    const std::vector<double> out = cdist(x1, x2).to_vector<double>();
    const std::vector<double> ref = composed_cdist(x1, x2).to_vector<double>();
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_EQ(std::isnan(out[i]), std::isnan(ref[i])) << "at " << i;
      if (i / 28 == 30 + 4) ASSERT_TRUE(std::isnan(out[i])) << "at " << i;
    }
  }
}

TEST(CdistMm, DoubleBackwardMatchesTheComposition) {
  const auto [x1, x2] = inputs(DType::float64);
  const Tensor a1 = leaf_copy(x1), a2 = leaf_copy(x2), r1 = leaf_copy(x1), r2 = leaf_copy(x2);
  const std::vector<Tensor> ga =
      grad({sum(pow(cdist(a1, a2), 3))}, {a1, a2}, {}, std::nullopt, /*create_graph=*/true);
  const std::vector<Tensor> gr =
      grad({sum(pow(composed_cdist(r1, r2), 3))}, {r1, r2}, {}, std::nullopt, true);
  add(sum(pow(ga[0], 2)), sum(pow(ga[1], 2))).backward();
  add(sum(pow(gr[0], 2)), sum(pow(gr[1], 2))).backward();
  expect_near(a1.grad(), r1.grad(), 1e-8);
  expect_near(a2.grad(), r2.grad(), 1e-8);
}

// The composition held the GEMM's output, maximum's and sqrt's, and its backward made several
// more (P, R) tensors (sqrt's and maximum's gradients and masks): 8.6 of them at the peak here.
// The node holds its output and its backward makes one scale tensor; with mul(out, g) and its
// gradient, 4 at the peak.
TEST(CdistMm, FewPairwiseTemporaries) {
  constexpr int64_t kRows = 512, kPairBytes = kRows * kRows * 4;
  manual_seed(0);
  const Tensor x1 = randn({kRows, 16}).set_requires_grad(true);
  const Tensor x2 = randn({kRows, 16}).set_requires_grad(true);
  const Tensor g = randn({kRows, kRows});
  cpu_allocator().reset_peak();
  const int64_t before = cpu_allocator().stats().allocated_bytes;
  {
    const Tensor out = cdist(x1, x2);
    sum(mul(out, g)).backward();
  }
  const int64_t scratch = cpu_allocator().stats().peak_allocated_bytes - before;
  EXPECT_LE(scratch, 4 * kPairBytes + kPairBytes / 2) << "bytes allocated beyond the inputs";
}

}  // namespace
}  // namespace fabric
