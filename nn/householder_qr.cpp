// Householder QR: each reflection H_k = I - 2 v v^T / (v^T v) zeroes column k below the diagonal;
// q is H_0 H_1 ... H_{n-1} applied to the first n columns of the identity.
#include "nn/householder_qr.h"

#include <cmath>

#include "tensor/error.h"

namespace fabric::nn {

namespace {

// Applies I - 2 v v^T / vv to rows k.. of the row-major (rows, cols) matrix x, columns c0..
void reflect(std::vector<double>& x, int64_t rows, int64_t cols, int64_t k, int64_t c0,
             const std::vector<double>& v, double vv) {
  for (int64_t c = c0; c < cols; ++c) {
    double dot = 0;
    for (int64_t i = k; i < rows; ++i) dot += v[i - k] * x[i * cols + c];
    const double f = 2 * dot / vv;
    for (int64_t i = k; i < rows; ++i) x[i * cols + c] -= f * v[i - k];
  }
}

}  // namespace

ThinQR householder_qr(const std::vector<double>& a, int64_t m, int64_t n) {
  FABRIC_CHECK(m >= n && n >= 0 && static_cast<int64_t>(a.size()) == m * n, ValueError,
               "householder_qr: expects a row-major (m, n) matrix with m >= n, got m=", m,
               ", n=", n, " and ", a.size(), " values");
  std::vector<double> work = a;
  std::vector<std::vector<double>> vs(n);
  std::vector<double> vvs(n, 0.0);
  for (int64_t k = 0; k < n; ++k) {
    double norm2 = 0;
    for (int64_t i = k; i < m; ++i) norm2 += work[i * n + k] * work[i * n + k];
    const double x0 = work[k * n + k];
    // alpha takes the sign opposite to x0, so v0 = x0 - alpha never cancels.
    const double alpha = x0 >= 0 ? -std::sqrt(norm2) : std::sqrt(norm2);
    std::vector<double>& v = vs[k];
    v.clear();
    for (int64_t i = k; i < m; ++i) v.push_back(work[i * n + k]);
    v[0] -= alpha;
    double vv = 0;
    for (double e : v) vv += e * e;
    vvs[k] = vv;
    if (vv == 0) continue;  // the column is already zero below (and on) the diagonal
    reflect(work, m, n, k, k, v, vv);
  }
  ThinQR out;
  out.r.assign(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) out.r[i * n + j] = work[i * n + j];
  out.q.assign(m * n, 0.0);
  for (int64_t i = 0; i < n; ++i) out.q[i * n + i] = 1.0;
  for (int64_t k = n - 1; k >= 0; --k) {
    if (vvs[k] != 0) reflect(out.q, m, n, k, 0, vs[k], vvs[k]);
  }
  return out;
}

}  // namespace fabric::nn
