// The margin, embedding and likelihood loss modules and the distance modules: forward is the
// functional with the module's options, weights are buffers (as torch's), the printout is torch's
// (no options), bad options raise at construction.
#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "nn/nn.h"
#include "tensor/factory.h"

namespace fabric::nn {
namespace {

void expect_same(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.sizes(), want.sizes());
  EXPECT_EQ(got.to_vector<double>(), want.to_vector<double>());
}

TEST(LossMarginModules, ForwardIsTheFunctionalWithTheOptionsAndPrintsAsTorch) {
  const Tensor x = randn({4, 5}), z = randn({4, 5}), u = randn({4, 5});
  const Tensor labels = from_vector<float>({1, -1, -1, 1});
  const Tensor signs = sign(randn({4, 5})), bits = gt(rand({4, 5}), 0.5).to(DType::float32);
  const Tensor var = add(rand({4}), 0.5), w = add(rand({5}), 0.5);
  const Tensor idx = from_vector<int64_t>({0, 4, 2, 2});
  const Tensor multi =
      from_vector<int64_t>({1, 3, -1, 0, 0, 4, -1, 0, 0, 0, 0, 1, 2, 3, 4, 2, -1, 0, 0, 0}, {4, 5});
  struct Row {
    std::shared_ptr<Module> module;
    std::function<Tensor()> got, want;
    std::string repr;
  };
  auto margin_ranking = std::make_shared<MarginRankingLoss>(
      MarginRankingLossOptions{.margin = 0.5, .reduction = "sum"});
  auto hinge = std::make_shared<HingeEmbeddingLoss>(
      HingeEmbeddingLossOptions{.margin = 2.0, .reduction = "none"});
  auto soft = std::make_shared<SoftMarginLoss>();
  auto ml_soft =
      std::make_shared<MultiLabelSoftMarginLoss>(MultiLabelSoftMarginLossOptions{.weight = w});
  auto cos_emb = std::make_shared<CosineEmbeddingLoss>(CosineEmbeddingLossOptions{.margin = 0.2});
  auto triplet = std::make_shared<TripletMarginLoss>(TripletMarginLossOptions{
      .margin = 0.5, .p = 1.0, .eps = 1e-4, .swap = true, .reduction = "none"});
  auto poisson =
      std::make_shared<PoissonNLLLoss>(PoissonNLLLossOptions{.log_input = false, .full = true});
  auto gaussian =
      std::make_shared<GaussianNLLLoss>(GaussianNLLLossOptions{.full = true, .eps = 1e-3});
  auto multi_margin =
      std::make_shared<MultiMarginLoss>(MultiMarginLossOptions{.p = 2, .margin = 0.5, .weight = w});
  auto ml_margin =
      std::make_shared<MultiLabelMarginLoss>(MultiLabelMarginLossOptions{.reduction = "sum"});
  auto cos_sim = std::make_shared<CosineSimilarity>(CosineSimilarityOptions{.dim = 0, .eps = 1e-3});
  auto pdist =
      std::make_shared<PairwiseDistance>(PairwiseDistanceOptions{.p = 3.0, .keepdim = true});
  const Tensor rate = add(rand({4, 5}), 0.1), counts = mul(rand({4, 5}), 4.0);
  const std::vector<Row> rows = {
      {margin_ranking, [&] { return (*margin_ranking)(x, z, signs); },
       [&] { return margin_ranking_loss(x, z, signs, 0.5, "sum"); }, "MarginRankingLoss()"},
      {hinge, [&] { return (*hinge)(x, signs); },
       [&] { return hinge_embedding_loss(x, signs, 2.0, "none"); }, "HingeEmbeddingLoss()"},
      {soft, [&] { return (*soft)(x, signs); }, [&] { return soft_margin_loss(x, signs); },
       "SoftMarginLoss()"},
      {ml_soft, [&] { return (*ml_soft)(x, bits); },
       [&] { return multilabel_soft_margin_loss(x, bits, w); }, "MultiLabelSoftMarginLoss()"},
      {cos_emb, [&] { return (*cos_emb)(x, z, labels); },
       [&] { return cosine_embedding_loss(x, z, labels, 0.2); }, "CosineEmbeddingLoss()"},
      {triplet, [&] { return (*triplet)(x, z, u); },
       [&] { return triplet_margin_loss(x, z, u, 0.5, 1.0, 1e-4, true, "none"); },
       "TripletMarginLoss()"},
      {poisson, [&] { return (*poisson)(rate, counts); },
       [&] { return poisson_nll_loss(rate, counts, false, true, 1e-8, "mean"); },
       "PoissonNLLLoss()"},
      {gaussian, [&] { return (*gaussian)(x, z, var); },
       [&] { return gaussian_nll_loss(x, z, var, true, 1e-3, "mean"); }, "GaussianNLLLoss()"},
      {multi_margin, [&] { return (*multi_margin)(x, idx); },
       [&] { return multi_margin_loss(x, idx, 2, 0.5, w); }, "MultiMarginLoss()"},
      {ml_margin, [&] { return (*ml_margin)(x, multi); },
       [&] { return multilabel_margin_loss(x, multi, "sum"); }, "MultiLabelMarginLoss()"},
      {cos_sim, [&] { return (*cos_sim)(x, z); }, [&] { return cosine_similarity(x, z, 0, 1e-3); },
       "CosineSimilarity()"},
      {pdist, [&] { return (*pdist)(x, z); },
       [&] { return pairwise_distance(x, z, 3.0, 1e-6, true); }, "PairwiseDistance()"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.repr);
    expect_same(r.got(), r.want());
    EXPECT_EQ(r.module->str(), r.repr);
  }
  // The losses' weights are buffers named as torch's (so they follow to()); without one, none.
  EXPECT_EQ(ml_soft->named_buffers().size(), 1u);
  EXPECT_EQ(multi_margin->named_buffers().size(), 1u);
  EXPECT_EQ(multi_margin->named_buffers().begin()->first, "weight");
  EXPECT_EQ(MultiMarginLoss().named_buffers().size(), 0u);
  // nn::functional exposes the ops.
  expect_same(nn::functional::cosine_similarity(x, z), cosine_similarity(x, z));
  expect_same(nn::triplet_margin_loss(x, z, u), triplet_margin_loss(x, z, u));
}

TEST(LossMarginModules, BadOptionsRaise) {
  EXPECT_THROW(MarginRankingLoss({.reduction = "avg"}), ValueError);
  EXPECT_THROW(HingeEmbeddingLoss({.reduction = "batchmean"}), ValueError);
  EXPECT_THROW(SoftMarginLoss({.reduction = ""}), ValueError);
  EXPECT_THROW(TripletMarginLoss({.reduction = "avg"}), ValueError);
  EXPECT_THROW(GaussianNLLLoss({.reduction = "avg"}), ValueError);
  EXPECT_THROW(MultiMarginLoss({.p = 3}), ValueError);
  EXPECT_THROW(MultiMarginLoss({.weight = ones({2, 3})}), ValueError);
  EXPECT_THROW(MultiMarginLoss({.weight = ones({3}, {.dtype = DType::int64})}), DTypeError);
  EXPECT_THROW(MultiLabelSoftMarginLoss({.weight = ones({3}, {.dtype = DType::int64})}),
               DTypeError);
}

}  // namespace
}  // namespace fabric::nn
