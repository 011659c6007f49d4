// scaled_dot_product_attention's arguments: q, k and v of one floating dtype, a bool or floating
// mask, batch dims and a mask that broadcast, each refused naming the op (an int64 0/1 mask was
// added as a bias; integer q/k/v or mismatched shapes were reported by the matmul or where inside).
// A single query row whose stride is 1 (a (B, C, 1) feature map's heads, transposed) runs: its
// stride was passed to the fused kernel's GEMM as a leading dimension smaller than a row.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

TEST(AttentionArguments, DtypesAndShapesAreCheckedNamingTheOp) {
  const Tensor q = randn({2, 5, 8}), k = randn({2, 7, 8}), v = randn({2, 7, 8});
  EXPECT_CONTAINS(
      thrown<DTypeError>([&] {
        scaled_dot_product_attention(q, k, v, from_vector(std::vector<int64_t>(35, 1), {5, 7}));
      }),
      "scaled_dot_product_attention: attn_mask must be bool (true: take part) or floating");
  const Tensor qi = zeros({2, 5, 8}, {.dtype = DType::int64});
  EXPECT_CONTAINS(thrown<DTypeError>([&] { scaled_dot_product_attention(qi, qi, qi); }),
                  "scaled_dot_product_attention: expected q, k and v of one floating dtype, got "
                  "int64, int64 and int64");
  EXPECT_CONTAINS(
      thrown<DTypeError>([&] { scaled_dot_product_attention(q, k, v.to(DType::float64)); }),
      "got float32, float32 and float64");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    scaled_dot_product_attention(q, randn({3, 7, 8}), randn({3, 7, 8}));
                  }),
                  "scaled_dot_product_attention (the batch dims of q and k): shapes (2,) and (3,) "
                  "cannot be broadcast");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    scaled_dot_product_attention(q, k, v, zeros({5, 6}));
                  }),
                  "scaled_dot_product_attention (attn_mask and the scores (..., L, S)): shapes (5, "
                  "6) and (2, 5, 7)");
  // What stays accepted: a broadcast bool mask and a float mask of another float dtype.
  EXPECT_EQ(scaled_dot_product_attention(q, k, v, ones({1, 7}, {.dtype = DType::bool_})).sizes(),
            (Shape{2, 5, 8}));
  EXPECT_EQ(scaled_dot_product_attention(q, k, v, zeros({5, 7}, {.dtype = DType::float64})).sizes(),
            (Shape{2, 5, 8}));
}

// An undefined q, k or v names the op and which argument it was.
TEST(AttentionArguments, AnUndefinedOperandIsNamed) {
  const Tensor t = randn({2, 5, 8}), U;
  const std::vector<std::tuple<Tensor, Tensor, Tensor, std::string>> cases = {
      {U, t, t, "q"}, {t, U, t, "k"}, {t, t, U, "v"}, {U, U, U, "q"}};
  for (const auto& [q, k, v, name] : cases) {
    SCOPED_TRACE(name);
    EXPECT_CONTAINS(thrown<ValueError>([&] { scaled_dot_product_attention(q, k, v); }),
                    "scaled_dot_product_attention: got an undefined tensor (" + name + ")");
  }
}

TEST(AttentionArguments, ASingleQueryRowWithAUnitStrideRunsAsItsContiguousCopy) {
  // (1, 2, 8, 1) transposed to (1, 2, 1, 8): strides (16, 8, 1, 1), "contiguous" as size-1 dims go.
  const Tensor q = mul(arange(0, 16, 1, DType::float32), 0.1).view({1, 2, 8, 1}).transpose(-1, -2);
  const Tensor kv = randn({1, 2, 3, 8});
  const Tensor plain = from_vector(q.to_vector<float>(), {1, 2, 1, 8});  // strides (16, 8, 8, 1)
  for (bool causal : {false, true}) {
    const Tensor expected = scaled_dot_product_attention(plain, kv, kv, Tensor(), 0.0, causal);
    const Tensor got = scaled_dot_product_attention(q, kv, kv, Tensor(), 0.0, causal);
    const std::vector<float> a = got.to_vector<float>(), b = expected.to_vector<float>();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_FLOAT_EQ(a[i], b[i]) << i;
  }
  const Tensor self = scaled_dot_product_attention(q, q, q);  // S = 1 too: the output is v
  EXPECT_EQ(self.to_vector<float>(), plain.to_vector<float>());
}

// Rows sharing memory (a learned query expanded over positions: stride 0; an overlapping window of
// one buffer) reached the fused kernels' GEMMs as a leading dimension below a row ("lda=0"): they
// run as their contiguous copies, forward and backward, causal or not.
TEST(AttentionArguments, RowsSharingMemoryRunAsTheirContiguousCopies) {
  auto floats = [](const Tensor& t) { return t.to(DType::float32).to_vector<float>(); };
  for (DType dt : {DType::float32, DType::float64, DType::float16}) {
    for (bool causal : {false, true}) {
      for (int which = 0; which < 3; ++which) {  // q, k or v expanded over its positions
        const Tensor one = randn({2, 4, 1, 8}).to(dt), other = randn({2, 4, 6, 8}).to(dt);
        auto run = [&](bool copy) {
          Tensor leaf = one.clone().set_requires_grad(true);
          Tensor wide = leaf.expand({2, 4, which == 0 ? 5 : 6, 8});
          if (copy) wide = wide.contiguous();
          const Tensor q = which == 0 ? wide : randn({2, 4, 5, 8}, {.dtype = dt});
          Tensor y = scaled_dot_product_attention(q, which == 1 ? wide : other,
                                                  which == 2 ? wide : other, Tensor(), 0.0, causal);
          sum(mul(y, y)).backward();
          return std::pair{floats(y), floats(leaf.grad())};
        };
        manual_seed(7);
        const auto expected = run(true);
        manual_seed(7);
        const auto got = run(false);
        const double tol = dt == DType::float16 ? 2e-3 : 1e-5;
        ASSERT_EQ(got.first.size(), expected.first.size());
        for (size_t i = 0; i < got.first.size(); ++i)
          EXPECT_NEAR(got.first[i], expected.first[i], tol) << dtype_name(dt) << which << " " << i;
        for (size_t i = 0; i < got.second.size(); ++i)
          EXPECT_NEAR(got.second[i], expected.second[i], tol * 10) << dtype_name(dt) << which;
      }
      const Tensor buffer = randn({80}).to(dt);  // (20, 16) rows 3 apart
      const Tensor window =
          Tensor::from_storage(buffer.storage(), dt, {1, 1, 20, 16}, {0, 0, 3, 1}, 0);
      const auto got =
          floats(scaled_dot_product_attention(window, window, window, Tensor(), 0.0, causal));
      const Tensor copy = window.contiguous();
      const auto expected =
          floats(scaled_dot_product_attention(copy, copy, copy, Tensor(), 0.0, causal));
      ASSERT_EQ(got.size(), expected.size());
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], expected[i], dt == DType::float16 ? 2e-3 : 1e-5) << i;
    }
  }
}

}  // namespace
}  // namespace fabric
