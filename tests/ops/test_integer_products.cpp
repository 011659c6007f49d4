// Integer matmul/mm/bmm/dot/einsum, which torch computes on the CPU (index arithmetic, counting):
// exact, in the operands' dtype, wrapping as that dtype's arithmetic does. Expected values are
// torch 1.13's (printed by hand with /usr/bin/python3).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

TEST(IntegerProducts, MatchTorchIncludingWrapping) {
  const Tensor a = from_vector<int64_t>({100, -7, 3, 5, 90, -128}, {2, 3}).to(DType::int8);
  const Tensor b = from_vector<int64_t>({2, 1, 3, -4, 1, 127}, {3, 2}).to(DType::int8);
  const Tensor ab = matmul(a, b);
  EXPECT_EQ(ab.dtype(), DType::int8);
  EXPECT_EQ(ab.to(DType::int64).to_vector<int64_t>(), (std::vector<int64_t>{-74, -3, -104, 29}));
  EXPECT_EQ(mm(a.to(DType::int64), b.to(DType::int64)).to_vector<int64_t>(),
            (std::vector<int64_t>{182, 509, 152, -16611}));
  EXPECT_EQ(einsum("ij,jk->ik", {a.to(DType::int64), b.to(DType::int64)}).to_vector<int64_t>(),
            (std::vector<int64_t>{182, 509, 152, -16611}));

  const Tensor x = arange(24, DType::int64).reshape({2, 3, 4});
  const Tensor y = sub(arange(8, DType::int64).reshape({4, 2}), Scalar(int64_t(3)));
  EXPECT_EQ(matmul(x, y).sizes(), (Shape{2, 3, 2}));
  EXPECT_EQ(matmul(x, y).to_vector<int64_t>(),
            (std::vector<int64_t>{10, 16, 10, 32, 10, 48, 10, 64, 10, 80, 10, 96}));
  EXPECT_EQ(bmm(x.narrow(1, 0, 2), ones({2, 4, 1}, {.dtype = DType::int64})).to_vector<int64_t>(),
            (std::vector<int64_t>{6, 22, 54, 70}));
  EXPECT_EQ(dot(from_vector<int64_t>({1, 2, 3}), from_vector<int64_t>({4, -5, 6})).item<int64_t>(),
            12);
  EXPECT_EQ(matmul(from_vector<int64_t>({1, 2, 3, 4}, {2, 2}), from_vector<int64_t>({5, 6}))
                .to_vector<int64_t>(),
            (std::vector<int64_t>{17, 39}));
  const Tensor v = from_vector<int64_t>({1, 2, 3}).to(DType::int32);
  const Tensor m = arange(6, DType::int64).reshape({3, 2}).to(DType::int32);
  EXPECT_EQ(matmul(v, m).dtype(), DType::int32);
  EXPECT_EQ(matmul(v, m).to(DType::int64).to_vector<int64_t>(), (std::vector<int64_t>{16, 22}));
  // 2^62 * 4 wraps to 0 in int64, as in torch.
  EXPECT_EQ(mm(from_vector<int64_t>({int64_t(1) << 62}, {1, 1}), from_vector<int64_t>({4}, {1, 1}))
                .item<int64_t>(),
            0);
  // An empty contraction is zeros.
  EXPECT_EQ(mm(zeros({2, 0}, {.dtype = DType::int64}), zeros({0, 3}, {.dtype = DType::int64}))
                .to_vector<int64_t>(),
            std::vector<int64_t>(6, 0));
}

// linear too (torch 1.13 computes it on the CPU); it reached the GEMM dispatch's "gemm:
// unsupported dtypes" before.
TEST(IntegerProducts, LinearMatchesTorch) {
  const Tensor x = arange(6, DType::int64).reshape({2, 3});
  const Tensor w = from_vector<int64_t>({1, -2, 3, 4, 5, -6}, {2, 3});
  const Tensor b = from_vector<int64_t>({7, -8});
  const Tensor y = linear(x, w, b);
  EXPECT_EQ(y.dtype(), DType::int64);
  EXPECT_EQ(y.to_vector<int64_t>(), (std::vector<int64_t>{11, -15, 17, -6}));
  EXPECT_EQ(linear(x.reshape({1, 2, 3}), w).sizes(), (Shape{1, 2, 2}));
  EXPECT_EQ(linear(x.reshape({1, 2, 3}), w).to_vector<int64_t>(),
            (std::vector<int64_t>{4, -7, 10, 2}));
}

TEST(IntegerProducts, BoolAndMixedDtypesAreStillRefused) {
  const Tensor t = ones({2, 2}, {.dtype = DType::bool_});
  EXPECT_CONTAINS(thrown<DTypeError>([&] { matmul(t, t); }), "matmul: not implemented for bool");
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    matmul(ones({2, 2}, {.dtype = DType::int64}), ones({2, 2}));
                  }),
                  "matmul");
}

}  // namespace
}  // namespace fabric
