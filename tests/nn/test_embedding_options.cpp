// Embedding's max_norm / norm_type / scale_grad_by_freq (with padding_idx) against torch 1.13
// (embedding_options_torch_rows.h, tools/fixtures/make_embedding_options_rows.py): the output, the
// weight renormalised in place by the forward, the weight's gradient and the repr; and
// Embedding::from_pretrained.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "embedding_options_torch_rows.h"
#include "nn/linear.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {
using namespace testing;

void expect_near(const std::vector<double>& got, const std::vector<double>& want,
                 const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-12) << what << " [" << i << "]";
}

TEST(EmbeddingOptions, MatchTorch) {
  for (const EmbeddingOptionsRow& row : kEmbeddingOptionsRows) {
    SCOPED_TRACE(row.name);
    Embedding emb(
        {.num_embeddings = row.num_embeddings,
         .embedding_dim = row.embedding_dim,
         .padding_idx =
             row.padding_idx < 0 ? std::nullopt : std::optional<int64_t>(row.padding_idx),
         .max_norm = row.max_norm < 0 ? std::nullopt : std::optional<double>(row.max_norm),
         .norm_type = row.norm_type,
         .scale_grad_by_freq = row.scale_grad_by_freq});
    emb.to(DType::float64);
    {
      NoGradGuard no_grad;
      emb.weight.copy_(from_vector<double>(row.weight, {row.num_embeddings, row.embedding_dim}));
    }
    const Tensor indices = from_vector<int64_t>(row.indices, row.index_shape);
    const Tensor out = emb(indices);
    expect_near(out.to_vector<double>(), row.out, "out");
    expect_near(emb.weight.to_vector<double>(), row.weight_after, "weight after the forward");
    sum(mul(out, from_vector<double>(row.g_out, out.sizes()))).backward();
    expect_near(emb.weight.grad().to_vector<double>(), row.weight_grad, "weight grad");
    EXPECT_EQ(emb.str(), row.repr);
  }
}

TEST(EmbeddingOptions, FromPretrained) {
  const Tensor table = from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2});
  auto frozen = Embedding::from_pretrained(table, {.padding_idx = 1});
  EXPECT_FALSE(frozen->weight.requires_grad());
  EXPECT_EQ(frozen->str(), "Embedding(3, 2, padding_idx=1)");
  // The padding row keeps the given values, and the storage is the caller's, as torch's.
  EXPECT_EQ(frozen->weight.to_vector<double>(), table.to_vector<double>());
  EXPECT_EQ(frozen->weight.data_ptr(), table.data_ptr());
  const Tensor out = (*frozen)(from_vector<int64_t>({2, 0}));
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{5, 6, 1, 2}));
  auto trained = Embedding::from_pretrained(table.clone(), {.freeze = false, .max_norm = 1.0});
  EXPECT_TRUE(trained->weight.requires_grad());
  EXPECT_EQ(trained->str(), "Embedding(3, 2, max_norm=1.0)");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    Embedding::from_pretrained(from_vector<double>({1, 2}));
                  }),
                  "expected to be 2-dimensional");
}

}  // namespace
}  // namespace fabric::nn
