// Eigen's decompositions for fabric::linalg (linalg_eigen.h). Eigen's solvers are written for
// column-major matrices; a row-major input read column-major is its transpose, which is what LU
// (torch factors A^T too), the upper-triangle Cholesky and the triangular solves work on in place.
// The rest copy their input into a column-major matrix and write their results back row-major,
// both copies in tiles. The batch entries are independent: an OpenMP loop runs them side by side
// when there are several (Eigen's own GEMM stays single-threaded inside it), each thread reusing
// one workspace for all its matrices.
// Products and sums stay separately rounded (no fused multiply-add contraction, which GCC applies
// to C++ by default): LAPACK's elimination rounds them so, and an input that is exactly singular
// there (torch's det of two equal rows of [1 2 3] and [0 1 4]: 0, and its zero gradient) stays
// exactly singular here instead of leaving a 1e-16 pivot.
#pragma GCC optimize("fp-contract=off")
// GCC 12 flags its own AVX-512 intrinsics (_mm512_undefined_*) as uninitialised once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "kernels/cpu/linalg_eigen.h"

#include <omp.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace fabric::cpu::linalg_eigen {
namespace {

template <typename T>
using ColMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstRowMap = Eigen::Map<const RowMat<T>>;
template <typename T>
using RowMap = Eigen::Map<RowMat<T>>;
template <typename T>
using ConstColMap = Eigen::Map<const ColMat<T>>;
template <typename T>
using ColMap = Eigen::Map<ColMat<T>>;
using Perm = Eigen::PermutationMatrix<Eigen::Dynamic, Eigen::Dynamic, int>;

// Runs every batch entry's work: make_worker() once per thread (the worker owns that thread's
// workspace, sized once and reused for each matrix it takes: small batched matrices would
// otherwise spend a good part of their time in malloc), then worker(i) for the entries it takes;
// in parallel when there are several and enough work that threads pay off (`flops` per entry,
// roughly). Dynamic chunks, so that a thread the OS preempts does not hold the others back.
template <typename MakeWorker>
void for_each_matrix(int64_t batch, double flops, const MakeWorker& make_worker) {
  const int threads = omp_get_max_threads();
  if (batch <= 1 || threads <= 1 || flops * static_cast<double>(batch) <= 2e5) {
    auto work = make_worker();
    for (int64_t i = 0; i < batch; ++i) work(i);
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, batch / (64 * static_cast<int64_t>(threads)));
#pragma omp parallel
  {
    auto work = make_worker();
#pragma omp for schedule(dynamic, chunk)
    for (int64_t i = 0; i < batch; ++i) work(i);
  }
}

double cube(int64_t n) { return static_cast<double>(n) * static_cast<double>(n) * n; }

// dst = src (dst already of src's size) between row- and column-major matrices, in 32 x 32 tiles:
// element by element, one side is walked a whole row or column apart (a 1024 x 1024 float copy
// took 14 ms so, 2 ms in tiles).
template <typename Dst, typename Src>
void copy_transposing(Dst&& dst, const Src& src) {
  constexpr Eigen::Index kTile = 32;
  const Eigen::Index rows = src.rows(), cols = src.cols();
  if (rows * cols <= kTile * kTile * 4) {
    dst = src;
    return;
  }
  for (Eigen::Index j = 0; j < cols; j += kTile)
    for (Eigen::Index i = 0; i < rows; i += kTile) {
      const Eigen::Index bi = std::min(kTile, rows - i), bj = std::min(kTile, cols - j);
      dst.block(i, j, bi, bj) = src.block(i, j, bi, bj);
    }
}

// LAPACK getrf's info: the 1-based index of the first exactly zero pivot, or 0.
template <typename F>
int32_t first_zero_pivot(const F& f) {
  for (Eigen::Index i = 0; i < f.rows(); ++i)
    if (f(i, i) == 0) return static_cast<int32_t>(i + 1);
  return 0;
}

// One thread's LU workspace for n x n matrices: factors in place, M = P^-1 L U.
template <typename T>
struct LuWork {
  ColMat<T> f;                                                       // the factors, when not kept
  Perm p;                                                            // P, when not kept
  Eigen::Transpositions<Eigen::Dynamic, Eigen::Dynamic, int> swaps;  // getrf's ipiv
  explicit LuWork(int64_t n) : f(n, n), p(n), swaps(n) {}

