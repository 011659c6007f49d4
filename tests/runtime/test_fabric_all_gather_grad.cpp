// Fabric::all_gather(t, sync_grads), the reference's all_gather(..., sync_grads=True): the gather
// joins the autograd graph and backward hands each rank the sum over every rank of the gradient
// for its row (torch.distributed.nn.functional.all_gather); without sync_grads the result stays
// outside autograd. One process and two (Gloo).
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "autograd/grad_mode.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

using namespace std::chrono_literals;

Tensor leaf(const std::vector<float>& v, const Shape& shape) {
  Tensor t = from_vector<float>(v, shape);
  t.set_requires_grad(true);
  return t;
}

TEST(FabricAllGatherGrad, OneProcessGradientIsThatOfUnsqueeze) {
  Fabric fab({.accelerator = "cpu"});
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  const Tensor w = from_vector<float>({0.5f, -1, 2, 3, -4, 0.25f}, {1, 2, 3});
  Tensor x = leaf(values, {2, 3});
  const Tensor gathered = fab.all_gather(x, /*sync_grads=*/true);
  EXPECT_EQ(gathered.sizes(), (Shape{1, 2, 3}));
  EXPECT_TRUE(gathered.requires_grad());
  EXPECT_EQ(gathered.to_vector<float>(), values);
  fab.backward(sum(mul(mul(gathered, gathered), w)));

  Tensor y = leaf(values, {2, 3});
  const Tensor unsqueezed = y.unsqueeze(0);
  sum(mul(mul(unsqueezed, unsqueezed), w)).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().to_vector<float>(), y.grad().to_vector<float>());
}

// The node saves no tensor: as PyTorch runs such a node again, a second backward through it works
// without retain_graph, and the gradients accumulate.
TEST(FabricAllGatherGrad, ASecondBackwardRunsTheNodeAgain) {
  Fabric fab({.accelerator = "cpu"});
  Tensor x = leaf({1, 2}, {2});
  const Tensor gathered = fab.all_gather(x, true);
  gathered.backward(from_vector<float>({3, -1}, {1, 2}));
  gathered.backward(from_vector<float>({3, -1}, {1, 2}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{6, -2}));
}

// As the reference (which gathers under no_grad unless sync_grads): no graph without
// sync_grads, for an input that needs no gradient, or with grad mode off.
TEST(FabricAllGatherGrad, OutsideAutogradUnlessAsked) {
  Fabric fab({.accelerator = "cpu"});
  const Tensor x = leaf({1, 2, 3}, {3});
  EXPECT_FALSE(fab.all_gather(x).requires_grad());
  EXPECT_FALSE(fab.all_gather(x, /*sync_grads=*/false).requires_grad());
  EXPECT_FALSE(fab.all_gather(from_vector<float>({1, 2}, {2}), true).requires_grad());
  NoGradGuard no_grad;
  EXPECT_FALSE(fab.all_gather(x, true).requires_grad());
}

// Rank r's input x_r = [10r + 1, 10r + 2, 10r + 3]; each rank's loss is sum(W_r * g * g) over the
// gathered g (2, 3) with its own weights W_r[j][k] = 100 (r + 1) + 10 j + k. Rank r's gradient is
// the sum over both losses of their row r: 2 x_r[k] (W_0[r][k] + W_1[r][k])
// = 2 x_r[k] (300 + 20 r + 2 k).
TEST(FabricAllGatherGrad, TwoRanksGetTheSumOverRanksOfTheirRowsGradient) {
  Fabric fab({.accelerator = "cpu",
              .strategy = "ddp",
              .devices = 2,
              .timeout = 120s,
              .launch_argv = dist_test::self_argv()});
  fab.launch([](Fabric& f) {
    const int64_t r = f.global_rank();
    auto input_of = [](int64_t rank) {
      std::vector<float> v;
      for (int64_t k = 0; k < 3; ++k) v.push_back(float(10 * rank + k + 1));
      return v;
    };
    Tensor x = leaf(input_of(r), {3});
    const Tensor gathered = f.all_gather(x, /*sync_grads=*/true);
    std::vector<float> both = input_of(0);
    for (float v : input_of(1)) both.push_back(v);
    EXPECT_EQ(gathered.to_vector<float>(), both) << "rank " << r;
    EXPECT_FALSE(f.all_gather(x).requires_grad());

    std::vector<float> weights;
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 3; ++k) weights.push_back(float(100 * (r + 1) + 10 * j + k));
    const Tensor w = from_vector<float>(weights, {2, 3});
    f.backward(sum(mul(mul(gathered, gathered), w)));

    std::vector<float> want;
    const std::vector<float> mine = input_of(r);
    for (int64_t k = 0; k < 3; ++k)
      want.push_back(2 * mine[size_t(k)] * float(300 + 20 * r + 2 * k));
    ASSERT_TRUE(x.grad().defined()) << "rank " << r;
    EXPECT_EQ(x.grad().to_vector<float>(), want) << "rank " << r;
  });
}

}  // namespace
}  // namespace fabric
