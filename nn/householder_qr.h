// A small float64 QR by Householder reflections, on the CPU: what nn::init::orthogonal_ needs
// (torch calls linalg.qr there) without reaching for a LAPACK binding.
#pragma once
#include <cstdint>
#include <vector>

namespace fabric::nn {

struct ThinQR {
  std::vector<double> q;  // (m, n) row-major, orthonormal columns
  std::vector<double> r;  // (n, n) row-major, upper triangular
};

// The reduced QR of the row-major (m, n) matrix `a`, m >= n: a = q r. The signs of r's diagonal
// follow LAPACK's reflections (not necessarily positive), as torch.linalg.qr's do.
ThinQR householder_qr(const std::vector<double>& a, int64_t m, int64_t n);

}  // namespace fabric::nn