  // Factors the column-major M in place (f: a map or f itself), writes P into perm (its indices)
  // and returns sign(P).
  template <typename F>
  T factor(F& m, int* perm) {
    int nb = 0;
    Eigen::internal::partial_lu_inplace(m, swaps, nb);
    // P's indices from the row swaps (Eigen's PermutationMatrix = Transpositions rule).
    for (Eigen::Index r = 0; r < m.rows(); ++r) perm[r] = static_cast<int>(r);
    for (Eigen::Index r = m.rows() - 1; r >= 0; --r) std::swap(perm[r], perm[swaps.coeff(r)]);
    return nb % 2 ? T(-1) : T(1);
  }
};

// The factors of a kept LU (column-major) and P, as Eigen expressions.
template <typename T>
ConstColMap<T> factors_of(const T* lu, int64_t i, int64_t n) {
  return ConstColMap<T>(lu + i * n * n, n, n);
}
inline auto perm_of(const int32_t* perm, int64_t i, int64_t n) {
  return Eigen::Map<const Eigen::VectorXi>(perm + i * n, n).asPermutation();
}

// x <- M^-1 x = U^-1 L^-1 P x (of_m), or M^-T x = P^T L^-T U^-T x, for the factors f of M.
template <typename F, typename P, typename X>
void solve_with_factors(const F& f, const P& p, X& x, bool of_m) {
  if (of_m) {
    x = p * x;
    f.template triangularView<Eigen::UnitLower>().solveInPlace(x);
    f.template triangularView<Eigen::Upper>().solveInPlace(x);
  } else {
    f.template triangularView<Eigen::Upper>().transpose().solveInPlace(x);
    f.template triangularView<Eigen::UnitLower>().transpose().solveInPlace(x);
    x = p.transpose() * x;
  }
}

// x <- M^-1 = U^-1 L^-1 P (Eigen's PartialPivLU::inverse) for the factors f of M.
template <typename F, typename P, typename X>
void inverse_with_factors(const F& f, const P& p, X& x) {
  x.setZero();
  for (Eigen::Index c = 0; c < x.cols(); ++c) x(p.indices()(c), c) = 1;
  f.template triangularView<Eigen::UnitLower>().solveInPlace(x);
  f.template triangularView<Eigen::Upper>().solveInPlace(x);
}

// A X = B for the triangle `Mode` of A (row- or column-major), in place in X.
template <int Mode, typename T, typename X>
void triangular_solve(const T* a, int64_t n, bool a_col_major, X& x) {
  if (a_col_major) {
    ConstColMap<T>(a, n, n).template triangularView<Mode>().solveInPlace(x);
  } else {
    ConstRowMap<T>(a, n, n).template triangularView<Mode>().solveInPlace(x);
  }
}

}  // namespace

template <typename T>
void inverse(const T* a, T* out, int64_t batch, int64_t n, int32_t* info) {
  for_each_matrix(batch, cube(n), [&] {
    return [&, w = LuWork<T>(n)](int64_t i) mutable {
      info[i] = 0;
      if (n == 0) return;
      w.f = ConstColMap<T>(a + i * n * n, n, n);
      w.factor(w.f, w.p.indices().data());
      info[i] = first_zero_pivot(w.f);
      // A^-1 = M^-T, solved into the row-major output: Eigen's triangular solves run about twice
      // as fast on a row-major right-hand side as on a column-major one.
      RowMap<T> x(out + i * n * n, n, n);
      x.setIdentity();
      solve_with_factors(w.f, w.p, x, false);
    };
  });
}

