// LBFGS through the Fabric wrappers: its step evaluates the closure itself, several times, so
// FabricOptimizer::step hands the closure through the precision plugin to LBFGS.step(closure), as
// Lightning's _FabricOptimizer.step does, instead of running it once before a plain step() (which
// LBFGS refuses). Under 32-true and 64-true the trajectory is the one of LBFGS stepped directly,
// bit for bit, and step returns the closure's first loss, as the optimizer's step does; 16-mixed
// refuses LBFGS before the closure runs; DDP ranks step in lockstep; ZeRO and FSDP refuse it at
// setup. Other optimizers still run the closure once, then step.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "nn/mlp.h"
#include "optim/lbfgs.h"
#include "optim/sgd.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kIn = 4, kHidden = 8, kOut = 2, kRows = 16, kSteps = 5;

struct Data {
  Tensor x, y;  // (kRows, kIn), (kRows, kOut), float32
};

Data make_data() {
  Generator g(2024);
  return {randn({kRows, kIn}, {.dtype = DType::float32}, &g),
          randn({kRows, kOut}, {.dtype = DType::float32}, &g)};
}

std::shared_ptr<nn::MLP> make_mlp() {
  manual_seed(11);
  return std::make_shared<nn::MLP>(
      nn::MLPConfig{.sizes = {kIn, kHidden, kOut}, .activation = "tanh"});
}

// Both line-search modes: a fixed step of lr, and strong Wolfe (which evaluates more often).
std::vector<optim::LBFGSOptions> lbfgs_variants() {
  return {{.lr = 0.5, .max_iter = 4, .history_size = 3},
          {.max_iter = 4, .history_size = 3, .line_search_fn = "strong_wolfe"}};
}

