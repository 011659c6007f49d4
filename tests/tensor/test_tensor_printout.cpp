// Tensor::str(): shape, dtype and the first 16 values in row-major order; integers exactly (token
// ids printed as 1.23457e+06 before), and only those values read (a 50M-element tensor was
// converted to doubles whole to print 16).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

TEST(TensorPrintout, IntegersExactlyAndTheFirstValuesOfViews) {
  EXPECT_EQ(from_vector<int64_t>({1234567, 9007199254740993}).str(),
            "Tensor(shape=(2,), dtype=int64, [1234567, 9007199254740993])");
  EXPECT_EQ(from_vector<int64_t>({2000000001}).to(DType::int32).str(),
            "Tensor(shape=(1,), dtype=int32, [2000000001])");
  EXPECT_EQ(from_vector<float>({0.5f, -2.f}).str(), "Tensor(shape=(2,), dtype=float32, [0.5, -2])");
  const Tensor a = arange(60, DType::int64).reshape({3, 4, 5});
  EXPECT_EQ(a.str(),
            "Tensor(shape=(3, 4, 5), dtype=int64, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, "
            "14, 15, ...])");
  // A transposed view: row-major order of the view, not of its storage.
  EXPECT_EQ(a.transpose(0, 2).str(),
            "Tensor(shape=(5, 4, 3), dtype=int64, [0, 20, 40, 5, 25, 45, 10, 30, 50, 15, 35, 55, "
            "1, 21, 41, 6, ...])");
  EXPECT_EQ(zeros({2, 0}).str(), "Tensor(shape=(2, 0), dtype=float32, [])");
  EXPECT_EQ(scalar_tensor(3.0).str(), "Tensor(shape=(), dtype=float32, [3])");
}

}  // namespace
}  // namespace fabric
