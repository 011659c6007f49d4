// tensor/gelu_tanh_math.h included after tensor/ops.h, as an embedding app may: the header's
// double libm calls must reach libm and not fabric::exp(const Tensor&), which ops.h declares in an
// enclosing namespace (an unqualified exp(v) then failed to compile).
#include "tensor/ops.h"
// (a separate block: the order is the point of this file)
#include "tensor/gelu_tanh_math.h"

#include <gtest/gtest.h>

#include <cmath>

namespace fabric {
namespace {

TEST(GeluTanhMath, DoubleLibmCallsCompileAfterOpsHeader) {
  EXPECT_EQ(gelu_tanh::exp_t(1.0), std::exp(1.0));
  EXPECT_EQ(gelu_tanh::fabs_t(-2.5), 2.5);
  EXPECT_EQ(gelu_tanh::fma_t(2.0, 3.0, 1.0), 7.0);
}

}  // namespace
}  // namespace fabric