template <typename T>
void determinant(const T* a, int64_t batch, int64_t n, T* det, T* sign, T* logabsdet, T* lu,
                 int32_t* perm) {
  for_each_matrix(batch, cube(n), [&] {
    return [&, w = LuWork<T>(n)](int64_t i) mutable {
      T p = 1, s = 1, l = 0;
      if (n > 0) {
        ColMap<T> f(lu ? lu + i * n * n : w.f.data(), n, n);
        f = ConstColMap<T>(a + i * n * n, n, n);
        const T perm_sign = w.factor(f, perm ? perm + i * n : w.p.indices().data());
        for (int64_t d = 0; d < n; ++d) {
          const T u = f(d, d);
          p *= u;
          s *= static_cast<T>((u > 0) - (u < 0));
          l += std::log(std::abs(u));
        }
        p = perm_sign * p;
        s = s * perm_sign;
      }
      if (det) det[i] = p;
      if (sign) sign[i] = s;
      if (logabsdet) logabsdet[i] = l;
    };
  });
}

template <typename T>
void solve(const T* a, const T* b, T* x, int64_t batch, int64_t n, int64_t k, int32_t* info, T* lu,
           int32_t* perm) {
  for_each_matrix(batch, cube(n) + 2.0 * n * n * k, [&] {
    return [&, w = LuWork<T>(n)](int64_t i) mutable {
      info[i] = 0;
      if (n == 0) return;
      ColMap<T> f(lu ? lu + i * n * n : w.f.data(), n, n);
      f = ConstColMap<T>(a + i * n * n, n, n);
      int* p = perm ? perm + i * n : w.p.indices().data();
      w.factor(f, p);
      info[i] = first_zero_pivot(f);
      if (k == 0) return;
      // A^-1 B = M^-T B.
      RowMap<T> xi(x + i * n * k, n, k);
      xi = ConstRowMap<T>(b + i * n * k, n, k);
      solve_with_factors(f, Eigen::Map<const Eigen::VectorXi>(p, n).asPermutation(), xi, false);
    };
  });
}

template <typename T>
void lu_solve(const T* lu, const int32_t* perm, const T* b, T* x, int64_t batch, int64_t n,
              int64_t k, bool transpose) {
  for_each_matrix(batch, 2.0 * n * n * k, [&] {
    return [&](int64_t i) {
      if (n == 0 || k == 0) return;
      RowMap<T> xi(x + i * n * k, n, k);
      xi = ConstRowMap<T>(b + i * n * k, n, k);
      // A^-T B = M^-1 B; A^-1 B = M^-T B.
      solve_with_factors(factors_of(lu, i, n), perm_of(perm, i, n), xi, transpose);
    };
  });
}

template <typename T>
void lu_inverse_transposed(const T* lu, const int32_t* perm, T* out, int64_t batch, int64_t n,
                           bool perturb_zero_pivots) {
  for_each_matrix(batch, cube(n), [&] {
    return [&, f = ColMat<T>()](int64_t i) mutable {
      if (n == 0) return;
      const ConstColMap<T> kept = factors_of(lu, i, n);
      // The row-major M^-1 is A^-T.
      RowMap<T> x(out + i * n * n, n, n);
      if (!perturb_zero_pivots || first_zero_pivot(kept) == 0) {
        inverse_with_factors(kept, perm_of(perm, i, n), x);
        return;
      }
      f = kept;
      for (int64_t d = 0; d < n; ++d)
        if (f(d, d) == 0) f(d, d) = std::numeric_limits<T>::epsilon();
      inverse_with_factors(f, perm_of(perm, i, n), x);
    };
  });
}

