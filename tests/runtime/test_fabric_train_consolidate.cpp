// `fabric-train consolidate DIR OUT` end to end, through the binary: a sharded FSDP checkpoint
// becomes a full one that a single-device run loads; bad usage exits 2, a failure 1.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "nn/mlp.h"
#include "optim/adam.h"
#include "runtime/fabric.h"
#include "runtime/sharded_checkpoint.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using train_test::Result;
using train_test::run;

class FabricTrainConsolidate : public testing::Test {
 protected:
  void SetUp() override {
    if (std::string(FABRIC_TRAIN_EXE).empty()) GTEST_SKIP() << "fabric-train was not built";
    dir_ = fs::temp_directory_path() / ("fabric_train_consolidate_" + std::to_string(::getpid()) + "_" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

std::shared_ptr<nn::MLP> mlp(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<nn::MLP>(nn::MLPConfig{.sizes = {6, 10, 3}, .activation = "tanh"});
}

TEST_F(FabricTrainConsolidate, ShardedCheckpointBecomesAFullOneThatOneDeviceLoads) {
  const std::string sharded = (dir_ / "sharded").string(), full = (dir_ / "full").string();
  Generator gen(11);
  const Tensor x = randn({4, 6}, {}, &gen), y = randn({4, 3}, {}, &gen);
  nn::StateDict trained;
  optim::OptimizerState trained_opt;
  {
    FabricOptions o{.accelerator = "cpu", .strategy = "fsdp", .devices = 1};
    o.fsdp.auto_wrap_policy = {"Linear"};
    Fabric fab(o);
    auto module = mlp(1);
    optim::AdamW opt(module->parameters(), {.lr = 0.05});
    auto [model, fopt] = fab.setup(module, opt);
    for (int s = 0; s < 3; ++s) {
      fopt.zero_grad();
      fab.backward(mse_loss(model(x), y));
      fopt.step();
    }
    fab.save(sharded, {{"model", model}, {"optimizer", fopt}, {"step", int64_t(3)}, {"note", "three"}});
    ASSERT_TRUE(is_sharded_checkpoint(sharded));
    trained = fab.strategy_object().module_state_to_save(*module);
    trained_opt = fab.strategy_object().optimizer_state_to_save(opt);
  }

  const Result r = run("consolidate " + sharded + " " + full);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wrote " + full), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(full + "/state.json"));
  EXPECT_TRUE(fs::exists(full + "/model.safetensors"));
  EXPECT_TRUE(fs::exists(full + "/optimizer.safetensors"));
  EXPECT_FALSE(fs::exists(full + "/meta.json"));

  Fabric single({.accelerator = "cpu"});
  auto module = mlp(2);
  optim::AdamW opt(module->parameters(), {.lr = 0.9});
  auto [model, fopt] = single.setup(module, opt);
  State st{{"model", model}, {"optimizer", fopt}, {"step", int64_t(0)}, {"note", ""}};
  single.load(full, st, /*strict=*/true);
  EXPECT_EQ(st.at("step").get<int64_t>(), 3);
  EXPECT_EQ(st.at("note").get<std::string>(), "three");
  EXPECT_EQ(opt.lr(0), 0.05);
  for (const auto& [k, t] : module->state_dict())
    EXPECT_EQ(t.to_vector<float>(), trained.at(k).to_vector<float>()) << k;
  const std::vector<Tensor> params = module->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const optim::ParamState* s = opt.state(params[i]);
    ASSERT_NE(s, nullptr) << i;
    EXPECT_EQ(s->at("step").item<double>(), 3.0);
    EXPECT_EQ(s->at("exp_avg").to_vector<float>(), trained_opt.state.at(int64_t(i)).at("exp_avg").to_vector<float>())
        << i;
  }
}

TEST_F(FabricTrainConsolidate, BadUsageExits2AndFailureExits1) {
  const Result help = run("--help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("consolidate"), std::string::npos) << help.output;
  const Result one_arg = run("consolidate " + (dir_ / "x").string());
  EXPECT_EQ(one_arg.status, 2) << one_arg.output;
  const Result three = run("consolidate a b c");
  EXPECT_EQ(three.status, 2) << three.output;
  const std::string out = (dir_ / "out").string();
  const Result missing = run("consolidate " + (dir_ / "nothing").string() + " " + out);
  EXPECT_EQ(missing.status, 1) << missing.output;
  EXPECT_EQ(missing.output.rfind("fabric-train: error: ", 0), 0u) << missing.output;
  EXPECT_NE(missing.output.find("no meta.json"), std::string::npos) << missing.output;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace fabric
