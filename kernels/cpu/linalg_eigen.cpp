// Eigen's decompositions for fabric::linalg (linalg_eigen.h): each row-major input is copied into
// a column-major Eigen matrix (the layout Eigen's solvers are written for), decomposed, and the
// factors written back row-major. The batch entries are independent: an OpenMP loop runs them
// side by side when there are several (Eigen's own GEMM stays single-threaded inside it).
// Products and sums stay separately rounded (no fused multiply-add contraction, which GCC applies
// to C++ by default): LAPACK's elimination rounds them so, and an input that is exactly singular
// there (torch's det of two equal rows of [1 2 3] and [0 1 4]: 0, and its zero gradient) stays
// exactly singular here instead of leaving a 1e-16 pivot.
#pragma GCC optimize("fp-contract=off")
// GCC 12 flags its own AVX-512 intrinsics (_mm512_undefined_*) as uninitialised once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "kernels/cpu/linalg_eigen.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>

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

// Runs body(i) for every batch entry; in parallel when there are several and enough work that
// threads pay off (`flops` per entry, roughly).
template <typename Body>
void for_each_matrix(int64_t batch, double flops, Body&& body) {
  const bool parallel = batch > 1 && flops * static_cast<double>(batch) > 2e5;
#pragma omp parallel for schedule(dynamic) if (parallel)
  for (int64_t i = 0; i < batch; ++i) body(i);
}

double cube(int64_t n) { return static_cast<double>(n) * static_cast<double>(n) * n; }

// LAPACK getrf's info: the 1-based index of the first exactly zero pivot, or 0.
template <typename LU>
int32_t first_zero_pivot(const LU& lu) {
  const auto& f = lu.matrixLU();
  for (Eigen::Index i = 0; i < f.rows(); ++i)
    if (f(i, i) == 0) return static_cast<int32_t>(i + 1);
  return 0;
}

template <int Mode, typename T>
void triangular_solve_in_place(const ColMat<T>& a, ColMat<T>& x, bool left) {
  if (left) {
    a.template triangularView<Mode>().template solveInPlace<Eigen::OnTheLeft>(x);
  } else {
    a.template triangularView<Mode>().template solveInPlace<Eigen::OnTheRight>(x);
  }
}

}  // namespace

template <typename T>
void inverse(const T* a, T* out, int64_t batch, int64_t n, int32_t* info) {
  for_each_matrix(batch, cube(n), [&](int64_t i) {
    info[i] = 0;
    if (n == 0) return;
    const Eigen::PartialPivLU<ColMat<T>> lu(ColMat<T>(ConstRowMap<T>(a + i * n * n, n, n)));
    info[i] = first_zero_pivot(lu);
    RowMap<T>(out + i * n * n, n, n) = lu.inverse();
  });
}

template <typename T>
void inverse_perturbed(const T* a, T* out, int64_t batch, int64_t n) {
  for_each_matrix(batch, cube(n), [&](int64_t i) {
    if (n == 0) return;
    const Eigen::PartialPivLU<ColMat<T>> lu(ColMat<T>(ConstRowMap<T>(a + i * n * n, n, n)));
    ColMat<T> f = lu.matrixLU();
    for (int64_t d = 0; d < n; ++d)
      if (f(d, d) == 0) f(d, d) = std::numeric_limits<T>::epsilon();
    // A = P^-1 L U, so A^-1 = U^-1 L^-1 P.
    ColMat<T> x = lu.permutationP() * ColMat<T>::Identity(n, n);
    f.template triangularView<Eigen::UnitLower>().solveInPlace(x);
    f.template triangularView<Eigen::Upper>().solveInPlace(x);
    RowMap<T>(out + i * n * n, n, n) = x;
  });
}

template <typename T>
void determinant(const T* a, int64_t batch, int64_t n, T* det, T* sign, T* logabsdet) {
  for_each_matrix(batch, cube(n), [&](int64_t i) {
    T p = 1, s = 1, l = 0;
    if (n > 0) {
      // The row-major A read column-major is A^T: torch's LU of A.mH() for a contiguous A.
      const Eigen::PartialPivLU<ColMat<T>> lu(
          ColMat<T>(Eigen::Map<const ColMat<T>>(a + i * n * n, n, n)));
      const T perm = static_cast<T>(lu.permutationP().determinant());
      const auto& f = lu.matrixLU();
      for (int64_t d = 0; d < n; ++d) {
        const T u = f(d, d);
        p *= u;
        s *= static_cast<T>((u > 0) - (u < 0));
        l += std::log(std::abs(u));
      }
      p = perm * p;
      s = s * perm;
    }
    if (det) det[i] = p;
    if (sign) sign[i] = s;
    if (logabsdet) logabsdet[i] = l;
  });
}