std::vector<double> flat_values(const nn::Module& m) {
  std::vector<double> out;
  for (const Tensor& p : m.parameters()) {
    const std::vector<double> v = p.to(DType::float64).to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

struct Trajectory {
  std::vector<double> params;     // after the last step
  std::vector<double> step_loss;  // what each step returned
  int calls = 0;                  // closure evaluations over all steps
};

// LBFGS stepped directly on a module in `dtype` (the precision plugin's conversions replayed:
// input to dtype, output back to float32, the loss in float32).
Trajectory direct(const Data& d, const optim::LBFGSOptions& o, DType dtype) {
  auto mlp = make_mlp();
  mlp->to(dtype);
  optim::LBFGS opt(mlp->parameters(), o);
  Trajectory t;
  const auto closure = [&] {
    ++t.calls;
    opt.zero_grad();
    const Tensor loss = mse_loss(mlp->forward(d.x.to(dtype)).to(DType::float32), d.y);
    backward(loss);
    return loss;
  };
  for (int64_t s = 0; s < kSteps; ++s) t.step_loss.push_back(opt.step(closure).item<double>());
  t.params = flat_values(*mlp);
  return t;
}

Trajectory through_fabric(const Data& d, const optim::LBFGSOptions& o,
                          const std::string& precision) {
  Fabric fab({.accelerator = "cpu", .precision = precision});
  auto mlp = make_mlp();
  optim::LBFGS lbfgs(mlp->parameters(), o);
  auto [model, opt] = fab.setup(mlp, lbfgs);
  Trajectory t;
  const auto closure = [&] {
    ++t.calls;
    opt.zero_grad();
    const Tensor loss = mse_loss(model(d.x), d.y);
    fab.backward(loss);
    return loss;
  };
  for (int64_t s = 0; s < kSteps; ++s) {
    const FabricOptimizer::StepResult r = opt.step(closure);
    EXPECT_TRUE(r.stepped);
    t.step_loss.push_back(r.loss.item<double>());
  }
  t.params = flat_values(*mlp);
  return t;
}

void expect_same_trajectory(const std::string& precision, DType dtype) {
  const Data d = make_data();
  for (const optim::LBFGSOptions& o : lbfgs_variants()) {
    SCOPED_TRACE(precision + " line_search_fn='" + o.line_search_fn + "'");
    const Trajectory want = direct(d, o, dtype);
    const Trajectory got = through_fabric(d, o, precision);
    EXPECT_GT(got.calls, kSteps);  // LBFGS evaluated the closure several times per step
    EXPECT_EQ(got.calls, want.calls);
    EXPECT_EQ(got.step_loss, want.step_loss);
    EXPECT_EQ(got.params, want.params);
    EXPECT_LT(got.step_loss.back(), got.step_loss.front());  // it did descend
  }
}

TEST(FabricLBFGS, ThirtyTwoTrueStepsAsLBFGSDirectlyBitForBit) {
  expect_same_trajectory("32-true", DType::float32);
}

TEST(FabricLBFGS, SixtyFourTrueStepsAsLBFGSDirectlyBitForBit) {
  expect_same_trajectory("64-true", DType::float64);
}

// No scaler: the closure reaches LBFGS, which evaluates it under autocast as often as it needs.
TEST(FabricLBFGS, Bf16MixedSteps) {
  const Data d = make_data();
  const Trajectory t = through_fabric(d, lbfgs_variants()[0], "bf16-mixed");
  EXPECT_GT(t.calls, kSteps);
  EXPECT_LT(t.step_loss.back(), 0.9 * t.step_loss.front());
}

// 16-true/bf16-true: the closure reaches LBFGS, whose own dtype check (float32/float64 parameters)
// is what refuses the half parameters, before the closure runs; not "needs the closure".
TEST(FabricLBFGS, HalfTrueReachesLBFGSStepWithTheClosure) {
  const Data d = make_data();
  for (const std::string precision : {"bf16-true", "16-true"}) {
    Fabric fab({.accelerator = "cpu", .precision = precision});
    auto mlp = make_mlp();
    optim::LBFGS lbfgs(mlp->parameters(), lbfgs_variants()[0]);
    auto [model, opt] = fab.setup(mlp, lbfgs);
    int calls = 0;
    const std::string msg = thrown<DTypeError>([&] {
      opt.step([&] {
        ++calls;
        return mse_loss(model(d.x), d.y);
      });
    });
    EXPECT_CONTAINS(msg, "LBFGS: float32 and float64 parameters are supported");
    EXPECT_EQ(calls, 0) << precision;
  }
}

// The GradScaler can neither unscale before LBFGS evaluates the loss nor skip its step: refused
// before anything runs, as the reference's MixedPrecision.
TEST(FabricLBFGS, SixteenMixedRefusesLBFGSBeforeTheClosureRuns) {
  const Data d = make_data();
  Fabric fab({.accelerator = "cpu", .precision = "16-mixed"});
  auto mlp = make_mlp();
  const std::vector<double> before = flat_values(*mlp);
  optim::LBFGS lbfgs(mlp->parameters(), lbfgs_variants()[0]);
  auto [model, opt] = fab.setup(mlp, lbfgs);
  int calls = 0;
  const std::string msg = thrown<DTypeError>([&] {
    opt.step([&] {
      ++calls;
      const Tensor loss = mse_loss(model(d.x), d.y);
      fab.backward(loss);
      return loss;
    });
  });
  EXPECT_CONTAINS(msg, "AMP and the LBFGS optimizer are not compatible");
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(flat_values(*mlp), before);
}

// Without a closure LBFGS still says it needs one.
TEST(FabricLBFGS, StepWithoutAClosureIsLBFGSError) {
  Fabric fab({.accelerator = "cpu"});
  auto mlp = make_mlp();
  optim::LBFGS lbfgs(mlp->parameters());
  auto [model, opt] = fab.setup(mlp, lbfgs);
  EXPECT_THROW(opt.step(), ValueError);
}

// Any other optimizer: the closure runs once (grad mode on), then the plain step; step returns
// whether it stepped and the closure's loss.
TEST(FabricLBFGS, OtherOptimizersRunTheClosureOnceThenStep) {
  const Data d = make_data();
  auto ref = make_mlp();
  optim::SGD ref_sgd(ref->parameters(), {.lr = 0.1});
  ref_sgd.zero_grad();
  backward(mse_loss(ref->forward(d.x), d.y));
  ref_sgd.step();

  Fabric fab({.accelerator = "cpu"});
  auto mlp = make_mlp();
  optim::SGD sgd(mlp->parameters(), {.lr = 0.1});
  auto [model, opt] = fab.setup(mlp, sgd);
  int calls = 0;
  Tensor returned;
  const FabricOptimizer::StepResult r = opt.step([&] {
    ++calls;
    opt.zero_grad();
    returned = mse_loss(model(d.x), d.y);
    fab.backward(returned);
    return returned;
  });
  EXPECT_TRUE(r);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r.loss.item<double>(), returned.item<double>());
  EXPECT_EQ(flat_values(*mlp), flat_values(*ref));
  EXPECT_FALSE(opt.step().loss.defined());  // no closure, no loss
}

// ZeRO and FSDP step each rank's partition: LBFGS's whole-parameter directions and line search
// cannot run there, so setup refuses it (the closure would otherwise reach a sharded LBFGS).
TEST(FabricLBFGS, ShardingStrategiesRefuseLBFGSAtSetup) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"deepspeed_stage_1", "ZeRO (strategy 'deepspeed')"},
      {"deepspeed_stage_2", "ZeRO (strategy 'deepspeed')"},
      {"deepspeed_stage_3", "ZeRO-3 (strategy 'deepspeed')"},
      {"fsdp", "FSDP (strategy 'fsdp')"}};
  for (const auto& [strategy, who] : cases) {
    Fabric fab(
        {.accelerator = "cpu", .strategy = strategy, .devices = 1, .precision = "bf16-mixed"});
    auto mlp = make_mlp();
    optim::LBFGS lbfgs(mlp->parameters());
    const std::string msg = thrown<NotImplementedError>([&] { fab.setup(mlp, lbfgs); });
    EXPECT_CONTAINS(msg, "the LBFGS optimizer cannot be sharded");
    EXPECT_CONTAINS(msg, who);
  }
}

