// ZeRO checkpoints through Fabric with real processes (2 ranks, Gloo over loopback): saved in the
// single-process layout, they resume a ZeRO run, load into one process, and a DDP checkpoint loads;
// under bf16-mixed the model file holds the fp32 master values.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "distributed/zero.h"
#include "nn/gpt.h"
#include "nn/mlp.h"
#include "optim/adam.h"
#include "optim/clip_grad.h"
#include "optim/sgd.h"
#include "precision/mixed_precision.h"
#include "runtime/checkpoint.h"
#include "runtime/fabric.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"
#include "tests/distributed/zero_test_util.h"

namespace fabric {
namespace {

using dist_test::self_argv;
using namespace std::chrono_literals;
using namespace zero_test;

// Steps [from, to) through Fabric, rank r on rows r*kB.. of each step's batch.
void fabric_steps(Fabric& f, FabricModule& model, FabricOptimizer& fopt, const Problem& p, int64_t from, int64_t to) {
  const int64_t r = f.global_rank();
  for (int64_t s = from; s < to; ++s) {
    fopt.zero_grad();
    f.backward(mse_loss(model(p.x[s].narrow(0, r * kB, kB)), p.y[s].narrow(0, r * kB, kB)));
    fopt.step();
  }
}

std::string shared_dir(Fabric& f, const std::string& name) {
  return ::testing::TempDir() + "/" + name + "_" + f.broadcast(std::to_string(::getpid()));
}

struct ResumeRun {
  std::string dir;
  std::vector<Tensor> w15, w20;
};

// ZeRO-2 AdamW: 10 steps, save, 10 more equals 20 uninterrupted steps and equals a fresh model
// and optimizer (other weights, other lr) loading the checkpoint and running the last 10. The
// checkpoint holds the single-process layout: one process (Fabric without a strategy) loads it
// and its next 5 steps on the whole batch equal the ZeRO run's.
TEST(ZeroStage2, CheckpointResumesAndLoadsIntoOneProcess) {
  const Problem p = make_problem("mlp");
  Fabric fab(zero_options(2));
  const ResumeRun run = fab.launch([&](Fabric& f) {
    ResumeRun o;
    o.dir = shared_dir(f, "zero2_ckpt");
    dynamic_cast<distributed::ZeroStrategy&>(f.strategy_object()).set_reduce_bucket_elements(50);
    const auto uninterrupted = train_zero(f, p, {.optimizer = "adamw"}, 50).weights;
    {
      auto module = make_model("mlp", 7 + 100 * uint64_t(f.global_rank()));
      auto opt = make_optimizer("adamw", module->parameters());
      auto [model, fopt] = f.setup(module, *opt);
      fabric_steps(f, model, fopt, p, 0, 10);
      f.save(o.dir, {{"model", model}, {"optimizer", fopt}, {"step", int64_t(10)}});
      fabric_steps(f, model, fopt, p, 10, 15);
      o.w15 = snapshot(*module);
      fabric_steps(f, model, fopt, p, 15, 20);
      o.w20 = snapshot(*module);
    }
    EXPECT_LE(max_rel_diff(o.w20, uninterrupted), 1e-6) << "saving changed the run, rank " << f.global_rank();
    {
      auto module = make_model("mlp", 99 + uint64_t(f.global_rank()));
      auto opt = std::make_unique<optim::AdamW>(module->parameters(), optim::AdamWOptions{.lr = 0.5});
      auto [model, fopt] = f.setup(module, *opt);
      State st{{"model", model}, {"optimizer", fopt}, {"step", int64_t(0)}};
      f.load(o.dir, st);
      EXPECT_EQ(st.at("step").get<int64_t>(), 10);
      EXPECT_EQ(opt->lr(0), 1e-2);
      fabric_steps(f, model, fopt, p, 10, 20);
      const double diff = max_rel_diff(snapshot(*module), o.w20);
      EXPECT_LE(diff, 1e-6) << "rank " << f.global_rank();
      std::printf("[zero] resumed from the checkpoint, rank %d: max rel diff vs uninterrupted %.3g\n",
                  f.global_rank(), diff);
    }
    return o;
  });
  if (fab.global_rank() != 0) return;
  // The file: PyTorch's unsharded layout, one entry per parameter shaped like it.
  auto module = make_model("mlp", 555);
  const std::vector<Tensor> params = module->parameters();
  const SafetensorsFile file = load_safetensors(run.dir + "/optimizer.safetensors");
  for (size_t i = 0; i < params.size(); ++i) {
    for (const char* key : {"exp_avg", "exp_avg_sq"}) {
      const std::string name = "state." + std::to_string(i) + "." + key;
      ASSERT_TRUE(file.tensors.count(name)) << name;
      EXPECT_EQ(file.tensors.at(name).sizes(), params[i].sizes()) << name;
    }
    EXPECT_EQ(file.tensors.at("state." + std::to_string(i) + ".step").item<double>(), 10.0);
  }
  Fabric single({.accelerator = "cpu"});
  ASSERT_FALSE(single.strategy_object().is_distributed());
  auto opt = make_optimizer("adamw", params);
  auto [model, fopt] = single.setup(module, *opt);
  single.load(run.dir, {{"model", model}, {"optimizer", fopt}}, /*strict=*/true);
  for (int64_t s = 10; s < 15; ++s) {
    fopt.zero_grad();
    single.backward(mse_loss(model(p.x[s]), p.y[s]));
    fopt.step();
  }
  const double diff = max_rel_diff(snapshot(*module), run.w15);
  EXPECT_LE(diff, 1e-6);
  std::printf("[zero] one process from the ZeRO checkpoint: max rel diff vs ZeRO after 5 steps %.3g\n", diff);
  std::filesystem::remove_all(run.dir);
}

// bf16-mixed ZeRO-2 (bf16 parameters, fp32 master partitions): the checkpoint's model holds the
// float32 masters, not the bf16 parameters, so resuming from it equals the uninterrupted run
// exactly (a bf16 model file would restart from rounded masters and drift), and a float32 run in
// one process loads the masters as they were.
TEST(ZeroStage2, Bf16MixedCheckpointKeepsFp32MastersAndResumes) {
  const Problem p = make_problem("mlp");
  Fabric fab(zero_options(2, "bf16-mixed"));
  const Case c{.optimizer = "adamw", .precision = "bf16-mixed"};
  const ResumeRun run = fab.launch([&](Fabric& f) {
    ResumeRun o;
    o.dir = shared_dir(f, "zero2_bf16_ckpt");
    const auto uninterrupted = train_zero(f, p, c, 50).weights;
    {
      auto module = make_model("mlp", 7 + 100 * uint64_t(f.global_rank()));
      auto opt = make_optimizer("adamw", module->parameters());
      auto [model, fopt] = f.setup(module, *opt);
      EXPECT_EQ(module->parameters().front().dtype(), DType::bfloat16);
      fabric_steps(f, model, fopt, p, 0, 10);
      f.save(o.dir, {{"model", model}, {"optimizer", fopt}});
      o.w15 = master_weights(f, *module);  // here: after 10 steps
      fabric_steps(f, model, fopt, p, 10, 20);
      o.w20 = master_weights(f, *module);
    }
    EXPECT_LE(max_rel_diff(o.w20, uninterrupted), 1e-6) << "saving changed the run, rank " << f.global_rank();
    {
      auto module = make_model("mlp", 99 + uint64_t(f.global_rank()));
      auto opt = std::make_unique<optim::AdamW>(module->parameters(), optim::AdamWOptions{.lr = 0.5});
      auto [model, fopt] = f.setup(module, *opt);
      State st{{"model", model}, {"optimizer", fopt}};
      f.load(o.dir, st);
      // The masters are the saved ones, the bf16 parameters them rounded.
      EXPECT_EQ(max_rel_diff(master_weights(f, *module), o.w15), 0.0) << "rank " << f.global_rank();
      const std::vector<Tensor> params = module->parameters();
      for (size_t i = 0; i < params.size(); ++i)
        EXPECT_EQ(max_rel_diff({params[i]}, {o.w15[i].to(DType::bfloat16)}), 0.0) << "parameter " << i;
      fabric_steps(f, model, fopt, p, 10, 20);
      const double diff = max_rel_diff(master_weights(f, *module), o.w20);
      EXPECT_LE(diff, 1e-6) << "rank " << f.global_rank();
      std::printf("[zero] bf16-mixed resumed from the checkpoint, rank %d: max rel diff vs uninterrupted %.3g\n",
                  f.global_rank(), diff);
    }
    return o;
  });
  if (fab.global_rank() != 0) return;
  // The file: float32 values that bf16 cannot hold (full precision), one per parameter.
  auto module = make_model("mlp", 555);
  const SafetensorsFile file = load_safetensors(run.dir + "/model.safetensors");
  const auto named = module->named_parameters();
  ASSERT_EQ(named.size(), run.w15.size());
  bool beyond_bf16 = false;
  for (size_t i = 0; i < named.size(); ++i) {
    ASSERT_TRUE(file.tensors.count(named[i].first)) << named[i].first;
    const Tensor& t = file.tensors.at(named[i].first);
    EXPECT_EQ(t.dtype(), DType::float32) << named[i].first;
    EXPECT_EQ(max_rel_diff({t}, {run.w15[i]}), 0.0) << named[i].first;
    beyond_bf16 = beyond_bf16 || max_rel_diff({t.to(DType::bfloat16)}, {t}) > 0;
  }
  EXPECT_TRUE(beyond_bf16) << "the saved weights are all bf16 values: the masters were not saved";
  Fabric single({.accelerator = "cpu"});
  auto opt = make_optimizer("adamw", module->parameters());
  auto [model, fopt] = single.setup(module, *opt);
  single.load(run.dir, {{"model", model}, {"optimizer", fopt}}, /*strict=*/true);
  EXPECT_EQ(max_rel_diff(snapshot(*module), run.w15), 0.0);
  std::filesystem::remove_all(run.dir);
}

// Started by ZeroStage2.LoadsACheckpointSavedByDDP: a real DDP run over 2 processes writes a
// checkpoint after 10 steps, then the weights after 20, under $ZERO2_DDP_DIR.
TEST(ZeroWorker, DISABLED_DDPWritesCheckpoint) {
  const char* dir = std::getenv("ZERO2_DDP_DIR");
  if (!dir) GTEST_SKIP() << "started by ZeroStage2.LoadsACheckpointSavedByDDP";
  const Problem p = make_problem("mlp");
  Fabric fab({.accelerator = "cpu", .strategy = "ddp", .devices = 2, .timeout = 60s, .launch_argv = self_argv()});
  fab.launch([&](Fabric& f) {
    auto module = make_model("mlp", 7);
    auto opt = make_optimizer("adamw", module->parameters());
    auto [model, fopt] = f.setup(module, *opt);
    fabric_steps(f, model, fopt, p, 0, 10);
    f.save(std::string(dir) + "/ckpt", {{"model", model}, {"optimizer", fopt}});
    fabric_steps(f, model, fopt, p, 10, 20);
    f.save(std::string(dir) + "/final", {{"model", model}});
  });
}

TEST(ZeroStage2, LoadsACheckpointSavedByDDP) {
  std::string dir;
  if (!dist_test::is_launched_rank()) {
    dir = ::testing::TempDir() + "/zero2_ddp_" + std::to_string(::getpid());
    std::filesystem::create_directories(dir);
    const auto r = dist_test::run_test_in_child("ZeroWorker.DISABLED_DDPWritesCheckpoint", {{"ZERO2_DDP_DIR", dir}},
                                                std::chrono::seconds(120));
    ASSERT_FALSE(r.timed_out);
    ASSERT_EQ(r.status, 0);
    ASSERT_TRUE(std::filesystem::exists(dir + "/ckpt/optimizer.safetensors"));
  }
  const Problem p = make_problem("mlp");
  Fabric fab(zero_options(2));
  fab.launch([&](Fabric& f) {
    const std::string d = f.broadcast(dir);
    dynamic_cast<distributed::ZeroStrategy&>(f.strategy_object()).set_reduce_bucket_elements(50);
    auto module = make_model("mlp", 99 + uint64_t(f.global_rank()));
    auto opt = make_optimizer("adamw", module->parameters());
    auto [model, fopt] = f.setup(module, *opt);
    f.load(d + "/ckpt", {{"model", model}, {"optimizer", fopt}});
    fabric_steps(f, model, fopt, p, 10, 20);
    auto ref = make_model("mlp", 1);
    State st{{"model", ref}};
    load_checkpoint(d + "/final", st, nullptr);
    const double diff = max_rel_diff(snapshot(*module), snapshot(*ref));
    EXPECT_LE(diff, 1e-5) << "rank " << f.global_rank();
    std::printf("[zero] ZeRO-2 from a DDP checkpoint, rank %d: max rel diff vs DDP after 10 steps %.3g\n",
                f.global_rank(), diff);
  });
  if (!dir.empty()) std::filesystem::remove_all(dir);
}

// A state dict whose groups do not match the optimizer is refused before anything changes.
TEST(ZeroStage2, LoadingAMismatchedOptimizerStateIsAValueError) {
  Fabric fab(zero_options(2));
  fab.launch([&](Fabric& f) {
    auto module = make_model("mlp", 3);
    auto opt = make_optimizer("sgd", module->parameters());  // two groups
    auto [model, fopt] = f.setup(module, *opt);
    optim::OptimizerState sd;
    sd.param_groups.push_back({opt->group_hyper_params(0), {0}});
    EXPECT_CONTAINS(thrown<ValueError>([&] { f.strategy_object().load_optimizer_state(*opt, sd); }),
                    "parameter groups");
    sd.param_groups.push_back({opt->group_hyper_params(1), {1, 2}});
    EXPECT_CONTAINS(thrown<ValueError>([&] { f.strategy_object().load_optimizer_state(*opt, sd); }),
                    "before sharding");
  });
}

}  // namespace
}  // namespace fabric
