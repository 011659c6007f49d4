// Harness cases for fabric::linalg (nn/linalg.h): inverses, determinants, solvers, Cholesky, QR,
// eigh, SVD, pinv, rank, lstsq, matrix norms, matrix_power and multi_dot, each against a naive
// float64 reference (tests/ops/linalg_naive.h), with finite-difference gradients. Inputs are made
// well-conditioned inside the case (X + n I, X X^T + n I, (X + X^T) / 2) by differentiable ops, so
// the gradient check sees the composition. Outputs that are unique only up to signs (Q, the
// eigenvectors, the singular vectors) are returned with each column's sign fixed (by the sign of
// R's diagonal, or of the column sum): gauge-invariant functions, as torch's own gradchecks use.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <tuple>

#include "nn/linalg.h"
#include "tests/ops/linalg_naive.h"
#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using naive::Mat;
using V = std::vector<Tensor>;
const std::vector<DType> kF = {DType::float64, DType::float32};
const double kInf = std::numeric_limits<double>::infinity();

// ---- the conditioning transforms, as fabric ops and on the reference side --------------------
Tensor eye_like(const Tensor& x) {
  return eye(x.size(-1), std::nullopt, {.dtype = x.dtype(), .device = x.device()});
}
Tensor shifted(const Tensor& x) { return add(x, mul(eye_like(x), double(x.size(-1)))); }
Tensor spd(const Tensor& x) {
  return add(matmul(x, x.transpose(-2, -1)), mul(eye_like(x), double(x.size(-1))));
}
Tensor sym(const Tensor& x) { return mul(add(x, x.transpose(-2, -1)), 0.5); }
Tensor flat_cat(const V& parts) {
  V f;
  for (const Tensor& p : parts) f.push_back(p.reshape({-1}));
  return cat(f, 0);
}

Mat shifted(Mat m) {
  for (int64_t i = 0; i < m.r; ++i) m(i, i) += static_cast<double>(m.r);
  return m;
}
Mat spd(const Mat& x) { return shifted(naive::matmul(x, naive::transpose(x))); }
Mat sym(const Mat& x) {
  Mat s = x;
  for (int64_t i = 0; i < x.r; ++i)
    for (int64_t j = 0; j < x.c; ++j) s(i, j) = 0.5 * (x(i, j) + x(j, i));
  return s;
}

// A reference applying f to every matrix of in[0] (batch dims kept).
RefFn each(std::function<Mat(const Mat&)> f) {
  return [f](const std::vector<RefTensor>& in) {
    std::vector<Mat> out;
    for (const Mat& m : naive::matrices(in[0])) out.push_back(f(m));
    const int64_t r = out.empty() ? in[0].shape[in[0].shape.size() - 2] : out[0].r;
    const int64_t c = out.empty() ? in[0].shape.back() : out[0].c;
    return naive::pack(naive::batch_of(in[0]), out, r, c);
  };
}
// A reference giving one number per matrix of in[0] (the batch shape).
RefFn each_scalar(std::function<double(const Mat&)> f) {
  return [f](const std::vector<RefTensor>& in) {
    RefTensor out{naive::batch_of(in[0]), {}};
    for (const Mat& m : naive::matrices(in[0])) out.v.push_back(f(m));
    return out;
  };
}

// Flips each column j of `cols` (and row j of `rows`, when given) by sign(sign_of[j]).
void fix_signs(const std::vector<double>& sign_of, Mat& cols, Mat* rows = nullptr) {
  for (size_t j = 0; j < sign_of.size(); ++j) {
    if (sign_of[j] >= 0) continue;
    for (int64_t i = 0; i < cols.r; ++i) cols(i, j) = -cols(i, j);
    if (rows)
      for (int64_t i = 0; i < rows->c; ++i) (*rows)(j, i) = -(*rows)(j, i);
  }
}
std::vector<double> column_sums(const Mat& m) {
  std::vector<double> s(static_cast<size_t>(m.c), 0.0);
  for (int64_t i = 0; i < m.r; ++i)
    for (int64_t j = 0; j < m.c; ++j) s[j] += m(i, j);
  return s;
}
// The sign fixing as fabric ops: columns by the sign of their sum.
Tensor column_signs(const Tensor& m) { return sign(sum(m, {-2})); }

