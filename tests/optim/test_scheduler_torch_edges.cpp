// LR schedulers where fabric used to raise and torch 1.13 does not, against torch's own values
// (literals printed by torch 1.13 as float.hex()):
// - OneCycleLR / CyclicLR cycling a Nesterov SGD's momentum down to base_momentum 0 (torch writes
//   param_group['momentum'] unchecked; the step with momentum 0 runs without the buffer);
// - parameter groups added after a scheduler was built (Lightning's BaseFinetuning): chainable
//   schedules scale every group, ones that zip their per-group lists with the groups leave the
//   new group alone, get_last_lr() holds every group;
// - ConstantLR with factor 0, inside a SequentialLR that moves on at total_iters;
// - a step that throws changes nothing.
// The generator: for each case, torch.optim on float64 tensors, printing float(x).hex() after
// every optimizer.step(); scheduler.step().
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "optim/optim.h"
#include "optim_test_util.h"

// The gradients below are computed as torch computes them, one rounding per operation.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {
namespace {
using namespace testing;

uint64_t bits(double x) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

#define EXPECT_BITS(got, want) EXPECT_EQ(bits(got), bits(want)) << (got) << " vs " << (want)

double sgd_momentum(const Optimizer& o, size_t g) {
  return std::get<double>(o.group_hyper_params(g).at("momentum"));
}

struct NesterovRow {
  double lr, momentum;
  std::vector<double> param;
};

// SGD(lr 0.1, momentum 0.9, nesterov) on [1, -2, 0.5]; step i's gradient is
// [0.5, -1.25, 2] * (1 + 0.1 i) + 0.3 p; after each optimizer step the scheduler steps.
void run_nesterov(Optimizer& o, LRScheduler& s, const Tensor& p,
                  const std::vector<NesterovRow>& want) {
  const double base[3] = {0.5, -1.25, 2.0};
  for (size_t i = 0; i < want.size(); ++i) {
    const std::vector<double> pv = values(p);
    std::vector<double> g(3);
    for (size_t j = 0; j < 3; ++j)
      g[j] = base[j] * (1 + 0.1 * static_cast<double>(i)) + pv[j] * 0.3;
    set_grad_values(p, g);
    o.step();
    s.step();
    EXPECT_BITS(o.lr(0), want[i].lr);
    EXPECT_BITS(sgd_momentum(o, 0), want[i].momentum);
    const std::vector<double> got = values(p);
    for (size_t j = 0; j < 3; ++j) EXPECT_BITS(got[j], want[i].param[j]);
  }
}

TEST(SchedulerTorchEdges, OneCycleCyclesNesterovMomentumToZero) {
  Tensor p = param({1.0, -2.0, 0.5});
  SGD o({p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  OneCycleLR s(o,
               {.max_lr = {0.1}, .total_steps = 10, .base_momentum = {0.0}, .max_momentum = {0.9}});
  run_nesterov(o, s, p,
               {
                   {0x1.a9fbe76c8b43ap-5,
                    0x1.ccccccccccccdp-2,
                    {0x1.fce3150dae3e7p-1, -0x1.fc669057d1783p+0, 0x1.ef449129888f8p-2}},
                   {0x1.999999999999ap-4,
                    0x0.0p+0,
                    {0x1.d7d48db2f1df7p-1, -0x1.d15f7071e5c80p+0, 0x1.23055a959f4f6p-2}},
                   {0x1.8551898fc1ee6p-4,
                    0x1.6d1180647cce0p-5,
                    {0x1.aaf493b022efcp-1, -0x1.9d02f9df1ee34p+0, 0x1.243e069d8c90ep-5}},
                   {0x1.4c7db37a37094p-4,
                    0x1.5afde683753ecp-3,
                    {0x1.7d14713b2c763p-1, -0x1.6745b3c70fd7ap+0, -0x1.cb108eefe9c32p-3}},
                   {0x1.f4beefeb35d1bp-5,
                    0x1.6643299b916c4p-2,
                    {0x1.4f11229c51279p-1, -0x1.312e318ef520ap+0, -0x1.f5c13ad9bf9afp-2}},
                   {0x1.3e751a0792377p-5,
                    0x1.19ab37ff0416cp-1,
                    {0x1.22ee9124c1afep-1, -0x1.fa460d9d3e4d8p-1, -0x1.7faa482382a79p-1}},
                   {0x1.347145fcb3ed5p-6,
                    0x1.760d532bef7d2p-1,
                    {0x1.fa01762a44776p-2, -0x1.a097baa275bfbp-1, -0x1.f363c32c15e7dp-1}},
                   {0x1.4487b69a2163ap-8,
                    0x1.b5fbb4c684fffp-1,
                    {0x1.c736686c16c0ep-2, -0x1.646a80f8739c2p-1, -0x1.20e2dd073828ap+0}},
                   {0x1.ad7f29abcaf48p-22,
                    0x1.ccccccccccccdp-1,
                    {0x1.b52d815d3caa7p-2, -0x1.4f02b9908dbd6p-1, -0x1.2ef00b20bca8ap+0}},
               });
}

TEST(SchedulerTorchEdges, CyclicCyclesNesterovMomentumToZero) {
  Tensor p = param({1.0, -2.0, 0.5});
  SGD o({p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  CyclicLR s(o, {.base_lr = {0.01},
                 .max_lr = {0.1},
                 .step_size_up = 3,
                 .base_momentum = {0.0},
                 .max_momentum = {0.9}});
  run_nesterov(o, s, p,
               {
                   {0x1.47ae147ae147dp-5,
                    0x1.3333333333332p-1,
                    {0x1.f837b4a2339c1p-1, -0x1.f70068db8bac7p+0, 0x1.d62b6ae7d566dp-2}},
                   {0x1.1eb851eb851ebp-4,
                    0x1.3333333333336p-2,
                    {0x1.d69db1006885ap-1, -0x1.cfff025418302p+0, 0x1.1d4296279f2b5p-2}},
                   {0x1.999999999999ap-4,
                    0x0.0p+0,
                    {0x1.a989a1e4015d9p-1, -0x1.9b6d32a35cf7cp+0, 0x1.e6d76d2063b9bp-6}},
                   {0x1.1eb851eb851eep-4,
                    0x1.333333333332ep-2,
                    {0x1.7b7dd2cb3ec3bp-1, -0x1.657bd784dcbd2p+0, -0x1.d97351cef3e8ap-3}},
                   {0x1.47ae147ae1478p-5,
                    0x1.3333333333336p-1,
                    {0x1.4c68d88530e9bp-1, -0x1.2e2c3996db864p+0, -0x1.011c44c612fb0p-1}},
                   {0x1.47ae147ae147bp-7,
                    0x1.ccccccccccccdp-1,
                    {0x1.23d59ba95fd88p-1, -0x1.fcc021c6186c8p-1, -0x1.7a82c903e2f29p-1}},
                   {0x1.47ae147ae1483p-5,
                    0x1.333333333332ep-1,
                    {0x1.133985baa37f5p-1, -0x1.d589f71c7bd93p-1, -0x1.acc2cb903c459p-1}},
                   {0x1.1eb851eb851e8p-4,
                    0x1.333333333333cp-2,
                    {0x1.beeed2d616067p-2, -0x1.5afaaf7f60c1bp-1, -0x1.25f8a154b7afbp+0}},
                   {0x1.999999999999ap-4,
                    0x0.0p+0,
                    {0x1.4e90ea3219998p-2, -0x1.aacfc9df2d406p-2, -0x1.7e3d752287354p+0}},
               });
}

// The Nesterov check is the constructor's (and a new group's), as torch's: a changed option or a
// loaded state with momentum 0 passes, and such a state loads.
TEST(SchedulerTorchEdges, NesterovCheckIsTheConstructors) {
  Tensor p = param({1.0});
  SGD o({p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  o.set_group_hyper_params(0, {{"momentum", 0.0}});
  EXPECT_EQ(sgd_momentum(o, 0), 0.0);
  const OptimizerState sd = o.state_dict();
  Tensor q = param({1.0});
  SGD other({q}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  other.load_state_dict(sd);
  EXPECT_EQ(sgd_momentum(other, 0), 0.0);
  EXPECT_CONTAINS(thrown<ValueError>([&] { SGD({param({1.0})}, {.lr = 0.1, .nesterov = true}); }),
                  "Nesterov momentum requires a momentum > 0");
  EXPECT_THROW(o.set_group_hyper_params(0, {{"momentum", -0.5}}), ValueError);
}

// One-group SGD (lr 0.1), the scheduler built and stepped twice, then a group with lr 0.01 added:
// both groups' lrs after each of the next ten steps.
struct AddedGroupCase {
  const char* name;
  std::function<std::shared_ptr<LRScheduler>(Optimizer&)> make;
  std::vector<std::pair<double, double>> lrs;
};

std::unique_ptr<SGD> sgd_one_group() {
  return std::make_unique<SGD>(std::vector<Tensor>{param({0.0, 0.0})},
                               SGDOptions{.lr = 0.1, .momentum = 0.9});
}

void add_group(SGD& o) { o.add_param_group({{param({0.0, 0.0})}, {.lr = 0.01, .momentum = 0.9}}); }

TEST(SchedulerTorchEdges, GroupsAddedAfterConstruction) {
  using S = std::shared_ptr<LRScheduler>;
  const std::vector<AddedGroupCase> cases = {
      {"StepLR",
       [](Optimizer& o) -> S { return std::make_shared<StepLR>(o, 2, 0.5); },
       {{0x1.999999999999ap-5, 0x1.47ae147ae147bp-7},
        {0x1.999999999999ap-6, 0x1.47ae147ae147bp-8},
        {0x1.999999999999ap-6, 0x1.47ae147ae147bp-8},
        {0x1.999999999999ap-7, 0x1.47ae147ae147bp-9},
        {0x1.999999999999ap-7, 0x1.47ae147ae147bp-9},
        {0x1.999999999999ap-8, 0x1.47ae147ae147bp-10},
        {0x1.999999999999ap-8, 0x1.47ae147ae147bp-10},
        {0x1.999999999999ap-9, 0x1.47ae147ae147bp-11},
        {0x1.999999999999ap-9, 0x1.47ae147ae147bp-11},
        {0x1.999999999999ap-10, 0x1.47ae147ae147bp-12}}},
      {"MultiStepLR",
       [](Optimizer& o) -> S {
         return std::make_shared<MultiStepLR>(o, std::vector<int64_t>{3, 5}, 0.5);
       },
       {{0x1.999999999999ap-5, 0x1.47ae147ae147bp-8},
        {0x1.999999999999ap-5, 0x1.47ae147ae147bp-8},
        {0x1.999999999999ap-6, 0x1.47ae147ae147bp-9},
        {0x1.999999999999ap-6, 0x1.47ae147ae147bp-9},
        {0x1.999999999999ap-6, 0x1.47ae147ae147bp-9},
        {0x1.999999999999ap-6, 0x1.47ae147ae147bp-9},
        {0x1.999999999999ap-6, 0x1.47ae147ae147bp-9},
        {0x1.999999999999ap-6, 0x1.47ae147ae147bp-9},
        {0x1.999999999999ap-6, 0x1.47ae147ae147bp-9},
        {0x1.999999999999ap-6, 0x1.47ae147ae147bp-9}}},
      {"ExponentialLR",
       [](Optimizer& o) -> S { return std::make_shared<ExponentialLR>(o, 0.9); },
       {{0x1.2a9930be0ded4p-4, 0x1.26e978d4fdf3cp-7},
        {0x1.0cbd1244a6225p-4, 0x1.096bb98c7e283p-7},
        {0x1.e3baba7b91710p-5, 0x1.ddc1e7967caecp-8},
        {0x1.b35b416f3618fp-5, 0x1.adfb506dd69d5p-8},
        {0x1.87d2214a7d7cep-5, 0x1.82fbc862dac0dp-8},
        {0x1.60a3845ca423ap-5, 0x1.5c490125c4e0cp-8},
        {0x1.3d5ff7202d534p-5, 0x1.3974e76ecaca5p-8},
        {0x1.1da32b368f315p-5, 0x1.1a1c69e3b682ep-8},
        {0x1.0112da1780df9p-5, 0x1.fbccbe99e21edp-9},
        {0x1.cebb8890b4c5ap-6, 0x1.c90511f0e51bcp-9}}},
      {"ConstantLR",
       [](Optimizer& o) -> S { return std::make_shared<ConstantLR>(o, 0.5, 4); },
       {{0x1.999999999999ap-5, 0x1.47ae147ae147bp-7},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-6},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-6},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-6},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-6},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-6},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-6},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-6},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-6},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-6}}},
      {"LinearLR",
       [](Optimizer& o) -> S { return std::make_shared<LinearLR>(o, 0.5, 1.0, 4); },
       {{0x1.6666666666667p-4, 0x1.7e4b17e4b17e5p-7},
        {0x1.999999999999ap-4, 0x1.b4e81b4e81b4ep-7},
        {0x1.999999999999ap-4, 0x1.b4e81b4e81b4ep-7},
        {0x1.999999999999ap-4, 0x1.b4e81b4e81b4ep-7},
        {0x1.999999999999ap-4, 0x1.b4e81b4e81b4ep-7},
        {0x1.999999999999ap-4, 0x1.b4e81b4e81b4ep-7},
        {0x1.999999999999ap-4, 0x1.b4e81b4e81b4ep-7},
        {0x1.999999999999ap-4, 0x1.b4e81b4e81b4ep-7},
        {0x1.999999999999ap-4, 0x1.b4e81b4e81b4ep-7},
        {0x1.999999999999ap-4, 0x1.b4e81b4e81b4ep-7}}},
      {"PolynomialLR",
       [](Optimizer& o) -> S { return std::make_shared<PolynomialLR>(o, 4, 2.0); },
       {{0x1.9999999999999p-8, 0x1.47ae147ae147bp-9},
        {0x0.0p+0, 0x0.0p+0},
        {0x0.0p+0, 0x0.0p+0},
        {0x0.0p+0, 0x0.0p+0},
        {0x0.0p+0, 0x0.0p+0},
        {0x0.0p+0, 0x0.0p+0},
        {0x0.0p+0, 0x0.0p+0},
        {0x0.0p+0, 0x0.0p+0},
        {0x0.0p+0, 0x0.0p+0},
        {0x0.0p+0, 0x0.0p+0}}},
      // The step up from the cosine's bottom (epochs 4 and 10) zips base_lrs with the groups.
      {"CosineAnnealingLR",
       [](Optimizer& o) -> S { return std::make_shared<CosineAnnealingLR>(o, 3, 0.001); },
       {{0x1.0624dd2f1a9fcp-10, 0x1.0624dd2f1a9fcp-10},
        {0x1.a5e353f7ced90p-6, 0x1.0624dd2f1a9fcp-10},
        {0x1.34395810624e1p-4, 0x1.0624dd2f1a9fcp-10},
        {0x1.999999999999ep-4, 0x1.0624dd2f1a9fcp-10},
        {0x1.34395810624e2p-4, 0x1.0624dd2f1a9fcp-10},
        {0x1.a5e353f7ceda1p-6, 0x1.0624dd2f1a9fcp-10},
        {0x1.0624dd2f1a9fcp-10, 0x1.0624dd2f1a9fcp-10},
        {0x1.a5e353f7ced90p-6, 0x1.0624dd2f1a9fcp-10},
        {0x1.34395810624d6p-4, 0x1.0624dd2f1a9fcp-10},
        {0x1.9999999999994p-4, 0x1.0624dd2f1a9fcp-10}}},
      {"LambdaLR",
       [](Optimizer& o) -> S {
         return std::make_shared<LambdaLR>(
             o, [](int64_t e) { return std::pow(0.9, static_cast<double>(e)); });
       },
       {{0x1.2a9930be0ded3p-4, 0x1.47ae147ae147bp-7},
        {0x1.0cbd1244a6224p-4, 0x1.47ae147ae147bp-7},
        {0x1.e3baba7b9170fp-5, 0x1.47ae147ae147bp-7},
        {0x1.b35b416f3618dp-5, 0x1.47ae147ae147bp-7},
        {0x1.87d2214a7d7ccp-5, 0x1.47ae147ae147bp-7},
        {0x1.60a3845ca4238p-5, 0x1.47ae147ae147bp-7},
        {0x1.3d5ff7202d533p-5, 0x1.47ae147ae147bp-7},
        {0x1.1da32b368f314p-5, 0x1.47ae147ae147bp-7},
        {0x1.0112da1780df8p-5, 0x1.47ae147ae147bp-7},
        {0x1.cebb8890b4c5ap-6, 0x1.47ae147ae147bp-7}}},
      {"MultiplicativeLR",
       [](Optimizer& o) -> S {
         return std::make_shared<MultiplicativeLR>(o, [](int64_t) { return 0.9; });
       },
       {{0x1.2a9930be0ded4p-4, 0x1.47ae147ae147bp-7},
        {0x1.0cbd1244a6225p-4, 0x1.47ae147ae147bp-7},
        {0x1.e3baba7b91710p-5, 0x1.47ae147ae147bp-7},
        {0x1.b35b416f3618fp-5, 0x1.47ae147ae147bp-7},
        {0x1.87d2214a7d7cep-5, 0x1.47ae147ae147bp-7},
        {0x1.60a3845ca423ap-5, 0x1.47ae147ae147bp-7},
        {0x1.3d5ff7202d534p-5, 0x1.47ae147ae147bp-7},
        {0x1.1da32b368f315p-5, 0x1.47ae147ae147bp-7},
        {0x1.0112da1780df9p-5, 0x1.47ae147ae147bp-7},
        {0x1.cebb8890b4c5ap-6, 0x1.47ae147ae147bp-7}}},
      {"CosineAnnealingWarmRestarts",
       [](Optimizer& o) -> S {
         return std::make_shared<CosineAnnealingWarmRestarts>(o, 3, 2, 0.001);
       },
       {{0x1.999999999999ap-4, 0x1.47ae147ae147bp-7},
        {0x1.7e6fb6c6480abp-4, 0x1.47ae147ae147bp-7},
        {0x1.34395810624dep-4, 0x1.47ae147ae147bp-7},
        {0x1.9db22d0e56042p-5, 0x1.47ae147ae147bp-7},
        {0x1.a5e353f7ced95p-6, 0x1.47ae147ae147bp-7},
        {0x1.f4276480df977p-8, 0x1.47ae147ae147bp-7},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-7},
        {0x1.92b0ff23e997ep-4, 0x1.47ae147ae147bp-7},
        {0x1.7e6fb6c6480abp-4, 0x1.47ae147ae147bp-7},
        {0x1.5e371ed32626fp-4, 0x1.47ae147ae147bp-7}}},
      {"CyclicLR",
       [](Optimizer& o) -> S {
         return std::make_shared<CyclicLR>(
             o, CyclicOptions{.base_lr = {0.01}, .max_lr = {0.1}, .step_size_up = 3});
       },
       {{0x1.999999999999ap-4, 0x1.47ae147ae147bp-7},
        {0x1.1eb851eb851eep-4, 0x1.47ae147ae147bp-7},
        {0x1.47ae147ae1478p-5, 0x1.47ae147ae147bp-7},
        {0x1.47ae147ae147bp-7, 0x1.47ae147ae147bp-7},
        {0x1.47ae147ae1483p-5, 0x1.47ae147ae147bp-7},
        {0x1.1eb851eb851e8p-4, 0x1.47ae147ae147bp-7},
        {0x1.999999999999ap-4, 0x1.47ae147ae147bp-7},
        {0x1.1eb851eb851e8p-4, 0x1.47ae147ae147bp-7},
        {0x1.47ae147ae1483p-5, 0x1.47ae147ae147bp-7},
        {0x1.47ae147ae147bp-7, 0x1.47ae147ae147bp-7}}},
      {"SequentialLR",
       [](Optimizer& o) -> S {
         return std::make_shared<SequentialLR>(
             o,
             std::vector<S>{std::make_shared<ConstantLR>(o, 0.5, 3),
                            std::make_shared<ExponentialLR>(o, 0.9)},
             std::vector<int64_t>{3});
       },
       {{0x1.999999999999ap-4, 0x1.47ae147ae147bp-7},
        {0x1.70a3d70a3d70bp-4, 0x1.26e978d4fdf3cp-7},
        {0x1.4bc6a7ef9db24p-4, 0x1.096bb98c7e283p-7},
        {0x1.2a9930be0ded4p-4, 0x1.ddc1e7967caecp-8},
        {0x1.0cbd1244a6225p-4, 0x1.adfb506dd69d5p-8},
        {0x1.e3baba7b91710p-5, 0x1.82fbc862dac0dp-8},
        {0x1.b35b416f3618fp-5, 0x1.5c490125c4e0cp-8},
        {0x1.87d2214a7d7cep-5, 0x1.3974e76ecaca5p-8},
        {0x1.60a3845ca423ap-5, 0x1.1a1c69e3b682ep-8},
        {0x1.3d5ff7202d534p-5, 0x1.fbccbe99e21edp-9}}},
      {"ChainedScheduler",
       [](Optimizer& o) -> S {
         return std::make_shared<ChainedScheduler>(std::vector<S>{
             std::make_shared<ConstantLR>(o, 0.5, 3), std::make_shared<ExponentialLR>(o, 0.9)});
       },
       {{0x1.2a9930be0ded4p-4, 0x1.26e978d4fdf3cp-6},
        {0x1.0cbd1244a6225p-4, 0x1.096bb98c7e283p-6},
        {0x1.e3baba7b91710p-5, 0x1.ddc1e7967caecp-7},
        {0x1.b35b416f3618fp-5, 0x1.adfb506dd69d5p-7},
        {0x1.87d2214a7d7cep-5, 0x1.82fbc862dac0dp-7},
        {0x1.60a3845ca423ap-5, 0x1.5c490125c4e0cp-7},
        {0x1.3d5ff7202d534p-5, 0x1.3974e76ecaca5p-7},
        {0x1.1da32b368f315p-5, 0x1.1a1c69e3b682ep-7},
        {0x1.0112da1780df9p-5, 0x1.fbccbe99e21edp-8},
        {0x1.cebb8890b4c5ap-6, 0x1.c90511f0e51bcp-8}}},
  };
  for (const AddedGroupCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto o = sgd_one_group();
    auto s = c.make(*o);
    s->step();
    s->step();
    add_group(*o);
    for (const auto& [lr0, lr1] : c.lrs) {
      s->step();
      EXPECT_BITS(o->lr(0), lr0);
      EXPECT_BITS(o->lr(1), lr1);
      ASSERT_EQ(s->get_last_lr().size(), 2u);  // torch: every group's lr
      EXPECT_BITS(s->get_last_lr()[1], lr1);
    }
    const SchedulerState st = s->state_dict();
    EXPECT_EQ(st.base_lrs.size(), 1u);  // the groups it was built for
    EXPECT_EQ(st.last_lr.size(), 2u);
  }
}

