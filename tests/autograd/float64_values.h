// Small float64 helpers for autograd tests written against values printed by torch: a 1-D leaf
// that requires grad, and an element-wise comparison naming the failing index.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "tensor/factory.h"

namespace fabric::test {

inline Tensor leaf(std::vector<double> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return from_vector(v, {n}, {.dtype = DType::float64, .requires_grad = true});
}

inline void expect_values(const Tensor& t, const std::vector<double>& want, const char* what) {
  ASSERT_TRUE(t.defined()) << what;
  const std::vector<double> got = t.to_vector<double>();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-12) << what << "[" << i << "]";
}

}  // namespace fabric::test