template <typename T>
void solve(const T* a, const T* b, T* x, int64_t batch, int64_t n, int64_t k, int32_t* info) {
  for_each_matrix(batch, cube(n) + 2.0 * n * n * k, [&](int64_t i) {
    info[i] = 0;
    if (n == 0 || k == 0) return;
    const Eigen::PartialPivLU<ColMat<T>> lu(ColMat<T>(ConstRowMap<T>(a + i * n * n, n, n)));
    info[i] = first_zero_pivot(lu);
    RowMap<T>(x + i * n * k, n, k) = lu.solve(ColMat<T>(ConstRowMap<T>(b + i * n * k, n, k)));
  });
}

template <typename T>
void solve_triangular(const T* a, const T* b, T* x, int64_t batch, int64_t n, int64_t k, bool upper,
                      bool left, bool unitriangular) {
  const int64_t rows = left ? n : k, cols = left ? k : n;
  for_each_matrix(batch, static_cast<double>(n) * n * k, [&](int64_t i) {
    if (n == 0 || k == 0) return;
    const ColMat<T> m = ConstRowMap<T>(a + i * n * n, n, n);
    ColMat<T> sol = ConstRowMap<T>(b + i * n * k, rows, cols);
    if (upper) {
      unitriangular ? triangular_solve_in_place<Eigen::UnitUpper>(m, sol, left)
                    : triangular_solve_in_place<Eigen::Upper>(m, sol, left);
    } else {
      unitriangular ? triangular_solve_in_place<Eigen::UnitLower>(m, sol, left)
                    : triangular_solve_in_place<Eigen::Lower>(m, sol, left);
    }
    RowMap<T>(x + i * n * k, rows, cols) = sol;
  });
}

template <typename T>
void cholesky(const T* a, T* out, int64_t batch, int64_t n, bool upper, int32_t* info) {
  for_each_matrix(batch, cube(n) / 3, [&](int64_t i) {
    info[i] = 0;
    if (n == 0) return;
    const ConstRowMap<T> in(a + i * n * n, n, n);
    // The triangle read is the lower one of m: A's own, or A^T's for the upper triangle.
    ColMat<T> m = upper ? ColMat<T>(in.transpose()) : ColMat<T>(in);
    const Eigen::Index failed = Eigen::internal::llt_inplace<T, Eigen::Lower>::blocked(m);
    if (failed >= 0) {
      info[i] = static_cast<int32_t>(failed + 1);
    } else {
      // potrf also stops at a NaN pivot (Eigen's x <= 0 test lets it through).
      for (int64_t d = 0; d < n && info[i] == 0; ++d)
        if (std::isnan(m(d, d))) info[i] = static_cast<int32_t>(d + 1);
    }
    m.template triangularView<Eigen::StrictlyUpper>().setZero();
    RowMap<T> o(out + i * n * n, n, n);
    if (upper) {
      o = m.transpose();
    } else {
      o = m;
    }
  });
}

template <typename T>
void qr(const T* a, T* q, T* r, int64_t batch, int64_t m, int64_t n, QrMode mode) {
  const int64_t k = std::min(m, n);
  const int64_t q_cols = mode == QrMode::complete ? m : k;
  const int64_t r_rows = mode == QrMode::complete ? m : k;
  for_each_matrix(batch, 2.0 * m * n * k, [&](int64_t i) {
    RowMap<T> r_out(r + i * r_rows * n, r_rows, n);
    if (m == 0 || n == 0) {
      r_out.setZero();
      if (mode != QrMode::r_only) RowMap<T>(q + i * m * q_cols, m, q_cols).setIdentity();
      return;
    }
    const Eigen::HouseholderQR<ColMat<T>> h(ColMat<T>(ConstRowMap<T>(a + i * m * n, m, n)));
    r_out = h.matrixQR().topRows(r_rows).template triangularView<Eigen::Upper>();
    if (mode == QrMode::r_only) return;
    ColMat<T> qm = ColMat<T>::Identity(m, q_cols);
    qm.applyOnTheLeft(h.householderQ());
    RowMap<T>(q + i * m * q_cols, m, q_cols) = qm;
  });
}

