// The CPU decompositions and solvers behind fabric::linalg (nn/linalg.h), through Eigen: each
// function walks a batch of `batch` contiguous row-major matrices, one after another, in float or
// double. Errors are reported as LAPACK does (an `info` per matrix), never thrown: the op layer
// turns them into torch's messages. No Eigen types cross this header.
#pragma once
#include <cstdint>

namespace fabric::cpu::linalg_eigen {

// A^-1 of each (n, n) matrix by partial-pivoting LU. info: 0, or LAPACK getrf's 1-based index of
// the first exactly zero pivot of U (the inverse is then inf/NaN, as LAPACK's).
template <typename T>
void inverse(const T* a, T* out, int64_t batch, int64_t n, int32_t* info);

// The inverse of the LU factors of each A with every exactly zero pivot replaced by the dtype's
// epsilon: torch's non-singular stand-in when differentiating det at a singular A.
template <typename T>
void inverse_perturbed(const T* a, T* out, int64_t batch, int64_t n);

// det, sign(det) and log|det| of each (n, n) matrix from the partial-pivoting LU of A^T, which is
// what torch factors for a contiguous A: det = sign(P) * prod(diag(U)) in diagonal order, sign =
// sign(P) * prod(sgn(U_ii)) and logabsdet = sum(log|U_ii|) (-inf, sign 0 when singular). Any of
// the outputs may be null. n = 0 gives 1, 1, 0.
template <typename T>
void determinant(const T* a, int64_t batch, int64_t n, T* det, T* sign, T* logabsdet);

// X = A^-1 B for A (n, n) and B (n, k) per batch entry, by partial-pivoting LU; info as inverse's.
template <typename T>
void solve(const T* a, const T* b, T* x, int64_t batch, int64_t n, int64_t k, int32_t* info);

// Triangular solves reading only A's upper (upper) or lower triangle, its diagonal taken as ones
// when unitriangular. left: A X = B with B (n, k); otherwise X A = B with B (k, n). A zero on the
// diagonal gives inf/NaN, as LAPACK's trtrs-free path in torch.
template <typename T>
void solve_triangular(const T* a, const T* b, T* x, int64_t batch, int64_t n, int64_t k, bool upper,
                      bool left, bool unitriangular);

// Cholesky factor of each (n, n) matrix, reading its lower triangle (upper = false: L, zeros above
// the diagonal) or its upper triangle (upper = true: U = L^T, zeros below). info: 0, or LAPACK
// potrf's order of the first leading minor that is not positive-definite (the factor is then
// unspecified past that point).
template <typename T>
void cholesky(const T* a, T* out, int64_t batch, int64_t n, bool upper, int32_t* info);

// Householder QR of each (m, n) matrix, k = min(m, n). reduced: q (m, k), r (k, n); complete:
// q (m, m), r (m, n); r_only: r (k, n) and q untouched (may be null). R's diagonal has LAPACK
// geqrf's signs (Eigen's reflections are LAPACK's).
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

// Least squares min ||A X - B|| for A (m, n), B (m, k), X (n, k); the minimum-norm solution when A
// is rank deficient. gels/gelsy: complete orthogonal decomposition (column-pivoting QR), the
// numerical rank being the count of |R_ii| > rcond * |R_00|; gelsd/gelss: the SVD, singular
// values <= rcond * s_max treated as zero. rank (one per matrix) may be null; s (min(m, n) per
// matrix, the singular values) is written by the SVD drivers only, when not null.
enum class LstsqDriver { gels, gelsy, gelsd, gelss };
template <typename T>
void lstsq(const T* a, const T* b, T* x, int64_t* rank, T* s, int64_t batch, int64_t m, int64_t n,
           int64_t k, double rcond, LstsqDriver driver);

}  // namespace fabric::cpu::linalg_eigen
