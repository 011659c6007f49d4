// FSDP and ZeRO-3 through Fabric with real processes (2 ranks, Gloo over loopback): each sharding
// strategy gives the weights of data parallelism run in the same processes from the same data;
// the units gather and release their parameters; the optimizer steps only shards.
#include <gtest/gtest.h>

#include <cmath>

#include "distributed/fsdp.h"
#include "distributed/fsdp_strategy.h"
#include "nn/gpt.h"
#include "nn/mlp.h"
#include "runtime/fabric.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"
#include "tests/distributed/zero_test_util.h"

namespace fabric {
namespace {

using dist_test::self_argv;
using namespace std::chrono_literals;
using namespace zero_test;

struct FsdpRun {
  std::vector<Tensor> weights;               // gathered, in parameter order
  std::vector<int64_t> shard_numel;          // the optimizer's parameters after setup
  std::vector<distributed::FullyShardedModule::UnitInfo> units;
  int64_t gathered_between_steps = -1;       // unsharded parameter bytes alive after a step
};

FsdpRun train_fsdp(Fabric& f, const Problem& p, const Case& c) {
  auto module = make_model(c.model, 7 + 100 * uint64_t(f.global_rank()));
  auto opt = make_optimizer(c.optimizer, module->parameters());
  auto [model, fopt] = f.setup(module, *opt);
  FsdpRun run;
  auto* fsdp = f.strategy_object().sharded_module(*module);
  EXPECT_NE(fsdp, nullptr);
  if (!fsdp) return run;
  run.units = fsdp->units();
  for (const Tensor& q : opt->parameters()) run.shard_numel.push_back(q.numel());
  const int64_t r = f.global_rank(), rows = kB / c.micro;
  for (int64_t s = 0; s < kSteps; ++s) {
    fopt.zero_grad();
    for (int m = 0; m < c.micro; ++m) {
      const Tensor x = p.x[s].narrow(0, r * kB + m * rows, rows);
      const Tensor y = p.y[s].narrow(0, r * kB + m * rows, rows);
      auto guard = f.no_backward_sync(model, /*enabled=*/m + 1 < c.micro);
      const Tensor loss = loss_of(c.model, model(x), y) * (1.0 / c.micro);
      f.backward(loss);
    }
    if (c.max_norm > 0) f.clip_gradients(model, fopt, {.max_norm = c.max_norm, .norm_type = c.norm_type});
    fopt.step();
    if (s == 0) run.gathered_between_steps = fsdp->gathered_bytes();
  }
  const nn::StateDict sd = f.strategy_object().module_state_to_save(*module);
  for (const auto& [name, q] : module->named_parameters()) run.weights.push_back(sd.at(name).clone());
  return run;
}

FabricOptions fsdp_options(const std::string& sharding, const std::string& precision,
                           std::vector<std::string> wrap) {
  FabricOptions o{.accelerator = "cpu",
                  .strategy = "fsdp",
                  .devices = 2,
                  .precision = precision,
                  .timeout = 60s,
                  .launch_argv = self_argv()};
  o.fsdp.sharding_strategy = distributed::parse_sharding_strategy(sharding);
  o.fsdp.auto_wrap_policy = std::move(wrap);
  return o;
}

void expect_fsdp_matches_dp(const FabricOptions& options, const std::vector<Case>& cases, double tol) {
  std::vector<Problem> problems;
  for (const Case& c : cases) problems.push_back(make_problem(c.model));
  Fabric fab(options);
  const auto results = fab.launch([&](Fabric& f) {
    std::vector<std::pair<std::vector<Tensor>, FsdpRun>> out;
    for (size_t i = 0; i < cases.size(); ++i) {
      auto ref = train_dp(f, problems[i], cases[i]);
      auto run = train_fsdp(f, problems[i], cases[i]);
      out.emplace_back(std::move(ref), std::move(run));
    }
    return out;
  });
  const bool sharded = options.fsdp.sharding_strategy != distributed::ShardingStrategy::no_shard;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const auto& [dp, run] = results[i];
    const double diff = max_rel_diff(run.weights, dp);
    EXPECT_LE(diff, tol) << options.strategy << " " << distributed::to_string(options.fsdp.sharding_strategy) << " "
                         << c.model << " " << c.optimizer << " " << options.precision << " rank " << fab.global_rank();
    std::printf("[fsdp] %s %s %s %s %s micro %d rank %lld: max rel diff vs DP %.3g\n", options.strategy.c_str(),
                distributed::to_string(options.fsdp.sharding_strategy), c.model.c_str(), c.optimizer.c_str(),
                options.precision.c_str(), c.micro, static_cast<long long>(fab.global_rank()), diff);
    ASSERT_FALSE(run.units.empty());
    for (const auto& u : run.units) {
      EXPECT_EQ(u.padded % (sharded ? 2 : 1), 0) << u.name;
      EXPECT_EQ(u.shard_numel, sharded ? u.padded / 2 : u.padded) << u.name;
    }
    // FULL_SHARD releases everything between steps except nothing: the root is resharded after
    // backward too. NO_SHARD keeps its (aliased) float32 parameters.
    if (sharded) EXPECT_EQ(run.gathered_between_steps, 0);
  }
}

TEST(FSDP, FullShardMatchesDataParallel) {
  expect_fsdp_matches_dp(fsdp_options("FULL_SHARD", "32-true", {"Linear"}),
                         {{.model = "mlp", .optimizer = "sgd"}, {.model = "mlp", .optimizer = "adamw"}}, 1e-5);
}

TEST(FSDP, FullShardGPTMatchesDataParallel) {
  expect_fsdp_matches_dp(fsdp_options("FULL_SHARD", "32-true", {"Block"}),
                         {{.model = "gpt", .optimizer = "adamw"}, {.model = "gpt", .optimizer = "sgd"}}, 1e-5);
}

TEST(FSDP, ShardGradOpGPTMatchesDataParallel) {
  expect_fsdp_matches_dp(fsdp_options("SHARD_GRAD_OP", "32-true", {"Block"}), {{.model = "gpt", .optimizer = "adamw"}},
                         1e-5);
}

TEST(FSDP, NoShardGPTMatchesDataParallel) {
  expect_fsdp_matches_dp(fsdp_options("NO_SHARD", "32-true", {"Block"}), {{.model = "gpt", .optimizer = "adamw"}},
                         1e-5);
}

TEST(FSDP, HybridShardOnOneNodeGPTMatchesDataParallel) {
  expect_fsdp_matches_dp(fsdp_options("HYBRID_SHARD", "32-true", {"Block"}), {{.model = "gpt", .optimizer = "adamw"}},
                         1e-5);
}

TEST(FSDP, FullShardNoBackwardSyncAccumulationMatchesDataParallel) {
  expect_fsdp_matches_dp(fsdp_options("FULL_SHARD", "32-true", {"Block"}),
                         {{.model = "gpt", .optimizer = "adamw", .micro = 3}}, 1e-5);
}

TEST(FSDP, NoShardNoBackwardSyncAccumulationMatchesDataParallel) {
  expect_fsdp_matches_dp(fsdp_options("NO_SHARD", "32-true", {"Block"}),
                         {{.model = "mlp", .optimizer = "sgd", .micro = 3}}, 1e-5);
}

TEST(FSDP, ClipGradientsByNormMatchesDataParallel) {
  expect_fsdp_matches_dp(fsdp_options("FULL_SHARD", "32-true", {"Block"}),
                         {{.model = "gpt", .optimizer = "sgd", .max_norm = 0.05}}, 1e-5);
}

}  // namespace
}  // namespace fabric