// A state saved after a group was added (one base lr, two last lrs) loads into a scheduler built
// on the optimizer with both groups, which then schedules the first group only (torch's zip).
TEST(SchedulerTorchEdges, StateSavedAfterAGroupWasAddedLoads) {
  auto o = sgd_one_group();
  LambdaLR s(*o, [](int64_t e) { return std::pow(0.9, static_cast<double>(e)); });
  s.step();
  add_group(*o);
  s.step();
  const SchedulerState saved = s.state_dict();
  auto resumed = sgd_one_group();
  add_group(*resumed);
  LambdaLR r(*resumed, [](int64_t e) { return std::pow(0.9, static_cast<double>(e)); });
  r.load_state_dict(saved);
  r.step();
  EXPECT_BITS(resumed->lr(0), 0x1.2a9930be0ded3p-4);  // 0.1 * 0.9 ** 3
  EXPECT_BITS(resumed->lr(1), 0.01);
  EXPECT_EQ(r.get_last_lr().size(), 2u);
  SchedulerState more = saved;
  more.base_lrs = {0.1, 0.1, 0.1};
  EXPECT_CONTAINS(thrown<ValueError>([&] { r.load_state_dict(more); }),
                  "the state has 3 base lrs but the optimizer has 2 parameter groups");
}