template <typename T>
void solve_triangular(const T* a, const T* b, T* x, int64_t batch, int64_t n, int64_t k, bool upper,
                      bool unitriangular, bool a_col_major, bool b_col_major) {
  for_each_matrix(batch, static_cast<double>(n) * n * k, [&] {
    return [&](int64_t i) {
      if (n == 0 || k == 0) return;
      RowMap<T> xi(x + i * n * k, n, k);
      if (b_col_major) {
        xi = ConstColMap<T>(b + i * n * k, n, k);
      } else {
        xi = ConstRowMap<T>(b + i * n * k, n, k);
      }
      const T* ai = a + i * n * n;
      if (upper) {
        unitriangular ? triangular_solve<Eigen::UnitUpper>(ai, n, a_col_major, xi)
                      : triangular_solve<Eigen::Upper>(ai, n, a_col_major, xi);
      } else {
        unitriangular ? triangular_solve<Eigen::UnitLower>(ai, n, a_col_major, xi)
                      : triangular_solve<Eigen::Lower>(ai, n, a_col_major, xi);
      }
    };
  });
}

template <typename T>
void cholesky(const T* a, T* out, int64_t batch, int64_t n, bool upper, int32_t* info) {
  // Eigen's blocked Cholesky runs about twice as fast on a column-major lower triangle as on an
  // upper one (its transposed view), more than two tiled transposing copies cost.
  for_each_matrix(batch, cube(n) / 3, [&] {
    return [&, w = ColMat<T>(upper ? 0 : n, upper ? 0 : n)](int64_t i) mutable {
      info[i] = 0;
      if (n == 0) return;
      // Read column-major, `out` holds M = A^T, whose lower triangle is A's upper one.
      ColMap<T> m(out + i * n * n, n, n);
      Eigen::Index failed;
      if (upper) {
        // M's lower triangle in place: L_M read row-major is U = L_M^T.
        m = ConstColMap<T>(a + i * n * n, n, n);
        failed = Eigen::internal::llt_inplace<T, Eigen::Lower>::blocked(m);
        m.template triangularView<Eigen::StrictlyUpper>().setZero();
      } else {
        // A's lower triangle through a column-major copy; L written back row-major.
        copy_transposing(w, ConstRowMap<T>(a + i * n * n, n, n));
        failed = Eigen::internal::llt_inplace<T, Eigen::Lower>::blocked(w);
        w.template triangularView<Eigen::StrictlyUpper>().setZero();
        copy_transposing(RowMap<T>(out + i * n * n, n, n), w);
      }
      if (failed >= 0) {
        info[i] = static_cast<int32_t>(failed + 1);
      } else {
        // potrf also stops at a NaN pivot (Eigen's x <= 0 test lets it through).
        for (int64_t d = 0; d < n && info[i] == 0; ++d)
          if (std::isnan(m(d, d))) info[i] = static_cast<int32_t>(d + 1);
      }
    };
  });
}

namespace {

// One thread's Householder QR workspace: the reflectors below R in v (column-major, m x n) and
// their coefficients in tau, as geqrf leaves them.
template <typename T>
struct QrWork {
  ColMat<T> v;
  Eigen::Matrix<T, Eigen::Dynamic, 1> tau, ws;
  QrWork(int64_t m, int64_t n) : v(m, n), tau(std::min(m, n)), ws(std::max(m, n)) {}

  // Factors the row-major (m, n) matrix at a. HouseholderQR's fixed block of 48 columns is slow
  // for narrow matrices (64 x 64: 1.6x the time of blocks of 16, an unblocked 8 x 8 1.35x
  // faster), so the block follows the width, as geqrf's does.
  void factor(const T* a) {
    copy_transposing(v, ConstRowMap<T>(a, v.rows(), v.cols()));
    const Eigen::Index cols = v.cols();
    if (cols < 16) {
      Eigen::internal::householder_qr_inplace_unblocked(v, tau, ws.data());
    } else {
      Eigen::internal::householder_qr_inplace_blocked<ColMat<T>, decltype(tau)>::run(
          v, tau, cols <= 256 ? 16 : 48, ws.data());
    }
  }
  auto r(int64_t rows) const { return v.topRows(rows).template triangularView<Eigen::Upper>(); }
  auto householder_q() const { return Eigen::householderSequence(v, tau); }