// Concatenates per-matrix pieces the way flat_cat does: all of piece 0 first, then piece 1...
RefTensor flat_pieces(const std::vector<std::vector<std::vector<double>>>& per_matrix) {
  RefTensor out{{0}, {}};
  if (per_matrix.empty()) return out;
  for (size_t p = 0; p < per_matrix[0].size(); ++p)
    for (const auto& m : per_matrix) out.v.insert(out.v.end(), m[p].begin(), m[p].end());
  out.shape = {static_cast<int64_t>(out.v.size())};
  return out;
}

OpCase make(std::string name, std::vector<InputSpec> inputs, OpFn run, RefFn ref,
            double tol_scale = 1.0, bool grad = true) {
  OpCase c{std::move(name), std::move(inputs), std::move(run), std::move(ref)};
  c.dtypes = kF;
  c.tol_scale = tol_scale;
  c.grad_check = grad;
  return c;
}

void inverse_cases(std::vector<OpCase>& c) {
  for (Shape s : {Shape{4, 4}, Shape{2, 3, 3}, Shape{0, 3, 3}, Shape{1, 1}, Shape{0, 0}})
    c.push_back(make(
        "inv/" + shape_str(s), {F(s, -1, 1)}, [](const V& x) { return linalg::inv(shifted(x[0])); },
        each([](const Mat& m) { return naive::inverse(shifted(m)); }), 5));
  c.push_back(make(
      "inv_ex/inverse", {F({2, 4, 4}, -1, 1)},
      [](const V& x) { return std::get<0>(linalg::inv_ex(shifted(x[0]))); },
      each([](const Mat& m) { return naive::inverse(shifted(m)); }), 5));
  for (Shape s : {Shape{4, 4}, Shape{3, 2, 2}, Shape{0, 0}, Shape{2, 0, 0}})
    c.push_back(make(
        "det/" + shape_str(s), {F(s)}, [](const V& x) { return linalg::det(x[0]); },
        each_scalar([](const Mat& m) { return naive::determinant(m); }), 10));
  c.push_back(make(
      "det/shifted", {F({2, 5, 5}, -1, 1)}, [](const V& x) { return linalg::det(shifted(x[0])); },
      each_scalar([](const Mat& m) { return naive::determinant(shifted(m)); }), 10));
  for (Shape s : {Shape{4, 4}, Shape{3, 3, 3}})
    c.push_back(make(
        "slogdet/" + shape_str(s), {F(s)},
        [](const V& x) {
          auto [sg, la] = linalg::slogdet(x[0]);
          return stack({sg, la}, -1);
        },
        [](const std::vector<RefTensor>& in) {
          RefTensor out{naive::batch_of(in[0]), {}};
          out.shape.push_back(2);
          for (const Mat& m : naive::matrices(in[0])) {
            const double d = naive::determinant(m);
            out.v.push_back(d > 0 ? 1.0 : -1.0);
            out.v.push_back(std::log(std::abs(d)));
          }
          return out;
        },
        5));
}