// Where torch raises for an added group (OneCycleLR: KeyError 'initial_lr'; SWALR: KeyError
// 'swa_lr'; ReduceLROnPlateau's reduction: IndexError), fabric raises before changing anything.
TEST(SchedulerTorchEdges, AddedGroupsWithoutTheirValuesRaiseAndChangeNothing) {
  {
    auto o = sgd_one_group();
    OneCycleLR s(*o, {.max_lr = {0.1}, .total_steps = 10});
    s.step();
    add_group(*o);
    const double lr = o->lr(0), momentum = sgd_momentum(*o, 0);
    EXPECT_CONTAINS(thrown<ValueError>([&] { s.step(); }),
                    "OneCycleLR.step: the optimizer has 2 parameter groups but the scheduler was "
                    "built for 1");
    EXPECT_EQ(s.last_epoch(), 1);
    EXPECT_EQ(o->lr(0), lr);
    EXPECT_EQ(sgd_momentum(*o, 0), momentum);
    EXPECT_EQ(s.get_last_lr().size(), 1u);
  }
  {
    auto o = sgd_one_group();
    SWALR s(*o, 0.05, 3);
    s.step();
    add_group(*o);
    const SchedulerState before = s.state_dict();
    EXPECT_CONTAINS(thrown<KeyError>([&] { s.step(); }), "has no 'swa_lr'");
    const SchedulerState after = s.state_dict();
    EXPECT_EQ(after.last_epoch, before.last_epoch);
    EXPECT_EQ(after.extra, before.extra);  // _step_count
    EXPECT_BITS(o->lr(0), 0x1.6666666666667p-4);
  }
  {
    auto o = sgd_one_group();
    ReduceLROnPlateau s(*o, {.patience = 1});
    s.step(1.0);
    add_group(*o);
    s.step(0.5);
    EXPECT_EQ(s.get_last_lr(), (std::vector<double>{0.1, 0.01}));
    s.step(0.6);
    EXPECT_CONTAINS(thrown<ValueError>([&] { s.step(0.7); }),
                    "ReduceLROnPlateau.step: reducing the lrs needs every group's min_lr, but the "
                    "optimizer has 2 parameter groups and the scheduler was built for 1");
    EXPECT_EQ(s.last_epoch(), 3);
    EXPECT_EQ(s.num_bad_epochs(), 1);
    EXPECT_EQ(o->lr(0), 0.1);
  }
}

