// fabric::linalg (nn/linalg.h) beyond the torch rows: matrices large enough to take Eigen's
// blocked and divide-and-conquer paths (checked by their defining identities), batches run in
// parallel giving each matrix's own result bit for bit, the README example, and what a gradient
// that does not need the vectors computes.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "nn/linalg.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

Tensor eye64(int64_t n, DType dt = DType::float64) { return eye(n, std::nullopt, {.dtype = dt}); }

double max_abs(const Tensor& t) { return max(abs(t)).item<double>(); }

// Larger than Eigen's unblocked thresholds (LLT blocks from 32, LU and Householder QR from 16 and
// 48, BDCSVD leaves Jacobi from 16): the identities that define each factorization hold.
TEST(Linalg, LargeMatricesSatisfyTheirIdentities) {
  Generator gen(7);
  for (DType dt : {DType::float64, DType::float32}) {
    SCOPED_TRACE(dtype_name(dt));
    const double tol = dt == DType::float64 ? 1e-10 : 2e-3;
    const int64_t n = 64;
    const Tensor x = randn({n, n}, {.dtype = dt}, &gen);
    const Tensor spd = add(matmul(x, x.t()), mul(eye64(n, dt), double(n)));
    const Tensor L = linalg::cholesky(spd);
    EXPECT_LT(max_abs(sub(matmul(L, L.t()), spd)) / double(n), tol);
    EXPECT_LT(max_abs(sub(matmul(linalg::inv(spd), spd), eye64(n, dt))), tol);
    auto [sign, logdet] = linalg::slogdet(spd);
    EXPECT_EQ(sign.item<double>(), 1.0);
    EXPECT_NEAR(logdet.item<double>(), 2 * sum(log(diagonal(L, 0, 0, 1))).item<double>(), tol * n);
    const Tensor tall = randn({80, 50}, {.dtype = dt}, &gen);
    auto [Q, R] = linalg::qr(tall);
    EXPECT_LT(max_abs(sub(matmul(Q, R), tall)), tol * 10);
    EXPECT_LT(max_abs(sub(matmul(Q.t(), Q), eye64(50, dt))), tol);
    auto [U, S, Vh] = linalg::svd(tall, false);
    EXPECT_LT(max_abs(sub(matmul(mul(U, S.unsqueeze(0)), Vh), tall)), tol * 10);
    EXPECT_LT(max_abs(sub(matmul(Vh, Vh.t()), eye64(50, dt))), tol);
    auto [w, V] = linalg::eigh(spd);
    EXPECT_LT(max_abs(sub(matmul(spd, V), mul(V, w.unsqueeze(0)))) / double(n), tol * 10);
    const std::vector<double> ws = w.to_vector<double>();
    for (size_t i = 1; i < ws.size(); ++i) EXPECT_LE(ws[i - 1], ws[i]);
    const Tensor b = randn({n, 3}, {.dtype = dt}, &gen);
    EXPECT_LT(max_abs(sub(matmul(spd, linalg::solve(spd, b)), b)), tol * n);
    auto [sol, res, rank, sv] = linalg::lstsq(tall, randn({80, 2}, {.dtype = dt}, &gen));
    EXPECT_EQ(rank.item<int64_t>(), 50);
  }
}

// A batch runs its matrices in parallel; each result is the one that matrix gets alone.
TEST(Linalg, BatchedResultsAreEachMatrixsOwn) {
  Generator gen(3);
  const Tensor x = randn({8, 40, 40}, {.dtype = DType::float64}, &gen);
  const Tensor a = add(x, mul(eye64(40), 40.0));
  const Tensor inv = linalg::inv(a);
  const Tensor vals = linalg::svdvals(a);
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(inv[i].to_vector<double>(), linalg::inv(a[i]).to_vector<double>());
    EXPECT_EQ(vals[i].to_vector<double>(), linalg::svdvals(a[i]).to_vector<double>());
  }
}

// svdvals' gradient is U diag(g) Vh even for repeated singular values, where the full SVD
// backward would divide by their zero gap (torch's shortcut: the vectors get no gradient).
TEST(Linalg, SvdvalsGradientWithRepeatedSingularValues) {
  Tensor a = mul(eye64(3), 2.0);
  a.set_requires_grad(true);
  sum(linalg::svdvals(a)).backward();
  const std::vector<double> g = a.grad().to_vector<double>();
  const std::vector<double> want = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], want[i], 1e-12) << i;
}

TEST(Linalg, ReadmeExample) {
  Tensor x = randn({4, 4}, {.dtype = DType::float64});
  Tensor a = add(matmul(x, x.t()), mul(eye(4, std::nullopt, {.dtype = DType::float64}), 4.0));
  a.set_requires_grad(true);       // a symmetric positive-definite matrix
  Tensor l = linalg::cholesky(a);  // a = l l^T
  Tensor b = randn({4, 2}, {.dtype = DType::float64});
  Tensor sol = linalg::solve(a, b);          // a sol = b
  auto [sign, logdet] = linalg::slogdet(a);  // sign = 1
  auto [evals, evecs] = linalg::eigh(a);     // ascending, all > 0
  sum(sol).backward();                       // a.grad() = -a^-T 1 sol^T
  NoGradGuard no_grad;
  EXPECT_LT(max_abs(sub(matmul(l, l.t()), a)), 1e-12);
  EXPECT_LT(max_abs(sub(matmul(a, sol), b)), 1e-12);
  EXPECT_EQ(sign.item<double>(), 1.0);
  EXPECT_GT(min(evals).item<double>(), 0.0);
  const Tensor ones_col = ones({4, 2}, {.dtype = DType::float64});
  const Tensor want = neg(matmul(matmul(linalg::inv(a).t(), ones_col), sol.t()));
  EXPECT_LT(max_abs(sub(a.grad(), want)), 1e-12);
}

}  // namespace
}  // namespace fabric
