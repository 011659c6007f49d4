// PyTorch's type-promotion table and result_type's category rules.
#include <gtest/gtest.h>

#include "tensor/factory.h"
#include "tensor/promotion.h"

namespace fabric {
namespace {

TEST(Promotion, PromoteTypesTable) {
  using D = DType;
  struct Row { D a, b, want; };
  const Row rows[] = {
      {D::bool_, D::int8, D::int8},        {D::bool_, D::float16, D::float16}, {D::uint8, D::int8, D::int32},
      {D::uint8, D::int32, D::int32},      {D::int32, D::int64, D::int64},     {D::int64, D::float16, D::float16},
      {D::int64, D::bfloat16, D::bfloat16}, {D::float16, D::bfloat16, D::float32},
      {D::float16, D::float32, D::float32}, {D::bfloat16, D::float64, D::float64},
      {D::float32, D::float64, D::float64}, {D::int8, D::float32, D::float32},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(promote_types(r.a, r.b), r.want) << dtype_name(r.a) << " + " << dtype_name(r.b);
    EXPECT_EQ(promote_types(r.b, r.a), r.want) << dtype_name(r.b) << " + " << dtype_name(r.a);
  }
  EXPECT_THROW(promote_types(D::float8_e4m3fn, D::float32), DTypeError);
  EXPECT_THROW(promote_types(D::float8_e4m3fn, D::float8_e5m2), DTypeError);
}

TEST(Promotion, ResultTypeCategories) {
  Tensor i32 = zeros({2}, {.dtype = DType::int32});
  Tensor f16 = zeros({2}, {.dtype = DType::float16});
  Tensor f64_0d = scalar_tensor(1.0, {.dtype = DType::float64});
  Tensor i64_0d = scalar_tensor(1, {.dtype = DType::int64});
  Scalar fs = 2.5, is = 3, bs = true;
  EXPECT_EQ(result_type({&i32}, {&fs}), DType::float32);     // int tensor + float scalar
  EXPECT_EQ(result_type({&i32}, {&is}), DType::int32);       // same category: tensor wins
  EXPECT_EQ(result_type({&f16}, {&fs}), DType::float16);
  EXPECT_EQ(result_type({&f16, &f64_0d}), DType::float16);   // dimensioned beats 0-dim
  EXPECT_EQ(result_type({&i32, &f64_0d}), DType::float64);   // 0-dim float beats int tensor
  EXPECT_EQ(result_type({&i32, &i64_0d}), DType::int32);
  Tensor b = zeros({2}, {.dtype = DType::bool_});
  EXPECT_EQ(result_type({&b}, {&is}), DType::int64);
  EXPECT_EQ(result_type({&b}, {&bs}), DType::bool_);
  EXPECT_EQ(float_result_dtype(DType::int64), DType::float32);
  EXPECT_EQ(float_result_dtype(DType::bfloat16), DType::bfloat16);
}

}  // namespace
}  // namespace fabric