// Past OneCycleLR's total steps: ValueError, and the scheduler, lrs and momenta are as before.
TEST(SchedulerTorchEdges, AStepThatThrowsChangesNothing) {
  auto o = sgd_one_group();
  OneCycleLR s(*o, {.max_lr = {0.1}, .total_steps = 3});
  for (int i = 0; i < 3; ++i) s.step();
  const double lr = o->lr(0), momentum = sgd_momentum(*o, 0);
  const std::vector<double> last = s.get_last_lr();
  EXPECT_CONTAINS(thrown<ValueError>([&] { s.step(); }), "tried to step 5 times");
  EXPECT_EQ(s.last_epoch(), 3);
  EXPECT_EQ(o->lr(0), lr);
  EXPECT_EQ(sgd_momentum(*o, 0), momentum);
  EXPECT_EQ(s.get_last_lr(), last);

  // In a chain, the steps taken before the throwing one are undone.
  auto p = sgd_one_group();
  auto exp = std::make_shared<ExponentialLR>(*p, 0.5);
  auto cycle = std::make_shared<OneCycleLR>(*p, OneCycleOptions{.max_lr = {0.1}, .total_steps = 2});
  ChainedScheduler chain({exp, cycle});
  chain.step();
  chain.step();
  const double chained_lr = p->lr(0);
  EXPECT_THROW(chain.step(), ValueError);
  EXPECT_EQ(exp->last_epoch(), 2);
  EXPECT_EQ(cycle->last_epoch(), 2);
  EXPECT_EQ(chain.last_epoch(), 2);
  EXPECT_EQ(p->lr(0), chained_lr);
}

