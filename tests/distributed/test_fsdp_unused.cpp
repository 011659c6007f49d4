// FSDP with a parameter no rank uses (2 ranks, Gloo over loopback), against one process with the
// global batch and AdamW with weight decay: a unit whose parameters got no gradient on any rank
// keeps no gradient, so the optimizer neither decays it nor creates state for it (PyTorch's FSDP
// leaves that FlatParameter's grad None); a parameter unused beside used ones in one flat
// parameter is stepped with a zero gradient, as PyTorch's FSDP does.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "nn/linear.h"
#include "optim/adam.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

using dist_test::self_argv;
using namespace std::chrono_literals;

constexpr int64_t kB = 4, kSteps = 8;
constexpr double kLr = 1e-2, kWeightDecay = 0.1;

// `unused` never runs.
struct Net : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2, unused;
  Net() {
    manual_seed(5);
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(nn::LinearOptions{5, 7}));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(nn::LinearOptions{7, 3}));
    unused = register_module("unused", std::make_shared<nn::Linear>(nn::LinearOptions{2, 2}));
  }
  std::string type_name() const override { return "Net"; }
  Tensor forward(const Tensor& x) override { return (*fc2)(tanh((*fc1)(x))); }
};

struct Data {
  Tensor x, y;  // (kSteps, 2 * kB, 5), (kSteps, 2 * kB, 3)
};

Data make_data() {
  Generator g(77);
  return {randn({kSteps, 2 * kB, 5}, {.dtype = DType::float32}, &g),
          randn({kSteps, 2 * kB, 3}, {.dtype = DType::float32}, &g)};
}

struct Result {
  nn::StateDict weights;
  size_t state_entries = 0;  // optimizer state entries in the single-process layout
};

Result train_single(const Data& d) {
  auto net = std::make_shared<Net>();
  optim::AdamW opt(net->parameters(), {.lr = kLr, .weight_decay = kWeightDecay});
  for (int64_t s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    mse_loss((*net)(d.x[s]), d.y[s]).backward();
    opt.step();
  }
  return {net->state_dict(), opt.state_dict().state.size()};
}

// Each of 2 ranks trains on its kB rows; rank 0 checks the gathered weights and optimizer state
// against one process.
void expect_fsdp(std::vector<std::string> auto_wrap_policy,
                 const std::function<void(const Result&, const Result&)>& check) {
  const Data d = make_data();
  Fabric fab({.accelerator = "cpu", .strategy = "fsdp", .devices = 2, .timeout = 60s,
              .fsdp = {.auto_wrap_policy = std::move(auto_wrap_policy)}, .launch_argv = self_argv()});
  fab.launch([&](Fabric& f) {
    const int64_t r = f.global_rank();
    auto net = std::make_shared<Net>();
    optim::AdamW opt(net->parameters(), {.lr = kLr, .weight_decay = kWeightDecay});
    auto [model, fopt] = f.setup(net, opt);
    for (int64_t s = 0; s < kSteps; ++s) {
      fopt.zero_grad();
      f.backward(mse_loss(model(d.x[s].narrow(0, r * kB, kB)), d.y[s].narrow(0, r * kB, kB)));
      fopt.step();
    }
    const Result got{f.strategy_object().module_state_to_save(*net),
                     f.strategy_object().optimizer_state_to_save(opt).state.size()};
    if (r == 0) check(got, train_single(d));
  });
}

double rel_diff(const Tensor& a, const Tensor& b) {
  return amax(abs(a - b)).item<double>() / std::max(amax(abs(b)).item<double>(), 1e-12);
}

// Every Linear its own unit: `unused`'s flat parameter gets no gradient anywhere.
TEST(FSDPUnusedParameters, AUnitNoRankUsedIsNotStepped) {
  expect_fsdp({"Linear"}, [](const Result& got, const Result& want) {
    for (const auto& [name, t] : want.weights) EXPECT_LT(rel_diff(got.weights.at(name), t), 1e-5) << name;
    EXPECT_EQ(rel_diff(got.weights.at("unused.weight"), want.weights.at("unused.weight")), 0.0);
    EXPECT_EQ(rel_diff(got.weights.at("unused.bias"), want.weights.at("unused.bias")), 0.0);
    EXPECT_EQ(want.state_entries, 4u);  // fc1 and fc2: none for unused.*
    EXPECT_EQ(got.state_entries, want.state_entries);
  });
}

// One unit (the root): `unused` shares the flat parameter of the used weights, which got a
// gradient, so it is stepped with a zero gradient and only weight decay moves it, as PyTorch's
// FSDP does (its _reset_is_grad_none gives every parameter of that FlatParameter a gradient).
TEST(FSDPUnusedParameters, AParameterBesideUsedOnesInItsFlatParameterIsStepped) {
  expect_fsdp({}, [](const Result& got, const Result& want) {
    for (const char* name : {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"})
      EXPECT_LT(rel_diff(got.weights.at(name), want.weights.at(name)), 1e-5) << name;
    const Tensor decayed = want.weights.at("unused.weight") * std::pow(1 - kLr * kWeightDecay, double(kSteps));
    EXPECT_LT(rel_diff(got.weights.at("unused.weight"), decayed), 1e-6);
    EXPECT_EQ(got.state_entries, 6u);
  });
}

}  // namespace
}  // namespace fabric
