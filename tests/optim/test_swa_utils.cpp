// torch.optim.swa_utils against torch 1.13 (swa_torch_rows.h, tools/fixtures/make_swa_rows.py):
// SWALR's lr trajectories and state round trip, AveragedModel's averages and state_dict keys,
// update_bn's recomputed statistics, and the errors naming bad arguments.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "nn/activation.h"
#include "nn/containers.h"
#include "nn/lazy.h"
#include "nn/linear.h"
#include "nn/normalization.h"
#include "optim/lr_composition.h"
#include "optim/lr_decay.h"
#include "optim/sgd.h"
#include "optim/swa_utils.h"
#include "optim_test_util.h"
#include "swa_torch_rows.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric::optim {
namespace {
using namespace testing;

std::unique_ptr<SGD> sgd_for(const std::vector<double>& lrs) {
  std::vector<SGD::Group> groups;
  for (double lr : lrs) groups.push_back({.params = {param({0.0})}, .options = {.lr = lr}});
  return std::make_unique<SGD>(std::move(groups));
}

TEST(Swalr, MatchesTorchTrajectories) {
  for (const SwalrRow& row : kSwalrRows) {
    SCOPED_TRACE(row.name);
    auto opt = sgd_for(row.lrs);
    SWALR s(*opt, row.swa_lrs, row.anneal_epochs, row.strategy);
    std::vector<double> got = s.get_last_lr();
    for (int i = 0; i < 15; ++i) {
      s.step();
      for (double lr : s.get_last_lr()) got.push_back(lr);
    }
    expect_close(got, row.expected, 1e-15);
    EXPECT_EQ(opt->lr(0), s.get_last_lr()[0]);
  }
}

TEST(Swalr, StateRoundTripContinuesIdentically) {
  const SwalrRow& row = kSwalrRows[0];
  auto opt = sgd_for(row.lrs);
  SWALR s(*opt, row.swa_lrs, row.anneal_epochs, row.strategy);
  s.step();
  s.step();
  const auto saved = s.state_dict().flatten();
  auto opt2 = sgd_for(row.lrs);
  SWALR s2(*opt2, row.swa_lrs, row.anneal_epochs, row.strategy);
  s2.load_state_dict(SchedulerState::unflatten(saved));
  // torch restores the groups' lrs with the optimizer's own state_dict.
  for (size_t g = 0; g < row.lrs.size(); ++g) opt2->set_lr(g, s2.get_last_lr()[g]);
  std::vector<double> got = s2.get_last_lr();
  for (int i = 2; i < 15; ++i) {
    s2.step();
    for (double lr : s2.get_last_lr()) got.push_back(lr);
  }
  const std::vector<double> want(row.expected.begin() + 2 * 2, row.expected.end());
  expect_close(got, want, 1e-15);
}

// Inside SequentialLR, SWALR anneals by torch's _step_count, which the milestone's step(0) does
// not rewind as it does last_epoch (it ran a step behind torch), and which SequentialLR's
// _initial_step() restarts for its first scheduler. torch 1.13's sequences:
TEST(Swalr, InsideSequentialLrCountsTorchsSteps) {
  auto run = [](auto make, int steps) {
    auto opt = sgd_for({0.1});
    auto s = make(*opt);
    std::vector<double> got = s->get_last_lr();
    for (int i = 0; i < steps; ++i) {
      s->step();
      got.push_back(s->get_last_lr()[0]);
    }
    return got;
  };
  expect_close(run(
                   [](SGD& o) {
                     return std::make_unique<SequentialLR>(
                         o,
                         std::vector<std::shared_ptr<LRScheduler>>{
                             std::make_shared<LinearLR>(o, 0.5, 1.0, 4),
                             std::make_shared<SWALR>(o, 0.02, 5, "cos")},
                         std::vector<int64_t>{4});
                   },
                   10),
               {0.05, 0.0625, 0.075, 0.08750000000000001, 0.08105432356015448, 0.06417932356015449,
                0.04332067643984553, 0.026445676439845526, 0.02, 0.02, 0.02},
               1e-15);
  expect_close(
      run(
          [](SGD& o) {
            return std::make_unique<SequentialLR>(o,
                                                  std::vector<std::shared_ptr<LRScheduler>>{
                                                      std::make_shared<SWALR>(o, 0.02, 3, "linear"),
                                                      std::make_shared<ExponentialLR>(o, 0.5)},
                                                  std::vector<int64_t>{5});
          },
          8),
      {0.1, 0.07333333333333335, 0.046666666666666676, 0.02, 0.02, 0.1, 0.05, 0.025, 0.0125},
      1e-15);
}

TEST(Swalr, BadArgumentsRaise) {
  auto opt = sgd_for({0.5, 0.1});
  EXPECT_CONTAINS(thrown<ValueError>([&] { SWALR s(*opt, {0.1, 0.2, 0.3}); }), "swa_lr has 3");
  EXPECT_CONTAINS(thrown<ValueError>([&] { SWALR s(*opt, 0.1, 10, "step"); }), "'cos' or 'linear'");
  EXPECT_CONTAINS(thrown<ValueError>([&] { SWALR s(*opt, 0.1, -1); }),
                  "anneal_epochs must be equal or greater than 0");
}

std::shared_ptr<nn::Module> make_linear_bn() {
  return nn::make<nn::Sequential>({nn::make<nn::Linear>({.in_features = 3, .out_features = 2}),
                                   nn::make<nn::BatchNorm1d>({.num_features = 2})});
}

// Copies `flat` (every state_dict value in key order) into the module's state.
void set_state(const nn::Module& m, const std::vector<double>& flat) {
  size_t at = 0;
  for (const auto& [key, t] : m.state_dict()) {
    const auto n = static_cast<size_t>(t.numel());
    ASSERT_LE(at + n, flat.size()) << key;
    std::vector<double> part(flat.begin() + at, flat.begin() + at + n);
    Tensor(t).copy_(from_vector<double>(part).reshape(t.sizes()));
    at += n;
  }
  ASSERT_EQ(at, flat.size());
}

std::vector<double> flat_state(const nn::Module& m) {
  std::vector<double> out;
  for (const auto& [key, t] : m.state_dict()) {
    for (double v : t.to(DType::float64).to_vector<double>()) out.push_back(v);
  }
  return out;
}

TEST(AveragedModel, MatchesTorchAverages) {
  for (const AveragedRow& row : kAveragedRows) {
    SCOPED_TRACE(std::string(row.avg_fn) + (row.use_buffers ? " use_buffers" : ""));
    auto model = make_linear_bn();
    model->to(DType::float64);
    set_state(*model, kAveragedSnapshots[0]);
    AveragedModel swa(*model, make_linear_bn,
                      std::string(row.avg_fn) == "ema" ? ema_avg_fn(0.9) : AvgFn{},
                      row.use_buffers);
    for (size_t i = 1; i < kAveragedSnapshots.size(); ++i) {
      set_state(*model, kAveragedSnapshots[i]);
      swa.update_parameters(*model);
    }
    expect_close(flat_state(swa.module()), row.expected, 1e-14);
    EXPECT_EQ(swa.n_averaged(), 3);
  }
}

TEST(AveragedModel, CopiesTheModelAndKeepsTorchKeys) {
  auto model = make_linear_bn();
  model->eval();
  model->child("0").requires_grad_(false);
  AveragedModel swa(*model, make_linear_bn);
  EXPECT_EQ(swa.state_dict().keys(),
            (std::vector<std::string>{"n_averaged", "module.0.weight", "module.0.bias",
                                      "module.1.weight", "module.1.bias", "module.1.running_mean",
                                      "module.1.running_var", "module.1.num_batches_tracked"}));
  EXPECT_EQ(flat_state(swa.module()), flat_state(*model));
  EXPECT_FALSE(swa.module().is_training());
  EXPECT_FALSE(swa.module().get_parameter("0.weight").requires_grad());
  EXPECT_TRUE(swa.module().get_parameter("1.weight").requires_grad());
  // A copy, not the same storage, and forward delegates to it.
  EXPECT_NE(swa.module().get_parameter("0.weight").impl(), model->get_parameter("0.weight").impl());
  const Tensor x = from_vector<double>({1, 2, 3, -1, 0, 2}, {2, 3}).to(DType::float32);
  EXPECT_EQ(swa(x).to_vector<float>(), (*model)(x).to_vector<float>());
}

// torch deep-copies: each submodule keeps its own training flag. A BatchNorm in eval mode inside a
// training model stays in eval mode in the copy, so the copy's output is the model's and its
// statistics stay (torch 1.13: torch.equal(m(x), swa(x)) is True, num_batches_tracked 0).
TEST(AveragedModel, KeepsEachSubmodulesTrainingFlag) {
  auto model =
      nn::make<nn::Sequential>({nn::make<nn::Linear>({.in_features = 2, .out_features = 2}),
                                nn::make<nn::BatchNorm1d>({.num_features = 2})});
  model->train();
  model->child("1").eval();
  AveragedModel swa(*model, [] {
    return nn::make<nn::Sequential>({nn::make<nn::Linear>({.in_features = 2, .out_features = 2}),
                                     nn::make<nn::BatchNorm1d>({.num_features = 2})});
  });
  EXPECT_TRUE(swa.is_training());
  EXPECT_TRUE(swa.module().is_training());
  EXPECT_TRUE(swa.module().child("0").is_training());
  EXPECT_FALSE(swa.module().child("1").is_training());
  const Tensor x = from_vector<double>({1, 2, 3, 5, -1, 0.5}, {3, 2}).to(DType::float32);
  EXPECT_EQ(swa(x).to_vector<float>(), (*model)(x).to_vector<float>());
  EXPECT_EQ(swa.module().state_dict().at("1.num_batches_tracked").item<int64_t>(), 0);
}

// torch deep-copies: each tensor keeps its own dtype. A float64 head on a float32 body stays
// float64, a bfloat16 body with a float32 head stays mixed, and the averages keep them.
TEST(AveragedModel, KeepsEachTensorsDtype) {
  const auto two_linears = [] {
    return nn::make<nn::Sequential>({nn::make<nn::Linear>({.in_features = 2, .out_features = 2}),
                                     nn::make<nn::Linear>({.in_features = 2, .out_features = 2})});
  };
  for (const auto& [body, head] :
       {std::pair{DType::float32, DType::float64}, std::pair{DType::bfloat16, DType::float32}}) {
    auto model = two_linears();
    model->to(body);
    model->child("1").to(head);
    AveragedModel swa(*model, two_linears);
    for (const auto& [key, t] : swa.module().state_dict())
      EXPECT_EQ(t.dtype(), key.starts_with("0.") ? body : head) << key;
    EXPECT_EQ(flat_state(swa.module()), flat_state(*model));
    Tensor(model->get_parameter("1.bias")).detach().fill_(1);
    swa.update_parameters(*model);
    swa.update_parameters(*model);
    EXPECT_EQ(swa.module().get_parameter("1.bias").dtype(), head);
    EXPECT_EQ(swa.module().get_parameter("0.weight").dtype(), body);
  }
}

// A buffer outside state_dict (non-persistent) is copied too, as deepcopy copies it.
TEST(AveragedModel, CopiesNonPersistentBuffers) {
  struct Scaled : nn::Module {
    Tensor w = register_parameter("w", from_vector<double>({1.0, 2.0}));
    Tensor scale = register_buffer("scale", from_vector<double>({1.0}), /*persistent=*/false);
  };
  Scaled model;
  Tensor(model.scale).fill_(3);
  AveragedModel swa(model, [] { return std::make_shared<Scaled>(); });
  EXPECT_EQ(swa.module().named_buffers().at(0).second.item<double>(), 3.0);
}

TEST(AveragedModel, BadArgumentsRaise) {
  auto model = make_linear_bn();
  EXPECT_CONTAINS(thrown<ValueError>([&] { AveragedModel swa(*model, AveragedModel::Factory{}); }),
                  "make_copy is empty");
  EXPECT_CONTAINS(thrown<ValueError>([&] { ema_avg_fn(1.5); }), "decay must be in [0, 1]");
  AveragedModel swa(*model, make_linear_bn);
  auto other = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  EXPECT_CONTAINS(thrown<ValueError>([&] { swa.update_parameters(*other); }),
                  "the model has 2 parameters");
  auto wider =
      nn::make<nn::Sequential>({nn::make<nn::Linear>({.in_features = 4, .out_features = 2}),
                                nn::make<nn::BatchNorm1d>({.num_features = 2})});
  EXPECT_CONTAINS(thrown<ValueError>([&] { swa.update_parameters(*wider); }), "has shape (2, 4)");
}

TEST(UpdateBn, MatchesTorchStatistics) {
  auto model = nn::make<nn::Sequential>(
      {nn::make<nn::Linear>({.in_features = 3, .out_features = 4}),
       nn::make<nn::BatchNorm1d>({.num_features = 4, .momentum = 0.3}), nn::make<nn::ReLU>(),
       nn::make<nn::Linear>({.in_features = 4, .out_features = 2}),
       nn::make<nn::BatchNorm1d>({.num_features = 2, .momentum = std::nullopt})});
  model->to(DType::float64);
  set_state(*model, kUpdateBnState);
  model->eval();
  std::vector<Tensor> batches;
  for (size_t i = 0; i < kUpdateBnBatches.size(); ++i)
    batches.push_back(from_vector<double>(kUpdateBnBatches[i], {kUpdateBnBatchRows[i], 3}));
  update_bn(batches, *model);
  expect_close(flat_state(*model), kUpdateBnExpected, 1e-13);
  EXPECT_FALSE(model->is_training());
  EXPECT_EQ(dynamic_cast<nn::BatchNorm&>(model->child("1")).options().momentum, 0.3);
  EXPECT_EQ(dynamic_cast<nn::BatchNorm&>(model->child("4")).options().momentum, std::nullopt);
}

// torch 1.13's update_bn computes zeros_like(running_mean) for every BatchNorm and raises
// TypeError for one without running statistics; fabric refuses it by name before changing any.
TEST(UpdateBn, RefusesBatchNormWithoutRunningStats) {
  auto model = nn::make<nn::Sequential>(
      {nn::make<nn::BatchNorm1d>({.num_features = 2}),
       nn::make<nn::BatchNorm1d>({.num_features = 2, .track_running_stats = false})});
  auto& first = dynamic_cast<nn::BatchNorm&>(model->child("0"));
  first.running_mean.fill_(3);
  const Tensor x = from_vector<double>({1, 2, 3, 5, -1, 0.5}, {3, 2}).to(DType::float32);
  const std::string what = thrown<ValueError>([&] { update_bn({x}, *model); });
  EXPECT_CONTAINS(what, "BatchNorm1d '1'");
  EXPECT_CONTAINS(what, "track_running_stats=false");
  EXPECT_EQ(first.running_mean.to_vector<float>(), (std::vector<float>{3, 3}));
  EXPECT_EQ(first.num_batches_tracked.item<int64_t>(), 0);
}

// torch's SWALR sets group['swa_lr']: the optimizer's state_dict carries it, a load round trip
// keeps it, and a scheduler anneals to the swa_lr the loaded state brings (torch 1.13: after
// SWALR(opt2, 0.9, 3) and opt2.load_state_dict(opt.state_dict()) of a SWALR(opt, 0.05, 3), the
// lrs are 0.3875, 0.16250000000000006, 0.05, 0.05).
TEST(Swalr, RecordsSwaLrInTheOptimizersParamGroups) {
  auto opt = sgd_for({0.5, 0.1});
  SWALR s(*opt, {0.05, 0.07}, 3);
  const OptimizerState sd = opt->state_dict();
  const std::vector<double> want = {0.05, 0.07};
  for (size_t g = 0; g < 2; ++g) {
    double swa_lr = 0;
    read_hyper_param(sd.param_groups.at(g).options, "swa_lr", swa_lr, "test");
    EXPECT_EQ(swa_lr, want[g]);
  }
  auto loaded = sgd_for({0.5, 0.1});
  loaded->load_state_dict(OptimizerState::unflatten(sd.flatten()));
  EXPECT_TRUE(loaded->state_dict().param_groups.at(1).options.contains("swa_lr"));

  auto single = sgd_for({0.5});
  SWALR first(*single, 0.05, 3);
  auto resumed = sgd_for({0.5});
  SWALR other(*resumed, 0.9, 3);
  resumed->load_state_dict(single->state_dict());
  EXPECT_EQ(other.swa_lrs(), std::vector<double>{0.05});
  std::vector<double> lrs;
  for (int i = 0; i < 4; ++i) {
    other.step();
    lrs.push_back(resumed->lr(0));
  }
  EXPECT_EQ(lrs, (std::vector<double>{0.3875, 0.16250000000000006, 0.05, 0.05}));
}

// A lazy BatchNorm, once called, is its eager BatchNorm to update_bn (torch's class change): its
// statistics are recomputed as the eager layer's are.
TEST(UpdateBn, SeesALazyBatchNormThroughItsEagerLayer) {
  const auto run = [](bool lazy) {
    manual_seed(3);
    auto model = nn::make<nn::Sequential>(
        {nn::make<nn::Linear>({.in_features = 3, .out_features = 4}),
         lazy ? nn::ModulePtr(nn::make<nn::LazyBatchNorm1d>({.momentum = 0.3}))
              : nn::ModulePtr(nn::make<nn::BatchNorm1d>({.num_features = 4, .momentum = 0.3}))});
    Generator g(7);
    const Tensor x = randn({5, 3}, {}, &g);
    (*model)(x);  // materializes the lazy layer and moves the statistics
    update_bn({x, mul(x, 2.0)}, *model);
    const nn::StateDict state = model->state_dict();
    return std::vector<Tensor>{state.at("1.running_mean").clone(),
                               state.at("1.running_var").clone()};
  };
  const std::vector<Tensor> eager = run(false), lazy = run(true);
  for (size_t i = 0; i < eager.size(); ++i)
    EXPECT_EQ(amax(abs(sub(eager[i], lazy[i]))).item<float>(), 0.0f) << i;
}

}  // namespace
}  // namespace fabric::optim
