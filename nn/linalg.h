// torch.linalg's core: inverses, determinants, solvers, decompositions (Cholesky, QR, symmetric
// eigendecomposition, SVD), pseudo-inverse, rank, norms and chained products, as free functions
// in fabric::linalg with torch 1.13's semantics: shapes (batching over every leading dim, with
// broadcasting where torch broadcasts), defaults, output order, dtypes and error texts, and its
// gradients (torch's derivatives.yaml / FunctionsManual formulas).
//
// Dtypes: float32 and float64, as torch's CPU linalg. float16/bfloat16 raise DTypeError naming the
// supported dtypes, in torch's words (e.g. `"lu_cpu" not implemented for 'BFloat16'`); integer
// inputs raise DTypeError too. The norms, matrix_power and multi_dot are compositions of fabric's
// ops and take whatever those take.
//
// Devices: the factorizations run on the CPU through Eigen (kernels/cpu/linalg_eigen.h, one matrix
// at a time, batches in parallel). A CUDA input is copied to the host, decomposed, and the results
// copied back to its device; the backward formulas are fabric ops on the input's device.
//
// Errors: shape and dtype errors are ShapeError/DTypeError with torch's text. A singular matrix in
// inv/solve, or one that is not positive-definite in cholesky, raises ValueError with torch's
// LinAlgError text ("linalg.inv: The diagonal element 2 is zero, the inversion could not be
// completed because the input matrix is singular."), naming the batch element when the input is
// batched ("linalg.inv: (Batch element 1): ..."). The *_ex variants return LAPACK's info instead.
//
// Gradients: every output that torch differentiates is differentiable here, and the backward
// formulas are made of fabric ops (linalg's own included), so create_graph gives gradients that
// differentiate again. Non-unique outputs (eigenvectors, singular vectors, Q's column signs) are
// Eigen's, which may differ from LAPACK's by the sign of a column; a loss should not depend on
// that choice (torch's rule too).
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <tuple>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::linalg {

// ---- inverses and determinants (partial-pivoting LU) ----------------------------------------
// A (..., n, n) -> A^-1. A singular matrix (an exactly zero pivot) raises ValueError. 0x0 -> 0x0.
Tensor inv(const Tensor& A);
// (inverse, info): info (int32, the batch shape) is 0 or LAPACK getrf's index of the first zero
// pivot (the inverse is then inf/NaN). check_errors raises as inv does ("linalg.inv_ex: ...").
std::tuple<Tensor, Tensor> inv_ex(const Tensor& A, bool check_errors = false);
// det(A) for A (..., n, n) -> (...); det of a 0x0 matrix is 1. The gradient is det * A^-T; at a
// singular A it follows torch: zero in a plain backward (torch's LU path), the adjugate through
// the SVD under create_graph (|det| < 100 eps), so second derivatives exist there.
Tensor det(const Tensor& A);
// (sign, logabsdet): sign is -1, 0 or 1, logabsdet = log|det| (-inf when singular). The gradient
// of logabsdet is A^-T; sign's is zero.
std::tuple<Tensor, Tensor> slogdet(const Tensor& A);

// ---- solvers ----------------------------------------------------------------------------------
// X with A X = B (left) or X A = B (!left). A (*, n, n); B (*, n, k), or a vector: (n) or A's
// shape minus the last dim (then X is a vector too; not allowed with !left). Batch dims
// broadcast. A singular A raises ValueError ("torch.linalg.solve: The solver failed because the
// input matrix is singular.").
Tensor solve(const Tensor& A, const Tensor& B, bool left = true);
// (result, info) without raising unless check_errors.
std::tuple<Tensor, Tensor> solve_ex(const Tensor& A, const Tensor& B, bool left = true,
                                    bool check_errors = false);
// X with A X = B (left) or X A = B, reading only A's upper (upper) or lower triangle, its
// diagonal taken as ones when unitriangular. B must be a matrix (*, n, k) (or (*, k, n) for
// !left); batch dims broadcast. A zero on the diagonal gives inf/NaN, no error (as torch). A's
// gradient is confined to the triangle read.
Tensor solve_triangular(const Tensor& A, const Tensor& B, bool upper, bool left = true,
                        bool unitriangular = false);
// torch.linalg.lstsq: (solution, residuals, rank, singular_values) of min ||A X - B|| for
// A (*, m, n) and B (*, m, k) (or (*, m) when B has one dim less than A: a vector right-hand
// side); batch dims broadcast. driver: "gelsy" (the default: column-pivoting QR, rank-revealing),
// "gels" (QR, A assumed full rank), "gelsd"/"gelss" (SVD). rcond (unset or <= 0: eps * max(m, n))
// sets the numerical rank: |R_ii| > rcond * |R_00| for gelsy (LAPACK's gelsy estimates the
// condition instead: clear-cut ranks agree), s_i > rcond * s_max for the SVD drivers; a rank
// deficient A gets the minimum-norm solution. As torch's CPU results: rank (int64, batch shape)
// for every driver but gels (empty), singular_values for gelsd/gelss (else empty), residuals
// (squared column norms of A X - B, shape (*, k)) when m > n and the driver is not gelsy (SVD
// drivers: only when every A has rank n), else empty. Only the solution is differentiable: its
// gradient is torch's, that of pinv(A) B.
std::tuple<Tensor, Tensor, Tensor, Tensor> lstsq(
    const Tensor& A, const Tensor& B, std::optional<double> rcond = std::nullopt,
    std::optional<std::string_view> driver = std::nullopt);

// ---- decompositions ---------------------------------------------------------------------------
// L with A = L L^T (upper: U with A = U^T U), reading only A's lower (upper) triangle. A matrix
// that is not positive-definite raises ValueError naming the leading minor (torch's text).
Tensor cholesky(const Tensor& A, bool upper = false);
// (L, info): info (int32) is 0 or the order of the first leading minor that is not
// positive-definite (L is then unspecified past it). check_errors raises as cholesky.
std::tuple<Tensor, Tensor> cholesky_ex(const Tensor& A, bool upper = false,
                                       bool check_errors = false);
// (Q, R) of A (*, m, n), k = min(m, n). mode "reduced": Q (*, m, k), R (*, k, n); "complete":
// Q (*, m, m), R (*, m, n); "r": Q empty, R (*, k, n). R's diagonal signs are LAPACK's. Backward
// as torch: not for mode "r", nor for "complete" with m > n (ValueError when differentiated).
std::tuple<Tensor, Tensor> qr(const Tensor& A, std::string_view mode = "reduced");
// (eigenvalues ascending (*, n), eigenvectors as columns (*, n, n)) of the symmetric matrix in
// A's lower (UPLO "L") or upper ("U") triangle. Gradients assume distinct eigenvalues (torch's).
std::tuple<Tensor, Tensor> eigh(const Tensor& A, std::string_view UPLO = "L");
// The eigenvalues alone (the eigenvectors are computed only when a gradient needs them).
Tensor eigvalsh(const Tensor& A, std::string_view UPLO = "L");
// (U, S, Vh) with A = U diag(S) Vh, S descending. full_matrices: U (*, m, m), Vh (*, n, n);
// otherwise U (*, m, k), Vh (*, k, n). Gradients as torch's svd_backward (distinct singular values;
// with full_matrices the extra columns of U / rows of Vh get no gradient, as torch narrows them).
std::tuple<Tensor, Tensor, Tensor> svd(const Tensor& A, bool full_matrices = true);
// The singular values (*, k); gradient U diag(g) Vh.
Tensor svdvals(const Tensor& A);

// ---- pseudo-inverse and rank ------------------------------------------------------------------
// torch 1.13's pinv: the SVD (hermitian: eigh) with singular values <= max(atol, rtol * s_max)
// dropped. Unset rtol: eps * max(m, n) when atol is unset or <= 0, else 0; unset atol: 0.
// Differentiable through the decomposition.
Tensor pinv(const Tensor& A, std::optional<double> atol = std::nullopt,
            std::optional<double> rtol = std::nullopt, bool hermitian = false);
// The number of singular values (hermitian: |eigenvalues|) above max(atol, rtol * s_max), with
// pinv's defaults; int64 of the batch shape (0 for an empty matrix).
Tensor matrix_rank(const Tensor& A, std::optional<double> atol = std::nullopt,
                   std::optional<double> rtol = std::nullopt, bool hermitian = false);

// ---- norms ------------------------------------------------------------------------------------
// torch.linalg.vector_norm: fabric::vector_norm (nn/reduce_extra.h): ord 2, inf, -inf, 0, any
// real; dim empty = every dim; dtype computes in that floating dtype.
Tensor vector_norm(const Tensor& x, double ord = 2, const std::vector<int64_t>& dim = {},
                   bool keepdim = false, std::optional<DType> dtype = std::nullopt);
// torch.linalg.matrix_norm over the two dims `dim`: ord "fro" (the default) or "nuc" (sum of the
// singular values); or a number: 1 / -1 (max / min column sum of |a|), inf / -inf (row sums),
// 2 / -2 (largest / smallest singular value). "nuc" and +-2 need float32/float64 (the SVD);
// "fro" and +-1, +-inf take whatever vector_norm takes.
Tensor matrix_norm(const Tensor& A, std::string_view ord = "fro",
                   const std::vector<int64_t>& dim = {-2, -1}, bool keepdim = false,
                   std::optional<DType> dtype = std::nullopt);
Tensor matrix_norm(const Tensor& A, double ord, const std::vector<int64_t>& dim = {-2, -1},
                   bool keepdim = false, std::optional<DType> dtype = std::nullopt);

// ---- products ---------------------------------------------------------------------------------
// A^n for A (*, n, n): n = 0 gives the identity (no gradient reaches A), n < 0 inverts A first,
// then torch's binary powering (the same products in the same order).
Tensor matrix_power(const Tensor& A, int64_t n);
// A_1 A_2 ... A_N (N >= 2) in the cheapest order (torch's: the 3-matrix cost rule, else the
// matrix-chain dynamic programme). The first tensor may be 1-D (a row vector), the last 1-D (a
// column vector); the rest 2-D. All of one dtype and device.
Tensor multi_dot(const std::vector<Tensor>& tensors);

}  // namespace fabric::linalg