void solve_cases(std::vector<OpCase>& c) {
  const auto ref_solve = [](bool vector, bool left) {
    return [vector, left](const std::vector<RefTensor>& in) {
      const Shape bs = naive::batch_of(in[0]);
      std::vector<Mat> as = naive::matrices(in[0]);
      RefTensor b = in[1];
      if (vector) b.shape.push_back(1);
      std::vector<Mat> bm = naive::matrices(b);
      std::vector<Mat> out;
      for (size_t i = 0; i < as.size(); ++i) {
        const Mat a = shifted(as[i]);
        out.push_back(left ? naive::gauss_solve(a, bm[i])
                           : naive::transpose(
                                 naive::gauss_solve(naive::transpose(a), naive::transpose(bm[i]))));
      }
      RefTensor r = naive::pack(bs, out, out[0].r, out[0].c);
      if (vector) r.shape.pop_back();
      return r;
    };
  };
  c.push_back(make(
      "solve/matrix", {F({4, 4}, -1, 1), F({4, 3})},
      [](const V& x) { return linalg::solve(shifted(x[0]), x[1]); }, ref_solve(false, true), 5));
  c.push_back(make(
      "solve/vector", {F({4, 4}, -1, 1), F({4})},
      [](const V& x) { return linalg::solve(shifted(x[0]), x[1]); }, ref_solve(true, true), 5));
  c.push_back(make(
      "solve/batched_vector", {F({2, 3, 3}, -1, 1), F({2, 3})},
      [](const V& x) { return linalg::solve(shifted(x[0]), x[1]); }, ref_solve(true, true), 5));
  c.push_back(make(
      "solve/left_false", {F({2, 3, 3}, -1, 1), F({2, 4, 3})},
      [](const V& x) { return linalg::solve(shifted(x[0]), x[1], false); }, ref_solve(false, false),
      5));
  // Batch broadcasting: A (2, 1, 3, 3) against B (4, 3, 2); the gradient of A sums over B's batch.
  c.push_back(make(
      "solve/broadcast", {F({2, 1, 3, 3}, -1, 1), F({4, 3, 2})},
      [](const V& x) { return linalg::solve(shifted(x[0]), x[1]); },
      [](const std::vector<RefTensor>& in) {
        std::vector<Mat> as = naive::matrices(in[0]), bs = naive::matrices(in[1]), out;
        for (const Mat& a : as)
          for (const Mat& b : bs) out.push_back(naive::gauss_solve(shifted(a), b));
        return naive::pack({2, 4}, out, 3, 2);
      },
      5));
  for (bool upper : {false, true})
    for (bool left : {true, false})
      for (bool unit : {false, true}) {
        const std::string name = std::string("solve_triangular/") + (upper ? "upper" : "lower") +
                                 (left ? "_left" : "_right") + (unit ? "_unit" : "");
        c.push_back(make(
            name, {F({2, 4, 4}, -1, 1), F({2, left ? 4 : 3, left ? 3 : 4})},
            [=](const V& x) {
              return linalg::solve_triangular(shifted(x[0]), x[1], upper, left, unit);
            },
            [=](const std::vector<RefTensor>& in) {
              std::vector<Mat> as = naive::matrices(in[0]), bs = naive::matrices(in[1]), out;
              for (size_t i = 0; i < as.size(); ++i) {
                Mat t = shifted(as[i]);
                for (int64_t r = 0; r < t.r; ++r)
                  for (int64_t q = 0; q < t.c; ++q) {
                    if (upper ? q < r : q > r) t(r, q) = 0;
                    if (unit && q == r) t(r, q) = 1;
                  }
                out.push_back(left ? naive::gauss_solve(t, bs[i])
                                   : naive::transpose(naive::gauss_solve(naive::transpose(t),
                                                                         naive::transpose(bs[i]))));
              }
              return naive::pack({2}, out, out[0].r, out[0].c);
            },
            5));
      }
}

