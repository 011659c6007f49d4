// The optimizer with a real module and autograd: the module's parameters are the tensors the
// optimizer updates in place (no handle swapped), a regression loss goes down, and optimizers
// can be moved without losing their state.
#include <gtest/gtest.h>

#include "nn/linear.h"
#include "optim/optim.h"
#include "optim_test_util.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric::optim {
namespace {
using namespace testing;

TEST(TrainingLoop, AdamWFitsALinearModelInPlace) {
  Generator gen(0);
  auto fc = nn::make<nn::Linear>({.in_features = 3, .out_features = 1});
  const Tensor x = randn({64, 3}, {}, &gen);
  const Tensor w_true = from_vector<float>({1.5f, -2.0f, 0.5f}, {3, 1});
  const Tensor y = matmul(x, w_true) + 0.25;
  const std::vector<Tensor> params = fc->parameters();
  const Tensor weight_before = params[0];
  const void* storage_before = params[0].data_ptr();

  AdamW opt(fc->parameters(), {.lr = 0.05, .weight_decay = 0});
  CosineWithWarmup sched(opt, 10, 300, 1e-3);
  double first_loss = 0, last_loss = 0;
  for (int it = 0; it < 300; ++it) {
    opt.zero_grad();
    Tensor loss = mse_loss((*fc)(x), y);
    loss.backward();
    clip_grad_norm_(fc->parameters(), 10.0);
    opt.step();
    sched.step();
    (it == 0 ? first_loss : last_loss) = loss.item<double>();
  }
  EXPECT_LT(last_loss, first_loss * 1e-3) << first_loss << " -> " << last_loss;
  // The module still holds the very tensors the optimizer updated.
  EXPECT_TRUE(fc->parameters()[0].is_same(weight_before));
  EXPECT_EQ(fc->parameters()[0].data_ptr(), storage_before);
  expect_close(values(fc->parameters()[0]), {1.5, -2.0, 0.5}, 2e-2, "weight");
}

TEST(TrainingLoop, MovedOptimizerKeepsState) {
  Tensor p = param({1.0, 2.0});
  Adam a({p}, {.lr = 0.1});
  set_grad_values(p, {1.0, 1.0});
  a.step();
  Adam b = std::move(a);
  ASSERT_NE(b.state(p), nullptr);
  EXPECT_EQ(b.state(p)->at("step").item<double>(), 1.0);
  b.step();
  EXPECT_EQ(b.state(p)->at("step").item<double>(), 2.0);
}

}  // namespace
}  // namespace fabric::optim
