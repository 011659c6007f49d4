// Embedding(scale_grad_by_freq): the counts scale the gradient once, at every order, as torch 1.13
// (values printed with /usr/bin/python3): the Hessian of a row used twice was divided by 4, not 2.
#include <gtest/gtest.h>

#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {
namespace {

TEST(EmbeddingFreqSecondOrder, TheCountsScaleTheSecondDerivativeOnce) {
  auto emb = make<Embedding>(
      {.num_embeddings = 4, .embedding_dim = 2, .padding_idx = 1, .scale_grad_by_freq = true});
  emb->to(DType::float64);
  Tensor w = emb->weight;
  {
    NoGradGuard no_grad;
    w.copy_(from_vector<double>({0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8}, {4, 2}));
  }
  const Tensor idx = from_vector<int64_t>({0, 1, 2, 2, 3, 0}, {2, 3});
  const Tensor g = grad({sum(pow((*emb)(idx), Scalar(3)))}, {w}, {}, std::nullopt, true)[0];
  const std::vector<double> first = g.to_vector<double>(),
                            second = grad({sum(g)}, {w})[0].to_vector<double>();
  const std::vector<double> torch_first = {0.03, 0.12, 0, 0, 0.75, 1.08, 1.47, 1.92};
  const std::vector<double> torch_second = {0.6, 1.2, 0, 0, 3.0, 3.6, 4.2, 4.8};
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_NEAR(first[i], torch_first[i], 1e-12) << i;
    EXPECT_NEAR(second[i], torch_second[i], 1e-12) << i;
  }
}

}  // namespace
}  // namespace fabric::nn
