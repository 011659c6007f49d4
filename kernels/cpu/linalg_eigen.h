// The CPU decompositions and solvers behind fabric::linalg (nn/linalg.h), through Eigen: each
// function walks a batch of `batch` contiguous row-major matrices, one after another, in float or
// double. Errors are reported as LAPACK does (an `info` per matrix), never thrown: the op layer
// turns them into torch's messages. No Eigen types cross this header.
#pragma once
#include <cstdint>

namespace fabric::cpu::linalg_eigen {

// The LU functions factor M = A^T, the row-major A's memory read column-major, as torch does for a
// contiguous A (so pivots, infos and roundings follow its LAPACK calls) and without a transposing
// copy: M = P^-1 L U by partial pivoting. Where a caller keeps the factors for a backward, `lu`
// (n * n per matrix) holds them column-major (L's unit diagonal implied) and `perm` (n per matrix)
// P's indices; both may be null where not wanted. `info`: 0, or LAPACK getrf's 1-based index of the
// first exactly zero pivot of U (results are then inf/NaN, as LAPACK's).

// A^-1 of each (n, n) matrix.
template <typename T>
void inverse(const T* a, T* out, int64_t batch, int64_t n, int32_t* info);

// det, sign(det) and log|det| of each (n, n) matrix: det = sign(P) * prod(diag(U)) in diagonal
// order, sign = sign(P) * prod(sgn(U_ii)) and logabsdet = sum(log|U_ii|) (-inf, sign 0 when
// singular). Any of det, sign, logabsdet, lu, perm may be null. n = 0 gives 1, 1, 0.
template <typename T>
void determinant(const T* a, int64_t batch, int64_t n, T* det, T* sign, T* logabsdet, T* lu,
                 int32_t* perm);

// X = A^-1 B for A (n, n) and B, X (n, k) row-major per batch entry.
template <typename T>
void solve(const T* a, const T* b, T* x, int64_t batch, int64_t n, int64_t k, int32_t* info, T* lu,
           int32_t* perm);

// With the factors determinant/solve kept: X = A^-1 B, or A^-T B when transpose, for B, X (n, k)
// row-major (torch's lu_solve, adjoint = transpose).
template <typename T>
void lu_solve(const T* lu, const int32_t* perm, const T* b, T* x, int64_t batch, int64_t n,
              int64_t k, bool transpose);

// With the factors determinant/solve kept: out = A^-T (row-major (n, n)), with every exactly zero
// pivot of U replaced by the dtype's epsilon when perturb_zero_pivots (torch's non-singular
// stand-in when differentiating det at a singular A).
template <typename T>
void lu_inverse_transposed(const T* lu, const int32_t* perm, T* out, int64_t batch, int64_t n,
                           bool perturb_zero_pivots);

// Triangular solves A X = B reading only A's upper (upper) or lower triangle, its diagonal taken
// as ones when unitriangular; X (n, k) row-major. A (n, n) is row-major, or column-major when
// a_col_major (a transposed view read in place); B (n, k) likewise with b_col_major. A zero on
// the diagonal gives inf/NaN, as LAPACK's trtrs-free path in torch.
template <typename T>
void solve_triangular(const T* a, const T* b, T* x, int64_t batch, int64_t n, int64_t k, bool upper,
                      bool unitriangular, bool a_col_major, bool b_col_major);

// Cholesky factor of each (n, n) matrix, reading its lower triangle (upper = false: L, zeros above
// the diagonal) or its upper triangle (upper = true: U = L^T, zeros below). info: 0, or LAPACK
// potrf's order of the first leading minor that is not positive-definite (the factor is then
// unspecified past that point).
template <typename T>
void cholesky(const T* a, T* out, int64_t batch, int64_t n, bool upper, int32_t* info);

// Householder QR of each (m, n) matrix, k = min(m, n), Q formed as LAPACK's orgqr does (blocks
// applied last to first, each to the part of the identity it changes). reduced: q (m, k), r (k, n);
// complete: q (m, m), r (m, n); r_only: r (k, n) and q untouched (may be null). R's diagonal has
// LAPACK geqrf's signs (Eigen's reflections are LAPACK's).
enum class QrMode { reduced, complete, r_only };
template <typename T>
void qr(const T* a, T* q, T* r, int64_t batch, int64_t m, int64_t n, QrMode mode);

// Eigenvalues (ascending, into w: n per matrix) and, when v is not null, orthonormal eigenvectors
// (the columns of each (n, n) v) of the symmetric matrix held in A's lower (upper = false) or
// upper triangle.
template <typename T>
void eigh(const T* a, T* w, T* v, int64_t batch, int64_t n, bool upper);

// Singular values (descending, into s: k = min(m, n) per matrix) and, when u and vh are not null,
// the singular vectors: u (m, k) and vh (k, n), or u (m, m) and vh (n, n) with full_matrices.
// Divide and conquer (BDCSVD, which hands small blocks to Jacobi), as torch's gesdd.
template <typename T>
void svd(const T* a, T* u, T* s, T* vh, int64_t batch, int64_t m, int64_t n, bool full_matrices);

// The pseudo-inverse A^+ = R^-1 Q1^T (out (n, m) row-major) of each (m, n) matrix with m >= n from
// its unpivoted (blocked) QR, where that QR proves A to have full column rank with every singular
// value above max(atol, rtol * s_max), twice over (1 / |A^+|_2 and |R|_2 bounded as lstsq's check
// bounds them): the matrices whose SVD-based pinv (torch's) would keep every singular value, and
// whose A^+ this is, to rounding. ok[i] = 0 where it is not proven (out[i] is then unspecified).
template <typename T>
void pinv_full_rank(const T* a, T* out, int32_t* ok, int64_t batch, int64_t m, int64_t n,
                    double atol, double rtol);

// Least squares min ||A X - B|| for A (m, n), B (m, k), X (n, k); the minimum-norm solution when A
// is rank deficient. gels/gelsy: complete orthogonal decomposition (column-pivoting QR), the
// numerical rank being the count of |R_ii| > rcond * |R_00|; when m >= n >= 32 and the unpivoted
// (blocked) QR proves that count to be n (1 / (|R^-1|_2 |R|_2) > 2 rcond, each norm bounded above
// by min(|X|_F, sqrt(|X|_1 |X|_inf)): every pivoted |R_ii| is at least s_min = 1 / |R^-1|_2 and
// |R_00| at most s_max = |R|_2), the solution comes from that QR instead (gels's);
// gelsd/gelss: the SVD, singular values <= rcond * s_max treated as zero. rank (one per matrix) may
// be null; s (min(m, n) per matrix, the singular values) is written by the SVD drivers only, when
// not null.
enum class LstsqDriver { gels, gelsy, gelsd, gelss };
template <typename T>
void lstsq(const T* a, const T* b, T* x, int64_t* rank, T* s, int64_t batch, int64_t m, int64_t n,
           int64_t k, double rcond, LstsqDriver driver);

}  // namespace fabric::cpu::linalg_eigen