  // Q's first q.cols() columns into q (m, q.cols()), as LAPACK's orgqr: the reflectors from last
  // to first, each (or each block of 32) applied only to the trailing rows and columns it
  // changes, the rest of the identity being untouched (2/3 of the flops of applying Q to the
  // whole identity when square). Into a row-major q, which Eigen's products write faster here.
  template <typename Q>
  void form_q(Q& q) {
    using Eigen::Index;
    const Index m = v.rows(), k = tau.size(), cols = q.cols();
    constexpr Index kBlock = 32;
    q.setIdentity();
    if (k < 2 * kBlock) {
      for (Index j = k - 1; j >= 0; --j) {
        auto corner = q.block(j, j, m - j, cols - j);
        corner.applyHouseholderOnTheLeft(v.col(j).tail(m - j - 1), tau(j), ws.data());
      }
      return;
    }
    for (Index end = k; end > 0;) {
      const Index start = std::max<Index>(0, end - kBlock);
      auto corner = q.block(start, start, m - start, cols - start);
      Eigen::internal::apply_block_householder_on_the_left(
          corner, v.block(start, start, m - start, end - start), tau.segment(start, end - start),
          true);
      end = start;
    }
  }
};

}  // namespace

template <typename T>
void qr(const T* a, T* q, T* r, int64_t batch, int64_t m, int64_t n, QrMode mode) {
  const int64_t k = std::min(m, n);
  const int64_t q_cols = mode == QrMode::complete ? m : k;
  const int64_t r_rows = mode == QrMode::complete ? m : k;
  for_each_matrix(batch, 2.0 * m * n * k, [&] {
    return [&, w = QrWork<T>(m, n)](int64_t i) mutable {
      RowMap<T> r_out(r + i * r_rows * n, r_rows, n);
      if (m == 0 || n == 0) {
        r_out.setZero();
        if (mode != QrMode::r_only) RowMap<T>(q + i * m * q_cols, m, q_cols).setIdentity();
        return;
      }
      w.factor(a + i * m * n);
      copy_transposing(r_out, w.v.topRows(r_rows));
      r_out.template triangularView<Eigen::StrictlyLower>().setZero();
      if (mode == QrMode::r_only) return;
      RowMap<T> q_out(q + i * m * q_cols, m, q_cols);
      w.form_q(q_out);
    };
  });
}

namespace {

// One thread's eigh workspace. With eigenvectors from n = kBlockedQ on, it runs
// SelfAdjointEigenSolver::compute's steps itself so as to form the tridiagonalization's Q
// blocked: Eigen forms Q in place over the Householder vectors, one reflector at a time
// (matrix-vector products), which was a third of a 1024 x 1024 eigh. The steps and their
// roundings are Eigen's otherwise: the lower triangle scaled by its largest |a_ij|, the
// tridiagonal QR iteration (at most 30 n steps) rotating Q, eigenvalues scaled back.
template <typename T>
struct EighWork {
  static constexpr int64_t kBlockedQ = 48;
  Eigen::SelfAdjointEigenSolver<ColMat<T>> es;
  ColMat<T> mat, q;
  Eigen::Matrix<T, Eigen::Dynamic, 1> diag, subdiag, hcoeffs;
  explicit EighWork(int64_t n) : es(n) {}

