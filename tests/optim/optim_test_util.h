// Helpers shared by the optimizer tests: float64 leaf parameters, setting gradients, reading values.
#pragma once
#include <gtest/gtest.h>

#include "tests/common/expect_error.h"

#include <cmath>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"

namespace fabric::optim::testing {

inline Tensor param(const std::vector<double>& v, DType dt = DType::float64) {
  Tensor t = from_vector<double>(v).to(dt);
  t.set_requires_grad(true);
  return t;
}

inline void set_grad_values(const Tensor& p, const std::vector<double>& g) {
  set_grad(p, from_vector<double>(g, p.sizes()).to(p.dtype()));
}

inline std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// |a - b| <= rel * max(1, |b|) element-wise.
inline void expect_close(const std::vector<double>& a, const std::vector<double>& b, double rel,
                         const std::string& what = "") {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_LE(std::abs(a[i] - b[i]), rel * std::max(1.0, std::abs(b[i])))
        << what << " [" << i << "]: " << a[i] << " vs " << b[i];
  }
}


}  // namespace fabric::optim::testing
