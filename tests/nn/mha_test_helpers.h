// Helpers shared by the torch-fixture tests of MultiheadAttention and the transformer encoder:
// fixture values as float64 tensors, fixture masks, parameter loading and the 1e-10 comparison.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/module.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/nn/mha_fixture.h"

namespace fabric::nn::mha_testing {

inline void expect_close(const Tensor& got, const std::vector<double>& want,
                         const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  const std::vector<double> g = got.to(DType::float64).contiguous().to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_NEAR(g[i], want[i], 1e-10 * std::max(1.0, std::abs(want[i])))
        << what << " element " << i;
}

inline Tensor f64(const std::vector<double>& values, const Shape& shape) {
  return from_vector<double>(values, shape);
}

// Undefined for "no mask"; bool masks come as 1/0 values.
inline Tensor mask_of(const testing::MaskFixture& m) {
  if (m.shape.empty()) return Tensor();
  Tensor t = f64(m.values, m.shape);
  return m.is_bool ? ne(t, Scalar(0)) : t;
}

// Copies the fixture's parameters into `module` (made float64), checking torch's names and order.
inline void load_params(Module& module, const std::vector<std::string>& names,
                        const std::vector<std::vector<double>>& values) {
  module.to(DType::float64);
  const Module::NamedTensors params = module.named_parameters();
  ASSERT_EQ(params.size(), names.size());
  NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_EQ(params[i].first, names[i]);
    Tensor p = params[i].second;
    p.copy_(f64(values[i], p.sizes()));
  }
}

}  // namespace fabric::nn::mha_testing