void cholesky_qr_cases(std::vector<OpCase>& c) {
  for (bool upper : {false, true})
    for (Shape s : {Shape{4, 4}, Shape{2, 3, 3}})
      c.push_back(make(
          "cholesky/" + std::string(upper ? "upper/" : "lower/") + shape_str(s), {F(s, -1, 1)},
          [upper](const V& x) { return linalg::cholesky(spd(x[0]), upper); },
          each([upper](const Mat& m) {
            const Mat L = naive::cholesky_lower(spd(m));
            return upper ? naive::transpose(L) : L;
          }),
          5));
  // Only the lower triangle is read: noise above the diagonal changes nothing (no gradient
  // check: torch's gradient is symmetric, the finite differences there are zero).
  c.push_back(make(
      "cholesky/reads_lower_triangle", {F({4, 4}, -1, 1), F({4, 4})},
      [](const V& x) { return linalg::cholesky(add(spd(x[0]), triu(x[1], 1))); },
      [](const std::vector<RefTensor>& in) {
        return each([](const Mat& m) { return naive::cholesky_lower(spd(m)); })({in[0]});
      },
      5, false));
  // Q D and D R with D = sign(diag(R)): unique, as Gram-Schmidt's positive-diagonal factors.
  const auto qr_case = [&](const std::string& mode, Shape s) {
    c.push_back(make(
        "qr/" + mode + "/" + shape_str(s), {F(s)},
        [mode](const V& x) {
          auto [Q, R] = linalg::qr(x[0], mode);
          const int64_t k = std::min(x[0].size(-2), x[0].size(-1));
          const Tensor d = sign(diagonal(R, 0, -2, -1));
          const Tensor Qk = Q.narrow(-1, 0, k);
          return flat_cat({mul(Qk, d.unsqueeze(-2)), mul(R.narrow(-2, 0, k), d.unsqueeze(-1))});
        },
        [](const std::vector<RefTensor>& in) {
          std::vector<std::vector<std::vector<double>>> pieces;
          for (const Mat& m : naive::matrices(in[0])) {
            auto [Q, R] = naive::gram_schmidt(m);
            pieces.push_back({Q.a, R.a});
          }
          return flat_pieces(pieces);
        },
        10));
  };
  for (Shape s : {Shape{5, 3}, Shape{3, 5}, Shape{4, 4}, Shape{2, 4, 3}}) qr_case("reduced", s);
  qr_case("complete", {3, 5});
  qr_case("complete", {2, 4, 4});
  // complete with m > n: Q is orthogonal (its extra columns are not unique) and R's extra rows
  // are zero; torch has no gradient there.
  c.push_back(make(
      "qr/complete_tall_orthogonal", {F({5, 3})},
      [](const V& x) {
        auto [Q, R] = linalg::qr(x[0], "complete");
        return flat_cat({matmul(Q.transpose(-2, -1), Q), R.narrow(-2, 3, 2)});
      },
      [](const std::vector<RefTensor>&) {
        RefTensor out{{31}, naive::identity(5).a};
        out.v.resize(31, 0.0);
        return out;
      },
      10, false));
  c.push_back(make(
      "qr/r_mode", {F({5, 3})},
      [](const V& x) {
        const Tensor R = std::get<1>(linalg::qr(x[0], "r"));
        return mul(R, sign(diagonal(R, 0, -2, -1)).unsqueeze(-1));
      },
      each([](const Mat& m) { return naive::gram_schmidt(m).second; }), 10, false));
}

