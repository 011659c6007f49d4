// Products on batched views whose strides oneDNN's 3-D descriptors cannot hold (a batch stride
// below one matrix's extent: x.slice(1, 0, 5, 2).transpose(0, 1) has strides (12, 30, 1)). They
// used to escape as a raw dnnl::error ("could not construct a memory descriptor using strides");
// they run per batch now and give the contiguous operands' result.
#include <gtest/gtest.h>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

double max_abs_difference(const Tensor& a, const Tensor& b) {
  return amax(abs(sub(a.to(DType::float64), b.to(DType::float64)))).item<double>();
}

TEST(MatmulStridedViews, BatchStrideBelowTheMatrixExtentRunsAsTheContiguousCopy) {
  Generator gen(11);
  for (DType dtype : {DType::float32, DType::bfloat16}) {
    const Tensor base = randn({4, 5, 6}, {}, &gen).to(dtype);
    const Tensor x = base.slice(1, 0, 5, 2).transpose(0, 1);  // (3, 4, 6), strides (12, 30, 1)
    ASSERT_EQ(x.strides(), (std::vector<int64_t>{12, 30, 1}));
    const Tensor xc = x.contiguous();
    const Tensor w = randn({5, 6}, {}, &gen).to(dtype), m = randn({3, 6, 2}, {}, &gen).to(dtype);
    const double tol = dtype == DType::float32 ? 1e-5 : 5e-2;
    EXPECT_LE(max_abs_difference(matmul(x, x.transpose(-1, -2)), matmul(xc, xc.transpose(-1, -2))),
              tol)
        << dtype_name(dtype);
    EXPECT_LE(max_abs_difference(linear(x, w), linear(xc, w)), tol) << dtype_name(dtype);
    EXPECT_LE(max_abs_difference(bmm(x, m), bmm(xc, m)), tol) << dtype_name(dtype);
  }
}

}  // namespace
}  // namespace fabric