  // The eigenvalues into w and, when v is not null, the eigenvectors (row-major) into v, of the
  // symmetric matrix in the lower triangle of `in` (a row-major map or its transpose). False
  // when the QR iteration did not converge.
  template <typename In>
  bool run(const In& in, T* w, T* v) {
    const Eigen::Index n = in.rows();
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> w_out(w, n);
    if (!v || n < kBlockedQ) {
      es.compute(in, v ? Eigen::ComputeEigenvectors : Eigen::EigenvaluesOnly);
      if (es.info() != Eigen::Success) return false;
      w_out = es.eigenvalues();
      if (v) copy_transposing(RowMap<T>(v, n, n), es.eigenvectors());
      return true;
    }
    mat.resize(n, n);
    copy_transposing(mat, in);
    mat.template triangularView<Eigen::StrictlyUpper>().setZero();
    T scale = mat.cwiseAbs().maxCoeff();
    if (scale == T(0)) scale = T(1);
    mat.template triangularView<Eigen::Lower>() /= scale;
    hcoeffs.resize(n - 1);
    Eigen::internal::tridiagonalization_inplace(mat, hcoeffs);
    diag = mat.diagonal();
    subdiag = mat.template diagonal<-1>();
    // Not aliased with mat: HouseholderSequence::evalTo applies the reflectors blocked and only
    // to the part of the identity they change.
    q = Eigen::householderSequence(mat, hcoeffs).setLength(n - 1).setShift(1);
    const Eigen::ComputationInfo info =
        Eigen::internal::computeFromTridiagonal_impl(diag, subdiag, 30, true, q);
    if (info != Eigen::Success) return false;
    w_out = diag * scale;
    copy_transposing(RowMap<T>(v, n, n), q);
    return true;
  }
};

}  // namespace

template <typename T>
void eigh(const T* a, T* w, T* v, int64_t batch, int64_t n, bool upper) {
  for_each_matrix(batch, 9.0 * cube(n), [&] {
    return [&, work = EighWork<T>(n)](int64_t i) mutable {
      if (n == 0) return;
      const ConstRowMap<T> in(a + i * n * n, n, n);
      T* vi = v ? v + i * n * n : nullptr;
      // Eigen reads the lower triangle: A's own, or A^T's for the upper one.
      const bool ok = upper ? work.run(in.transpose(), w + i * n, vi) : work.run(in, w + i * n, vi);
      if (!ok) {
        // syevd's failure to converge: NaN rather than a wrong answer.
        Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(w + i * n, n)
            .setConstant(std::numeric_limits<T>::quiet_NaN());
        if (vi) RowMap<T>(vi, n, n).setConstant(std::numeric_limits<T>::quiet_NaN());
      }
    };
  });
}

template <typename T>
void svd(const T* a, T* u, T* s, T* vh, int64_t batch, int64_t m, int64_t n, bool full_matrices) {
  const int64_t k = std::min(m, n);
  const bool vectors = u != nullptr && vh != nullptr;
  const int64_t u_cols = full_matrices ? m : k, vh_rows = full_matrices ? n : k;
  unsigned options = 0;
  if (vectors)
    options = full_matrices ? (Eigen::ComputeFullU | Eigen::ComputeFullV)
                            : (Eigen::ComputeThinU | Eigen::ComputeThinV);
  for_each_matrix(batch, 12.0 * m * n * k, [&] {
    return [&, in = ColMat<T>(m, n)](int64_t i) mutable {
      if (k == 0) {
        // No singular values: the full bases are the identity, as LAPACK's.
        if (vectors) {
          RowMap<T>(u + i * m * u_cols, m, u_cols).setIdentity();
          RowMap<T>(vh + i * vh_rows * n, vh_rows, n).setIdentity();
        }
        return;
      }
      copy_transposing(in, ConstRowMap<T>(a + i * m * n, m, n));
      const Eigen::BDCSVD<ColMat<T>> d(in, options);
      Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(s + i * k, k) = d.singularValues();
      if (!vectors) return;
      copy_transposing(RowMap<T>(u + i * m * u_cols, m, u_cols), d.matrixU());
      RowMap<T>(vh + i * vh_rows * n, vh_rows, n) = d.matrixV().transpose();
    };
  });
}