void spectral_cases(std::vector<OpCase>& c) {
  for (Shape s : {Shape{4, 4}, Shape{2, 3, 3}}) {
    for (const char* uplo : {"L", "U"})
      c.push_back(make(
          std::string("eigh/") + uplo + "/" + shape_str(s), {F(s)},
          [uplo](const V& x) {
            auto [L, Vec] = linalg::eigh(sym(x[0]), uplo);
            return flat_cat({L, mul(Vec, column_signs(Vec).unsqueeze(-2))});
          },
          [](const std::vector<RefTensor>& in) {
            std::vector<std::vector<std::vector<double>>> pieces;
            for (const Mat& m : naive::matrices(in[0])) {
              std::vector<double> w;
              Mat E;
              naive::jacobi_eigh(sym(m), w, E);
              fix_signs(column_sums(E), E);
              pieces.push_back({w, E.a});
            }
            return flat_pieces(pieces);
          },
          20));
    c.push_back(make(
        "eigvalsh/" + shape_str(s), {F(s)}, [](const V& x) { return linalg::eigvalsh(sym(x[0])); },
        [](const std::vector<RefTensor>& in) {
          RefTensor out{naive::batch_of(in[0]), {}};
          out.shape.push_back(in[0].shape.back());
          for (const Mat& m : naive::matrices(in[0])) {
            std::vector<double> w;
            Mat E;
            naive::jacobi_eigh(sym(m), w, E);
            out.v.insert(out.v.end(), w.begin(), w.end());
          }
          return out;
        },
        10));
  }
  // eigh reads one triangle only: the upper triangle of a lower-triangle input is ignored.
  c.push_back(make(
      "eigvalsh/reads_one_triangle", {F({4, 4})},
      [](const V& x) {
        return cat({linalg::eigvalsh(tril(x[0]), "L"), linalg::eigvalsh(triu(x[0]), "U")}, 0);
      },
      [](const std::vector<RefTensor>& in) {
        const Mat m = naive::matrices(in[0])[0];
        RefTensor out{{8}, {}};
        for (bool lower : {true, false}) {
          Mat s = m;
          for (int64_t i = 0; i < 4; ++i)
            for (int64_t j = 0; j < 4; ++j)
              s(i, j) =
                  lower ? m(std::max(i, j), std::min(i, j)) : m(std::min(i, j), std::max(i, j));
          std::vector<double> w;
          Mat E;
          naive::jacobi_eigh(s, w, E);
          out.v.insert(out.v.end(), w.begin(), w.end());
        }
        return out;
      },
      10, false));
  const auto svd_case = [&](Shape s, bool full) {
    c.push_back(make(
        std::string("svd/") + (full ? "full/" : "reduced/") + shape_str(s), {F(s)},
        [full](const V& x) {
          auto [U, S, Vh] = linalg::svd(x[0], full);
          const int64_t k = S.size(-1);
          const Tensor Uk = U.narrow(-1, 0, k), Vhk = Vh.narrow(-2, 0, k);
          const Tensor sg = column_signs(Uk);
          return flat_cat({S, mul(Uk, sg.unsqueeze(-2)), mul(Vhk, sg.unsqueeze(-1))});
        },
        [](const std::vector<RefTensor>& in) {
          std::vector<std::vector<std::vector<double>>> pieces;
          for (const Mat& m : naive::matrices(in[0])) {
            std::vector<double> sv;
            Mat U, Vm;
            naive::svd_via_eigh(m, sv, U, Vm);
            Mat Vh = naive::transpose(Vm);
            fix_signs(column_sums(U), U, &Vh);
            pieces.push_back({sv, U.a, Vh.a});
          }
          return flat_pieces(pieces);
        },
        20));
  };
  for (Shape s : {Shape{5, 3}, Shape{3, 5}, Shape{4, 4}, Shape{2, 4, 3}}) svd_case(s, false);
  svd_case({5, 3}, true);
  svd_case({3, 4}, true);
  c.push_back(make(
      "svdvals/(2, 3, 5)", {F({2, 3, 5})}, [](const V& x) { return linalg::svdvals(x[0]); },
      [](const std::vector<RefTensor>& in) {
        RefTensor out{{2, 3}, {}};
        for (const Mat& m : naive::matrices(in[0])) {
          std::vector<double> sv;
          Mat U, Vm;
          naive::svd_via_eigh(m, sv, U, Vm);
          out.v.insert(out.v.end(), sv.begin(), sv.end());
        }
        return out;
      },
      10));
  // pinv of a full-rank matrix: (A^T A)^-1 A^T (tall) or A^T (A A^T)^-1 (wide).
  const auto ref_pinv = [](const Mat& m) {
    const Mat t = naive::transpose(m);
    return m.r >= m.c ? naive::matmul(naive::inverse(naive::matmul(t, m)), t)
                      : naive::matmul(t, naive::inverse(naive::matmul(m, t)));
  };
  for (Shape s : {Shape{5, 3}, Shape{3, 5}, Shape{2, 4, 4}})
    c.push_back(make(
        "pinv/" + shape_str(s), {F(s)}, [](const V& x) { return linalg::pinv(x[0]); },
        each(ref_pinv), 20));
  c.push_back(make(
      "pinv/hermitian", {F({4, 4})},
      [](const V& x) { return linalg::pinv(sym(x[0]), std::nullopt, std::nullopt, true); },
      each([](const Mat& m) { return naive::inverse(sym(m)); }), 20));
  // Rank of products X (m, r) Y (r, n): r, or the count of singular values above the default
  // tolerance in the reference.
  for (auto [m, r, n] : {std::tuple<int64_t, int64_t, int64_t>{4, 2, 5}, {5, 3, 3}, {3, 3, 6}}) {
    OpCase k = make(
        "matrix_rank/" + std::to_string(m) + "x" + std::to_string(n) + "_of_rank_" +
            std::to_string(r),
        {F({2, m, r}), F({2, r, n})},
        [](const V& x) { return linalg::matrix_rank(matmul(x[0], x[1])); },
        [](const std::vector<RefTensor>& in) {
          std::vector<Mat> xs = naive::matrices(in[0]), ys = naive::matrices(in[1]);
          RefTensor out{{2}, {}};
          for (size_t i = 0; i < xs.size(); ++i) {
            std::vector<double> sv;
            Mat U, Vm;
            const Mat p = naive::matmul(xs[i], ys[i]);
            // The Gram matrix of the smaller side has only r nonzero eigenvalues.
            naive::svd_via_eigh(p, sv, U, Vm);
            int64_t rank = 0;
            for (double s : sv) rank += s > 1e-6 * sv[0];
            out.v.push_back(static_cast<double>(rank));
          }
          return out;
        },
        1, false);
    k.exact = true;
    k.dtypes = {DType::float64};  // float32 products' rounding sits near the default tolerance
    c.push_back(k);
  }
  for (const char* drv : {"gelsy", "gelsd", "gels"}) {
    c.push_back(make(
        std::string("lstsq/") + drv, {F({2, 6, 3}), F({2, 6, 2})},
        [drv](const V& x) { return std::get<0>(linalg::lstsq(x[0], x[1], {}, drv)); },
        [](const std::vector<RefTensor>& in) {
          std::vector<Mat> as = naive::matrices(in[0]), bs = naive::matrices(in[1]);
          std::vector<Mat> out;
          for (size_t i = 0; i < as.size(); ++i) {
            const Mat t = naive::transpose(as[i]);
            out.push_back(naive::gauss_solve(naive::matmul(t, as[i]), naive::matmul(t, bs[i])));
          }
          return naive::pack({2}, out, 3, 2);
        },
        20));
  }
  c.push_back(make(
      "lstsq/vector_rhs", {F({6, 4}), F({6})},
      [](const V& x) { return std::get<0>(linalg::lstsq(x[0], x[1])); },
      [](const std::vector<RefTensor>& in) {
        const Mat a = naive::matrices(in[0])[0];
        Mat b(6, 1);
        b.a = in[1].v;
        const Mat t = naive::transpose(a);
        return RefTensor{{4}, naive::gauss_solve(naive::matmul(t, a), naive::matmul(t, b)).a};
      },
      20));
}