// DDP: every closure call's Fabric::backward averages the ranks' gradients, and the closure
// returns the ranks' mean loss, so both ranks take the same decisions and stay identical; they
// match one process over the whole batch up to the reduction's rounding.
TEST(FabricLBFGS, DDPRanksStepInLockstepAndMatchOneProcess) {
  const Data d = make_data();
  const optim::LBFGSOptions o = lbfgs_variants()[1];
  const Trajectory want = direct(d, o, DType::float32);
  Fabric fab({.accelerator = "cpu",
              .strategy = "ddp",
              .devices = 2,
              .timeout = 60s,
              .launch_argv = dist_test::self_argv()});
  fab.launch([&](Fabric& f) {
    const int64_t half = kRows / 2, r = f.global_rank();
    const Tensor x = d.x.narrow(0, r * half, half), y = d.y.narrow(0, r * half, half);
    auto mlp = make_mlp();
    optim::LBFGS lbfgs(mlp->parameters(), o);
    auto [model, opt] = f.setup(mlp, lbfgs);
    int calls = 0;
    const auto closure = [&] {
      ++calls;
      opt.zero_grad();
      const Tensor loss = mse_loss(model(x), y);
      f.backward(loss);
      return f.all_reduce(loss.detach(), "mean");
    };
    for (int64_t s = 0; s < kSteps; ++s) ASSERT_TRUE(opt.step(closure));
    const std::vector<double> got = flat_values(*mlp);
    const Tensor all = f.all_gather(from_vector<double>(got));
    EXPECT_EQ(all[0].to_vector<double>(), all[1].to_vector<double>()) << "rank " << r;
    EXPECT_EQ(calls, want.calls) << "rank " << r;
    ASSERT_EQ(got.size(), want.params.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want.params[i], 1e-4) << "rank " << r << " i " << i;
  });
}

}  // namespace
}  // namespace fabric