namespace {

// An upper bound on the 2-norm of a matrix: min(|X|_F, sqrt(|X|_1 |X|_inf)).
double norm2_bound(double fro, double one, double inf) {
  return std::min(fro, std::sqrt(one * inf));
}

template <typename X>
double norm2_bound(const X& x) {
  return norm2_bound(static_cast<double>(x.norm()),
                     static_cast<double>(x.cwiseAbs().colwise().sum().maxCoeff()),
                     static_cast<double>(x.cwiseAbs().rowwise().sum().maxCoeff()));
}

// The same for the upper triangle of the column-major v's first n columns (R), column by column.
template <typename T>
double upper_norm2_bound(const ColMat<T>& v, Eigen::Index n) {
  double fro = 0, one = 0;
  Eigen::VectorXd row_sums = Eigen::VectorXd::Zero(n);
  for (Eigen::Index j = 0; j < n; ++j) {
    const auto col = v.col(j).head(j + 1).template cast<double>();
    fro += col.squaredNorm();
    one = std::max(one, col.cwiseAbs().sum());
    row_sums.head(j + 1) += col.cwiseAbs();
  }
  return norm2_bound(std::sqrt(fro), one, row_sums.maxCoeff());
}

// Whether the unpivoted QR of A (m >= n, factored in w) proves that the column-pivoting QR would
// find rank n under the threshold rcond (linalg_eigen.h's lstsq): every |R_ii| of any column order
// is at least s_min >= 1 / |R^-1|_2 and |R_00| at most s_max = |R|_2, so
// 1 / (|R^-1|_2 |R|_2) > rcond suffices; both norms are bounded above, and the factor 2 covers the
// rounding of R. A matrix near that rank is left to the pivoting QR. rinv: workspace.
template <typename T>
bool full_rank_by_qr(QrWork<T>& w, double rcond, RowMat<T>& rinv) {
  const Eigen::Index n = w.v.cols();
  rinv.setIdentity(n, n);
  w.r(n).solveInPlace(rinv);
  // NaN (a zero pivot, a NaN input) fails the test too.
  return 1.0 / (norm2_bound(rinv) * upper_norm2_bound(w.v, n)) > 2.0 * rcond;
}

}  // namespace

template <typename T>
void lstsq(const T* a, const T* b, T* x, int64_t* rank, T* s, int64_t batch, int64_t m, int64_t n,
           int64_t k, double rcond, LstsqDriver driver) {
  const int64_t kmin = std::min(m, n);
  const bool by_svd = driver == LstsqDriver::gelsd || driver == LstsqDriver::gelss;
  // Below this width the column-pivoting QR is as fast as the unpivoted one and its check.
  constexpr int64_t kUnpivoted = 32;
  const bool try_unpivoted = !by_svd && m >= n && n >= kUnpivoted;
  for_each_matrix(batch, 4.0 * m * n * kmin + 2.0 * m * n * k, [&] {
    return [&, w = QrWork<T>(try_unpivoted ? m : 0, try_unpivoted ? n : 0), rinv = RowMat<T>(),
            qtb = ColMat<T>()](int64_t i) mutable {
      RowMap<T> x_out(x + i * n * k, n, k);
      if (kmin == 0) {
        x_out.setZero();
        if (rank) rank[i] = 0;
        return;
      }
      const ConstRowMap<T> am(a + i * m * n, m, n);
      const ConstRowMap<T> bm(b + i * m * k, m, k);
      if (by_svd) {
        const Eigen::BDCSVD<ColMat<T>> d(ColMat<T>(am), Eigen::ComputeThinU | Eigen::ComputeThinV);
        const auto& sv = d.singularValues();
        const T threshold = static_cast<T>(rcond) * sv(0);
        int64_t r = 0;
        while (r < kmin && sv(r) > threshold) ++r;
        const ColMat<T> utb = d.matrixU().leftCols(r).transpose() * bm;
        x_out = d.matrixV().leftCols(r) * (sv.head(r).cwiseInverse().asDiagonal() * utb);
        if (rank) rank[i] = r;
        if (s) Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(s + i * kmin, kmin) = sv;
        return;
      }
      if (try_unpivoted) {
        // Eigen's column-pivoting QR is unblocked (matrix-vector products only): where the
        // blocked unpivoted QR shows A to have full column rank, its solution is gels's.
        w.factor(a + i * m * n);
        if (full_rank_by_qr(w, rcond, rinv)) {
          qtb = bm;
          qtb.applyOnTheLeft(w.householder_q().transpose());
          x_out = qtb.topRows(n);
          w.r(n).solveInPlace(x_out);
          if (rank) rank[i] = n;
          return;
        }
      }
      Eigen::CompleteOrthogonalDecomposition<ColMat<T>> cod(m, n);
      cod.setThreshold(static_cast<T>(rcond));
      cod.compute(am);
      x_out = cod.solve(bm);
      if (rank) rank[i] = cod.rank();
    };
  });
}