// Naive matrix norms over the last two dims.
double ref_matrix_norm(const Mat& m, double ord, bool nuc) {
  if (nuc || std::abs(ord) == 2) {
    std::vector<double> sv;
    Mat U, Vm;
    naive::svd_via_eigh(m, sv, U, Vm);
    if (nuc) return std::accumulate(sv.begin(), sv.end(), 0.0);
    return ord > 0 ? sv.front() : sv.back();
  }
  const bool cols = std::abs(ord) == 1;  // 1: column sums; inf: row sums
  std::vector<double> sums(static_cast<size_t>(cols ? m.c : m.r), 0.0);
  for (int64_t i = 0; i < m.r; ++i)
    for (int64_t j = 0; j < m.c; ++j) sums[cols ? j : i] += std::abs(m(i, j));
  return ord > 0 ? *std::max_element(sums.begin(), sums.end())
                 : *std::min_element(sums.begin(), sums.end());
}

void norm_power_cases(std::vector<OpCase>& c) {
  for (double ord : {1.0, -1.0, 2.0, -2.0, kInf, -kInf})
    c.push_back(make(
        "matrix_norm/ord_" + std::to_string(ord), {F({2, 3, 4})},
        [ord](const V& x) { return linalg::matrix_norm(x[0], ord); },
        each_scalar([ord](const Mat& m) { return ref_matrix_norm(m, ord, false); }), 10));
  c.push_back(make(
      "matrix_norm/nuc", {F({2, 4, 3})},
      [](const V& x) { return linalg::matrix_norm(x[0], "nuc"); },
      each_scalar([](const Mat& m) { return ref_matrix_norm(m, 0, true); }), 10));
  c.push_back(make(
      "matrix_norm/fro", {F({2, 4, 3})}, [](const V& x) { return linalg::matrix_norm(x[0]); },
      each_scalar([](const Mat& m) {
        double s = 0;
        for (double v : m.a) s += v * v;
        return std::sqrt(s);
      })));
  // Other dims, kept: the norm of x[:, i, :]^T-like slices over dims (2, 0), moved back.
  for (double ord : {1.0, 2.0, -kInf})
    c.push_back(make(
        "matrix_norm/dims_2_0_keepdim_ord_" + std::to_string(ord), {F({3, 2, 4})},
        [ord](const V& x) {
          return linalg::matrix_norm(x[0], ord, {2, 0}, true);
        },
        [ord](const std::vector<RefTensor>& in) {
          RefTensor out{{1, 2, 1}, {}};
          for (int64_t i = 0; i < 2; ++i) {
            Mat m(4, 3);  // rows: dim 2, columns: dim 0
            for (int64_t a = 0; a < 3; ++a)
              for (int64_t b = 0; b < 4; ++b) m(b, a) = in[0].at({a, i, b});
            out.v.push_back(ref_matrix_norm(m, ord, false));
          }
          return out;
        },
        10));
  for (int64_t p : {0, 1, 2, 3, 5, -1, -3})
    c.push_back(make(
        "matrix_power/" + std::to_string(p), {F({2, 3, 3}, -1, 1)},
        [p](const V& x) { return linalg::matrix_power(shifted(x[0]), p); }, each([p](const Mat& m) {
          const Mat a = p < 0 ? naive::inverse(shifted(m)) : shifted(m);
          Mat r = naive::identity(m.r);
          for (int64_t i = 0; i < std::abs(p); ++i) r = naive::matmul(r, a);
          return r;
        }),
        10));
  // Chains of 2 to 5, with vectors at the ends, checked against the left-to-right product.
  const std::vector<std::vector<Shape>> chains = {{{3, 4}, {4, 2}},
                                                  {{2, 5}, {5, 3}, {3, 4}},
                                                  {{6}, {6, 2}, {2, 7}, {7}},
                                                  {{3, 8}, {8, 2}, {2, 6}, {6, 1}, {1, 4}},
                                                  {{5}, {5, 3}}};
  for (const auto& shapes : chains) {
    std::vector<InputSpec> in;
    std::string name = "multi_dot/";
    for (const Shape& s : shapes) {
      in.push_back(F(s));
      name += shape_str(s);
    }
    c.push_back(make(
        name, in, [](const V& x) { return linalg::multi_dot(x); },
        [](const std::vector<RefTensor>& ts) {
          Mat acc;
          Shape out;
          for (size_t i = 0; i < ts.size(); ++i) {
            const RefTensor& t = ts[i];
            Mat m = t.shape.size() == 1 ? Mat(i == 0 ? 1 : t.shape[0], i == 0 ? t.shape[0] : 1)
                                        : Mat(t.shape[0], t.shape[1]);
            m.a = t.v;
            if (i == 0 && t.shape.size() == 2) out.push_back(t.shape[0]);
            if (i + 1 == ts.size() && t.shape.size() == 2) out.push_back(t.shape[1]);
            acc = i == 0 ? m : naive::matmul(acc, m);
          }
          return RefTensor{out, acc.a};
        },
        5));
  }
}

std::vector<OpCase> linalg_decomp_cases() {
  std::vector<OpCase> c;
  inverse_cases(c);
  solve_cases(c);
  cholesky_qr_cases(c);
  spectral_cases(c);
  norm_power_cases(c);
  return c;
}

}  // namespace

TEST(OpHarness, LinalgDecompositions) { run_cases(linalg_decomp_cases()); }
TEST(OpHarnessCuda, LinalgDecompositions) { run_cases_on_cuda(linalg_decomp_cases()); }

}  // namespace fabric::harness
