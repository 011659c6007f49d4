// index_add and scatter_reduce on bool tensors against torch 1.13 itself
// (tools/fixtures/make_index_bool_rows.py): torch adds bools as a logical or (self | src with a
// nonzero alpha, self with a zero one) and reduces them with sum/amax = or, prod/amin = and
// (include_self or not); scatter_reduce "mean" on bool is refused, as in torch.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/ops/index_bool_torch_rows.h"

namespace fabric {
namespace {

Tensor bools(const std::vector<bool>& v, const Shape& shape) {
  std::vector<int64_t> ints(v.begin(), v.end());
  return ne(from_vector(ints), Scalar(0)).reshape(shape);
}

std::vector<bool> values_of(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::bool_);
  const std::vector<int64_t> v = t.to(DType::int64).reshape({-1}).to_vector<int64_t>();
  return {v.begin(), v.end()};
}

TEST(IndexBool, IndexAddAndScatterReduceMatchTorch113) {
  for (const index_bool_fixture::Row& r : index_bool_fixture::rows()) {
    SCOPED_TRACE(r.name);
    const Tensor self = bools(r.self, r.shape);
    const Tensor src = bools(r.src, r.src_shape);
    const Tensor index = from_vector(r.index).reshape(r.index_shape);
    Tensor got;
    if (std::string(r.op) == "index_add") {
      // The alpha as Python passed it: a bool, an int or a float.
      const bool integral = r.alpha == static_cast<double>(static_cast<int64_t>(r.alpha));
      const Scalar alpha = r.alpha_bool ? Scalar(r.alpha != 0)
                           : integral   ? Scalar(static_cast<int64_t>(r.alpha))
                                        : Scalar(r.alpha);
      got = index_add(self, r.dim, index, src, alpha);
    } else {
      got = scatter_reduce(self, r.dim, index, src, r.reduce, r.include_self);
    }
    EXPECT_EQ(got.sizes(), self.sizes());
    EXPECT_EQ(values_of(got), r.want);
  }
}

// torch 1.13: "scatter_gather_tensor_cpu_reduce_mean" not implemented for 'Bool'.
TEST(IndexBool, ScatterReduceMeanOnBoolIsRefused) {
  const Tensor self = bools({true, false, true}, {3});
  const Tensor index = from_vector(std::vector<int64_t>{0, 2});
  const Tensor src = bools({false, true}, {2});
  for (const bool include_self : {true, false}) {
    const std::string msg = thrown<DTypeError>(
        [&] { (void)scatter_reduce(self, 0, index, src, "mean", include_self); });
    EXPECT_CONTAINS(msg, "scatter_reduce");
    EXPECT_CONTAINS(msg, "mean");
    EXPECT_CONTAINS(msg, "bool");
  }
}

}  // namespace
}  // namespace fabric
