// Naive float64 matrix algorithms, written independently of Eigen and of fabric's ops, as the
// references of the linalg harness cases (op_cases_linalg_decomp.cpp): Gaussian elimination with
// partial pivoting (inverse, solve, det), the Cholesky recurrence, modified Gram-Schmidt (QR),
// cyclic Jacobi rotations (symmetric eigenproblems, SVD through A^T A) and their batching over
// RefTensors.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "tests/ops/op_harness.h"

namespace fabric::harness::naive {

struct Mat {
  int64_t r = 0, c = 0;
  std::vector<double> a;
  Mat() = default;
  Mat(int64_t rows, int64_t cols) : r(rows), c(cols), a(static_cast<size_t>(rows * cols), 0.0) {}
  double& operator()(int64_t i, int64_t j) { return a[static_cast<size_t>(i * c + j)]; }
  double operator()(int64_t i, int64_t j) const { return a[static_cast<size_t>(i * c + j)]; }
};

inline Mat identity(int64_t n) {
  Mat m(n, n);
  for (int64_t i = 0; i < n; ++i) m(i, i) = 1;
  return m;
}

inline Mat transpose(const Mat& m) {
  Mat t(m.c, m.r);
  for (int64_t i = 0; i < m.r; ++i)
    for (int64_t j = 0; j < m.c; ++j) t(j, i) = m(i, j);
  return t;
}

inline Mat matmul(const Mat& x, const Mat& y) {
  Mat z(x.r, y.c);
  for (int64_t i = 0; i < x.r; ++i)
    for (int64_t k = 0; k < x.c; ++k)
      for (int64_t j = 0; j < y.c; ++j) z(i, j) += x(i, k) * y(k, j);
  return z;
}

// The matrices of a (..., r, c) RefTensor, and back.
inline std::vector<Mat> matrices(const RefTensor& t) {
  const int64_t r = t.shape[t.shape.size() - 2], c = t.shape.back();
  const int64_t count = numel_of(Shape(t.shape.begin(), t.shape.end() - 2));
  std::vector<Mat> out;
  for (int64_t b = 0; b < count; ++b) {
    Mat m(r, c);
    std::copy(t.v.begin() + b * r * c, t.v.begin() + (b + 1) * r * c, m.a.begin());
    out.push_back(m);
  }
  return out;
}

inline RefTensor pack(Shape batch, const std::vector<Mat>& ms, int64_t r, int64_t c) {
  batch.push_back(r);
  batch.push_back(c);
  RefTensor t{batch, {}};
  for (const Mat& m : ms) t.v.insert(t.v.end(), m.a.begin(), m.a.end());
  return t;
}

inline Shape batch_of(const RefTensor& t) { return Shape(t.shape.begin(), t.shape.end() - 2); }

// Gaussian elimination with partial pivoting on [A | B]: X = A^-1 B; det(A) on the side.
inline Mat gauss_solve(Mat A, Mat B, double* det = nullptr) {
  const int64_t n = A.r;
  double d = 1;
  for (int64_t k = 0; k < n; ++k) {
    int64_t p = k;
    for (int64_t i = k + 1; i < n; ++i)
      if (std::abs(A(i, k)) > std::abs(A(p, k))) p = i;
    if (p != k) {
      d = -d;
      for (int64_t j = 0; j < n; ++j) std::swap(A(k, j), A(p, j));
      for (int64_t j = 0; j < B.c; ++j) std::swap(B(k, j), B(p, j));
    }
    d *= A(k, k);
    for (int64_t i = k + 1; i < n; ++i) {
      const double f = A(k, k) == 0 ? 0 : A(i, k) / A(k, k);
      for (int64_t j = k; j < n; ++j) A(i, j) -= f * A(k, j);
      for (int64_t j = 0; j < B.c; ++j) B(i, j) -= f * B(k, j);
    }
  }
  for (int64_t k = n - 1; k >= 0; --k)
    for (int64_t j = 0; j < B.c; ++j) {
      double s = B(k, j);
      for (int64_t i = k + 1; i < n; ++i) s -= A(k, i) * B(i, j);
      B(k, j) = s / A(k, k);
    }
  if (det) *det = d;
  return B;
}

inline Mat inverse(const Mat& A) { return gauss_solve(A, identity(A.r)); }

inline double determinant(const Mat& A) {
  double d = 1;
  gauss_solve(A, Mat(A.r, 0), &d);
  return d;
}

// The lower Cholesky factor of a symmetric positive-definite matrix (its lower triangle read).
inline Mat cholesky_lower(const Mat& A) {
  const int64_t n = A.r;
  Mat L(n, n);
  for (int64_t j = 0; j < n; ++j) {
    double s = A(j, j);
    for (int64_t k = 0; k < j; ++k) s -= L(j, k) * L(j, k);
    L(j, j) = std::sqrt(s);
    for (int64_t i = j + 1; i < n; ++i) {
      double t = A(i, j);
      for (int64_t k = 0; k < j; ++k) t -= L(i, k) * L(j, k);
      L(i, j) = t / L(j, j);
    }
  }
  return L;
}

// Modified Gram-Schmidt on A's first min(m, n) columns: Q (m, k) with positive R diagonal, and
// R = Q^T A (k, n).
inline std::pair<Mat, Mat> gram_schmidt(const Mat& A) {
  const int64_t m = A.r, k = std::min(A.r, A.c);
  Mat Q(m, k);
  for (int64_t j = 0; j < k; ++j) {
    std::vector<double> v(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) v[i] = A(i, j);
    for (int64_t p = 0; p < j; ++p) {
      double d = 0;
      for (int64_t i = 0; i < m; ++i) d += Q(i, p) * v[i];
      for (int64_t i = 0; i < m; ++i) v[i] -= d * Q(i, p);
    }
    double norm = 0;
    for (double x : v) norm += x * x;
    norm = std::sqrt(norm);
    for (int64_t i = 0; i < m; ++i) Q(i, j) = v[i] / norm;
  }
  return {Q, matmul(transpose(Q), A)};
}

// Cyclic Jacobi on a symmetric matrix: eigenvalues ascending, eigenvectors as V's columns.
inline void jacobi_eigh(Mat A, std::vector<double>& w, Mat& V) {
  const int64_t n = A.r;
  V = identity(n);
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i + 1; j < n; ++j) off += A(i, j) * A(i, j);
    if (off < 1e-30) break;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) {
        if (A(p, q) == 0) continue;
        const double theta = (A(q, q) - A(p, p)) / (2 * A(p, q));
        const double t = (theta >= 0 ? 1 : -1) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int64_t k = 0; k < n; ++k) {  // A <- A J
          const double akp = A(k, p), akq = A(k, q);
          A(k, p) = c * akp - s * akq;
          A(k, q) = s * akp + c * akq;
        }
        for (int64_t k = 0; k < n; ++k) {  // A <- J^T A
          const double apk = A(p, k), aqk = A(q, k);
          A(p, k) = c * apk - s * aqk;
          A(q, k) = s * apk + c * aqk;
        }
        for (int64_t k = 0; k < n; ++k) {
          const double vkp = V(k, p), vkq = V(k, q);
          V(k, p) = c * vkp - s * vkq;
          V(k, q) = s * vkp + c * vkq;
        }
      }
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return A(x, x) < A(y, y); });
  Mat sorted(n, n);
  w.assign(static_cast<size_t>(n), 0);
  for (int64_t j = 0; j < n; ++j) {
    w[j] = A(order[j], order[j]);
    for (int64_t i = 0; i < n; ++i) sorted(i, j) = V(i, order[j]);
  }
  V = sorted;
}

// Singular values (descending) and the reduced U (m, k), V (n, k) of a full-rank A, from the
// eigenvectors of A^T A (m >= n) or A A^T (m < n).
inline void svd_via_eigh(const Mat& A, std::vector<double>& s, Mat& U, Mat& V) {
  const bool tall = A.r >= A.c;
  const Mat G = tall ? matmul(transpose(A), A) : matmul(A, transpose(A));
  std::vector<double> w;
  Mat E;
  jacobi_eigh(G, w, E);
  const int64_t k = G.r;
  Mat B(k, k);  // E's columns in descending order
  s.assign(static_cast<size_t>(k), 0);
  for (int64_t j = 0; j < k; ++j) {
    s[j] = std::sqrt(std::max(w[k - 1 - j], 0.0));
    for (int64_t i = 0; i < k; ++i) B(i, j) = E(i, k - 1 - j);
  }
  // The other factor: A V / s (tall) or A^T U / s (wide).
  Mat other = tall ? matmul(A, B) : matmul(transpose(A), B);
  for (int64_t i = 0; i < other.r; ++i)
    for (int64_t j = 0; j < k; ++j) other(i, j) /= s[j];
  U = tall ? other : B;
  V = tall ? B : other;
}

}  // namespace fabric::harness::naive