template <typename T>
void eigh(const T* a, T* w, T* v, int64_t batch, int64_t n, bool upper) {
  for_each_matrix(batch, 9.0 * cube(n), [&](int64_t i) {
    if (n == 0) return;
    const ConstRowMap<T> in(a + i * n * n, n, n);
    // Eigen reads the lower triangle: A's own, or A^T's for the upper one.
    const ColMat<T> m = upper ? ColMat<T>(in.transpose()) : ColMat<T>(in);
    const Eigen::SelfAdjointEigenSolver<ColMat<T>> es(
        m, v ? Eigen::ComputeEigenvectors : Eigen::EigenvaluesOnly);
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> w_out(w + i * n, n);
    if (es.info() != Eigen::Success) {
      // syevd's failure to converge: NaN rather than a wrong answer.
      w_out.setConstant(std::numeric_limits<T>::quiet_NaN());
      if (v) RowMap<T>(v + i * n * n, n, n).setConstant(std::numeric_limits<T>::quiet_NaN());
      return;
    }
    w_out = es.eigenvalues();
    if (v) RowMap<T>(v + i * n * n, n, n) = es.eigenvectors();
  });
}

template <typename T>
void svd(const T* a, T* u, T* s, T* vh, int64_t batch, int64_t m, int64_t n, bool full_matrices) {
  const int64_t k = std::min(m, n);
  const bool vectors = u != nullptr && vh != nullptr;
  const int64_t u_cols = full_matrices ? m : k, vh_rows = full_matrices ? n : k;
  for_each_matrix(batch, 12.0 * m * n * k, [&](int64_t i) {
    if (k == 0) {
      // No singular values: the full bases are the identity, as LAPACK's.
      if (vectors) {
        RowMap<T>(u + i * m * u_cols, m, u_cols).setIdentity();
        RowMap<T>(vh + i * vh_rows * n, vh_rows, n).setIdentity();
      }
      return;
    }
    const ColMat<T> in = ConstRowMap<T>(a + i * m * n, m, n);
    unsigned options = 0;
    if (vectors)
      options = full_matrices ? (Eigen::ComputeFullU | Eigen::ComputeFullV)
                              : (Eigen::ComputeThinU | Eigen::ComputeThinV);
    const Eigen::BDCSVD<ColMat<T>> d(in, options);
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(s + i * k, k) = d.singularValues();
    if (!vectors) return;
    RowMap<T>(u + i * m * u_cols, m, u_cols) = d.matrixU();
    RowMap<T>(vh + i * vh_rows * n, vh_rows, n) = d.matrixV().transpose();
  });
}

template <typename T>
void lstsq(const T* a, const T* b, T* x, int64_t* rank, T* s, int64_t batch, int64_t m, int64_t n,
           int64_t k, double rcond, LstsqDriver driver) {
  const int64_t kmin = std::min(m, n);
  const bool by_svd = driver == LstsqDriver::gelsd || driver == LstsqDriver::gelss;
  for_each_matrix(batch, 4.0 * m * n * kmin + 2.0 * m * n * k, [&](int64_t i) {
    RowMap<T> x_out(x + i * n * k, n, k);
    if (kmin == 0) {
      x_out.setZero();
      if (rank) rank[i] = 0;
      return;
    }
    const ColMat<T> am = ConstRowMap<T>(a + i * m * n, m, n);
    const ColMat<T> bm = ConstRowMap<T>(b + i * m * k, m, k);
    if (by_svd) {
      const Eigen::BDCSVD<ColMat<T>> d(am, Eigen::ComputeThinU | Eigen::ComputeThinV);
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
    Eigen::CompleteOrthogonalDecomposition<ColMat<T>> cod(m, n);
    cod.setThreshold(static_cast<T>(rcond));
    cod.compute(am);
    x_out = cod.solve(bm);
    if (rank) rank[i] = cod.rank();
  });
}

#define FABRIC_LINALG_EIGEN_INSTANTIATE(T)                                                         \
  template void inverse<T>(const T*, T*, int64_t, int64_t, int32_t*);                              \
  template void inverse_perturbed<T>(const T*, T*, int64_t, int64_t);                              \
  template void determinant<T>(const T*, int64_t, int64_t, T*, T*, T*);                            \
  template void solve<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int32_t*);             \
  template void solve_triangular<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool, bool, \
                                    bool);                                                         \
  template void cholesky<T>(const T*, T*, int64_t, int64_t, bool, int32_t*);                       \
  template void qr<T>(const T*, T*, T*, int64_t, int64_t, int64_t, QrMode);                        \
  template void eigh<T>(const T*, T*, T*, int64_t, int64_t, bool);                                 \
  template void svd<T>(const T*, T*, T*, T*, int64_t, int64_t, int64_t, bool);                     \
  template void lstsq<T>(const T*, const T*, T*, int64_t*, T*, int64_t, int64_t, int64_t, int64_t, \
                         double, LstsqDriver);

FABRIC_LINALG_EIGEN_INSTANTIATE(float)
FABRIC_LINALG_EIGEN_INSTANTIATE(double)

}  // namespace fabric::cpu::linalg_eigen