template <typename T>
void pinv_full_rank(const T* a, T* out, int32_t* ok, int64_t batch, int64_t m, int64_t n,
                    double atol, double rtol) {
  for_each_matrix(batch, 4.0 * m * n * n, [&] {
    return [&, w = QrWork<T>(m, n)](int64_t i) mutable {
      w.factor(a + i * m * n);
      // Q1 formed column-major in `out` is Q1^T row-major; R^-1 Q1^T then solved in place.
      ColMap<T> q1(out + i * n * m, m, n);
      w.form_q(q1);
      RowMap<T> p(out + i * n * m, n, m);
      w.r(n).solveInPlace(p);
      // s_min = 1 / |A^+|_2 >= 1 / bound(A^+), s_max = |R|_2 <= bound(R). NaN fails.
      const double s_min = 1.0 / norm2_bound(p);
      ok[i] = s_min > 2.0 * std::max(atol, rtol * upper_norm2_bound(w.v, n)) ? 1 : 0;
    };
  });
}

#define FABRIC_LINALG_EIGEN_INSTANTIATE(T)                                                         \
  template void inverse<T>(const T*, T*, int64_t, int64_t, int32_t*);                              \
  template void determinant<T>(const T*, int64_t, int64_t, T*, T*, T*, T*, int32_t*);              \
  template void solve<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int32_t*, T*,          \
                         int32_t*);                                                                \
  template void lu_solve<T>(const T*, const int32_t*, const T*, T*, int64_t, int64_t, int64_t,     \
                            bool);                                                                 \
  template void lu_inverse_transposed<T>(const T*, const int32_t*, T*, int64_t, int64_t, bool);    \
  template void solve_triangular<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool, bool, \
                                    bool, bool);                                                   \
  template void cholesky<T>(const T*, T*, int64_t, int64_t, bool, int32_t*);                       \
  template void qr<T>(const T*, T*, T*, int64_t, int64_t, int64_t, QrMode);                        \
  template void eigh<T>(const T*, T*, T*, int64_t, int64_t, bool);                                 \
  template void svd<T>(const T*, T*, T*, T*, int64_t, int64_t, int64_t, bool);                     \
  template void pinv_full_rank<T>(const T*, T*, int32_t*, int64_t, int64_t, int64_t, double,       \
                                  double);                                                         \
  template void lstsq<T>(const T*, const T*, T*, int64_t*, T*, int64_t, int64_t, int64_t, int64_t, \
                         double, LstsqDriver);

FABRIC_LINALG_EIGEN_INSTANTIATE(float)
FABRIC_LINALG_EIGEN_INSTANTIATE(double)

}  // namespace fabric::cpu::linalg_eigen
