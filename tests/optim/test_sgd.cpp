// SGD: hand-computed steps, then momentum/dampening/Nesterov/weight decay/maximize against a
// float64 re-implementation of PyTorch's update, param groups and option errors.
#include <gtest/gtest.h>

#include "optim/sgd.h"
#include "optim_test_util.h"
#include "tensor/ops.h"

namespace fabric::optim {
namespace {
using namespace testing;

// PyTorch's SGD, written from its documented algorithm.
struct RefSGD {
  SGDOptions o;
  std::vector<double> buf = {};
  bool has_buf = false;
  void update(std::vector<double>& p, const std::vector<double>& grad) {
    if (!has_buf) buf.assign(p.size(), 0.0);
    for (size_t i = 0; i < p.size(); ++i) {
      double g = o.maximize ? -grad[i] : grad[i];
      g = g + o.weight_decay * p[i];
      if (o.momentum != 0) {
        buf[i] = has_buf ? o.momentum * buf[i] + (1 - o.dampening) * g : g;
        g = o.nesterov ? g + o.momentum * buf[i] : buf[i];
      }
      p[i] = p[i] - o.lr * g;
    }
    has_buf = true;
  }
};

// The gradient of a quadratic bowl, so every step sees a different gradient.
std::vector<double> bowl_grad(const std::vector<double>& p, int step) {
  std::vector<double> g(p.size());
  for (size_t i = 0; i < p.size(); ++i) g[i] = 2.0 * (p[i] - 0.3 * static_cast<double>(i)) + 0.1 * step;
  return g;
}

TEST(SGD, HandComputedPlainAndMomentum) {
  Tensor p = param({1.0, -2.0});
  SGD opt({p}, {.lr = 0.1});
  set_grad_values(p, {0.5, 1.0});
  opt.step();
  expect_close(values(p), {0.95, -2.1}, 1e-15);

  Tensor q = param({1.0});
  SGD mom({q}, {.lr = 0.1, .momentum = 0.9});
  set_grad_values(q, {0.5});
  mom.step();  // buf = 0.5, q = 1 - 0.05
  expect_close(values(q), {0.95}, 1e-15);
  mom.step();  // buf = 0.9 * 0.5 + 0.5 = 0.95, q = 0.95 - 0.095
  expect_close(values(q), {0.855}, 1e-15);
  expect_close(values(mom.state(q)->at("momentum_buffer")), {0.95}, 1e-15);
}

TEST(SGD, HandComputedNesterovWithWeightDecay) {
  Tensor p = param({2.0});
  SGD opt({p}, {.lr = 0.5, .momentum = 0.5, .weight_decay = 0.25, .nesterov = true});
  set_grad_values(p, {1.0});
  opt.step();  // g = 1 + 0.5 = 1.5, buf = 1.5, g = 1.5 + 0.75 = 2.25, p = 2 - 1.125
  expect_close(values(p), {0.875}, 1e-15);
  opt.step();  // g = 1 + 0.21875 = 1.21875, buf = 0.75 + 1.21875 = 1.96875, g = 1.21875 + 0.984375
  expect_close(values(p), {0.875 - 0.5 * 2.203125}, 1e-15);
}

void run_against_reference(const SGDOptions& o, const char* what) {
  std::vector<double> ref = {0.5, -1.25, 2.0, 0.0, 3.5};
  Tensor p = param(ref);
  SGD opt({p}, o);
  RefSGD r{o};
  for (int step = 0; step < 4; ++step) {
    const std::vector<double> g = bowl_grad(values(p), step);
    set_grad_values(p, g);
    opt.step();
    r.update(ref, g);
    expect_close(values(p), ref, 1e-12, what);
  }
}

TEST(SGD, VariantsMatchReference) {
  run_against_reference({.lr = 0.05}, "plain");
  run_against_reference({.lr = 0.05, .weight_decay = 0.1}, "weight decay");
  run_against_reference({.lr = 0.05, .momentum = 0.9}, "momentum");
  run_against_reference({.lr = 0.05, .momentum = 0.9, .dampening = 0.3}, "dampening");
  run_against_reference({.lr = 0.05, .momentum = 0.8, .weight_decay = 0.01, .nesterov = true}, "nesterov");
  run_against_reference({.lr = 0.05, .momentum = 0.7, .maximize = true}, "maximize");
}

TEST(SGD, MaximizeAscends) {
  Tensor p = param({1.0});
  SGD opt({p}, {.lr = 0.1, .maximize = true});
  set_grad_values(p, {2.0});
  opt.step();
  expect_close(values(p), {1.2}, 1e-15);
}

TEST(SGD, ParamGroupsWithDifferentLrs) {
  Tensor a = param({1.0, 1.0}), b = param({1.0});
  SGD opt(std::vector<SGD::Group>{{.params = {a}, .options = {.lr = 0.1}}, {.params = {b}, .options = {.lr = 0.01}}},
          {.lr = 0.5});
  ASSERT_EQ(opt.num_param_groups(), 2u);
  EXPECT_EQ(opt.lr(0), 0.1);
  EXPECT_EQ(opt.lr(1), 0.01);
  set_grad_values(a, {1.0, 2.0});
  set_grad_values(b, {1.0});
  opt.step();
  expect_close(values(a), {0.9, 0.8}, 1e-15);
  expect_close(values(b), {0.99}, 1e-15);

  Tensor c = param({4.0});
  opt.add_param_group({c});  // the defaults' lr
  set_grad_values(c, {1.0});
  opt.step();
  expect_close(values(c), {3.5}, 1e-15);
  EXPECT_EQ(opt.parameters().size(), 3u);
}

TEST(SGD, SkipsParametersWithoutGradient) {
  Tensor a = param({1.0}), b = param({2.0});
  SGD opt({a, b}, {.lr = 0.1, .momentum = 0.9});
  set_grad_values(a, {1.0});
  opt.step();
  expect_close(values(b), {2.0}, 0);
  EXPECT_EQ(opt.state(b), nullptr);
  EXPECT_NE(opt.state(a), nullptr);
}

TEST(SGD, NoStateWithoutMomentum) {
  Tensor a = param({1.0});
  SGD opt({a}, {.lr = 0.1});
  set_grad_values(a, {1.0});
  opt.step();
  EXPECT_TRUE(opt.state_dict().state.empty());
}

TEST(SGD, OptionErrors) {
  Tensor p = param({1.0});
  EXPECT_CONTAINS(thrown<ValueError>([&] { SGD({p}, {.lr = 0.1, .nesterov = true}); }),
                  "Nesterov momentum requires a momentum > 0 and zero dampening");
  EXPECT_THROW(SGD({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}), ValueError);
  EXPECT_CONTAINS(thrown<ValueError>([&] { SGD({p}, {.lr = -1}); }), "invalid learning rate -1");
  EXPECT_THROW(SGD({p}, {.momentum = -0.5}), ValueError);
  EXPECT_THROW(SGD({p}, {.weight_decay = -1e-3}), ValueError);
  EXPECT_CONTAINS(thrown<ValueError>([&] { SGD(std::vector<Tensor>{}, {}); }), "empty parameter list");
}

// torch checks Nesterov's needs on the constructor's defaults only: a group with nesterov and
// momentum 0 (given to the constructor or added later) is accepted and steps without momentum
// (torch 1.13: add_param_group({'params': [q], 'momentum': 0.0}) on SGD(momentum=0.9,
// nesterov=True), and SGD([{'params': [p], 'momentum': 0.0}], momentum=0.9, nesterov=True)).
TEST(SGD, NesterovIsCheckedOnTheConstructorsOptionsOnly) {
  Tensor p = param({1.0}), q = param({2.0});
  const SGDOptions nesterov{.lr = 0.1, .momentum = 0.9, .nesterov = true};
  SGD opt({p}, nesterov);
  SGDOptions no_momentum = nesterov;
  no_momentum.momentum = 0;
  opt.add_param_group({{q}, no_momentum});
  set_grad_values(q, {1.0});
  opt.step();
  EXPECT_EQ(q.to_vector<double>()[0], 2.0 - 0.1);
  EXPECT_NO_THROW(SGD({{{p}, no_momentum}}, nesterov));
  EXPECT_THROW(SGD({{{p}, nesterov}}, no_momentum), ValueError);
}

TEST(SGD, ParameterErrors) {
  Tensor p = param({1.0});
  EXPECT_CONTAINS(thrown<ValueError>([&] { SGD({p, p}, {}); }), "more than once");
  SGD opt({p}, {});
  EXPECT_CONTAINS(thrown<ValueError>([&] { opt.add_param_group({p}); }), "another parameter group");
  Tensor fp8 = zeros({2}, {.dtype = DType::float8_e4m3fn});
  fp8.set_requires_grad(true);
  EXPECT_CONTAINS(thrown<DTypeError>([&] { SGD({fp8}, {}); }),
                  "SGD: parameter 0 of the new group has dtype float8_e4m3fn; optimizers update "
                  "float64, float32, bfloat16 or float16 parameters");
  Tensor nonleaf = param({1.0, 2.0}) * 2.0;
  EXPECT_CONTAINS(thrown<ValueError>([&] { SGD({nonleaf}, {}); }), "non-leaf");
  EXPECT_THROW(SGD({Tensor()}, {}), ValueError);
}

// torch takes a tensor that cannot have a gradient (a quantized weight's packed bytes, passed
// with model.parameters() beside LoRA's adapters) and never touches it.
TEST(SGD, FrozenTensorsOfOtherDtypesAreTakenAndLeftAlone) {
  Tensor packed = from_vector<int64_t>({1, 2}).to(DType::uint8), a = param({1.0});
  SGD opt({packed, a}, {.lr = 0.1, .momentum = 0.9});
  set_grad_values(a, {1.0});
  opt.step();
  opt.step();
  expect_close(values(a), {1.0 - 0.1 - 0.1 * 1.9}, 1e-15);
  EXPECT_EQ(packed.to(DType::int64).to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(opt.state(packed), nullptr);
  EXPECT_EQ(opt.state_dict().param_groups[0].params, (std::vector<int64_t>{0, 1}));
}

TEST(SGD, GradientShapeMismatch) {
  Tensor p = param({1.0, 2.0});
  SGD opt({p}, {.lr = 0.1});
  // set_grad checks shapes itself, so the mismatch can only come from a parameter reshaped after.
  set_grad_values(p, {1.0, 1.0});
  p.set_data(from_vector<double>({1.0, 2.0, 3.0}));
  EXPECT_THROW(opt.step(), ShapeError);
}

}  // namespace
}  // namespace fabric::optim