// torch takes factor 0; its chainable step at total_iters divides by it (ZeroDivisionError), which
// a SequentialLR switching there never takes.
TEST(SchedulerTorchEdges, ConstantLRFactorZero) {
  auto o = sgd_one_group();
  ConstantLR s(*o, 0.0, 3);
  EXPECT_EQ(o->lr(0), 0.0);
  s.step();
  s.step();
  EXPECT_EQ(o->lr(0), 0.0);
  EXPECT_CONTAINS(thrown<ValueError>([&] { s.step(); }), "ZeroDivisionError");
  EXPECT_EQ(s.last_epoch(), 2);
  EXPECT_EQ(o->lr(0), 0.0);

  auto q = sgd_one_group();
  SequentialLR seq(
      *q, {std::make_shared<ConstantLR>(*q, 0.0, 3), std::make_shared<ExponentialLR>(*q, 0.9)},
      {3});
  const std::vector<double> want = {0x0.0p+0,
                                    0x0.0p+0,
                                    0x0.0p+0,
                                    0x1.999999999999ap-4,
                                    0x1.70a3d70a3d70bp-4,
                                    0x1.4bc6a7ef9db24p-4,
                                    0x1.2a9930be0ded4p-4};
  EXPECT_BITS(q->lr(0), want[0]);
  for (size_t i = 1; i < want.size(); ++i) {
    seq.step();
    EXPECT_BITS(q->lr(0), want[i]);
  }
}

}  // namespace
}  // namespace fabric::optim
