// `fabric-train consolidate DIR OUT` end to end, through the binary: a sharded FSDP checkpoint
// becomes a full one that a single-device run loads (OUT.safetensors: the model's weights in one
// file); bad usage exits 2, a failure 1, and an output of another kind is never replaced.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nn/mlp.h"
#include "optim/adam.h"
#include "runtime/fabric.h"
#include "runtime/sharded_checkpoint.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

class FabricTrainConsolidate : public train_test::RunDirTest {
 protected:
  void SetUp() override { start("fabric_train_consolidate"); }
};

std::shared_ptr<nn::MLP> mlp(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<nn::MLP>(nn::MLPConfig{.sizes = {6, 10, 3}, .activation = "tanh"});
}

// What three AdamW steps of an MLP under FSDP (one process) leave: the sharded checkpoint at `path`
// and the gathered weights and optimizer state it must hold.
struct Trained {
  nn::StateDict weights;
  optim::OptimizerState optimizer;
};
Trained save_sharded_checkpoint_of_three_steps(const std::string& path) {
  Generator gen(11);
  const Tensor x = randn({4, 6}, {}, &gen), y = randn({4, 3}, {}, &gen);
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
  fab.save(path, {{"model", model}, {"optimizer", fopt}, {"step", int64_t(3)}, {"note", "three"}});
  EXPECT_TRUE(is_sharded_checkpoint(path));
  return {fab.strategy_object().module_state_to_save(*module), fab.strategy_object().optimizer_state_to_save(opt)};
}

TEST_F(FabricTrainConsolidate, ShardedCheckpointBecomesAFullOneThatOneDeviceLoads) {
  const std::string sharded = (dir_ / "sharded").string(), full = (dir_ / "full").string();
  const auto [trained, trained_opt] = save_sharded_checkpoint_of_three_steps(sharded);

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

// OUT named *.safetensors: one file holding the model's full state_dict, which a single-process
// model loads as it is; written atomically over an earlier one.
TEST_F(FabricTrainConsolidate, SafetensorsOutputIsTheModelsStateDictInOneFile) {
  const std::string sharded = (dir_ / "sharded").string();
  const fs::path out = dir_ / "weights.safetensors";
  const Trained trained = save_sharded_checkpoint_of_three_steps(sharded);
  std::ofstream(out) << "an earlier output";
  const Result r = run("consolidate " + sharded + " " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wrote " + out.string()), std::string::npos) << r.output;
  ASSERT_TRUE(fs::is_regular_file(out));
  SafetensorsFile f = load_safetensors(out.string());
  EXPECT_EQ(f.tensors.size(), trained.weights.size());
  nn::StateDict sd;
  for (const auto& [k, t] : f.tensors) sd.insert(k, t);
  auto module = mlp(2);
  module->load_state_dict(sd, /*strict=*/true);
  for (const auto& [k, t] : module->state_dict())
    EXPECT_EQ(t.to_vector<float>(), trained.weights.at(k).to_vector<float>()) << k;
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path() << ": a temporary left behind";
}

// consolidate never replaces what is not its kind of output: a file where a checkpoint directory
// goes, a directory where the .safetensors file goes, a directory holding something else. Exit 1,
// nothing changed.
TEST_F(FabricTrainConsolidate, AnOutputOfAnotherKindIsAnErrorAndStaysAsItWas) {
  const std::string sharded = (dir_ / "sharded").string();
  save_sharded_checkpoint_of_three_steps(sharded);
  const fs::path file = dir_ / "notes.txt", folder = dir_ / "w.safetensors", other = dir_ / "photos";
  std::ofstream(file) << "my notes";
  fs::create_directories(folder);
  fs::create_directories(other);
  std::ofstream(other / "a.jpg") << "jpeg";
  const std::vector<std::pair<fs::path, std::string>> cases = {
      {file, "exists and is not a directory"}, {folder, "is a directory"}, {other, "holds no checkpoint"}};
  for (const auto& [out, message] : cases) {
    const Result r = run("consolidate " + sharded + " " + out.string());
    EXPECT_EQ(r.status, 1) << out << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << out << "\n" << r.output;
  }
  EXPECT_EQ(slurp(file), "my notes");
  EXPECT_TRUE(fs::is_directory(folder) && fs::is_empty(folder));
  EXPECT_EQ(slurp(other / "a.jpg"), "jpeg");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"notes.txt", "photos", "sharded", "w.safetensors"}));
  // A previous full checkpoint at OUT is replaced.
  const Result first = run("consolidate " + sharded + " " + (dir_ / "full").string());
  ASSERT_EQ(first.status, 0) << first.output;
  const Result again = run("consolidate " + sharded + " " + (dir_ / "full").string());
  EXPECT_EQ(again.status, 0) << again.output;
  // A sharded checkpoint (a run's own step-N, say) is not an earlier output: refused, kept.
  const std::string other_sharded = (dir_ / "step-4").string();
  save_sharded_checkpoint_of_three_steps(other_sharded);
  const Result onto_sharded = run("consolidate " + sharded + " " + other_sharded);
  EXPECT_EQ(onto_sharded.status, 1) << onto_sharded.output;
  EXPECT_NE(onto_sharded.output.find("is a sharded checkpoint (it holds meta.json)"),
            std::string::npos)
      << onto_sharded.output;
  EXPECT_TRUE(fs::exists(other_sharded + "/meta.json"));
  // A weights file over a file of a checkpoint (the input's own rank file, or another's) would
  // damage it: refused, the file kept.
  for (const std::string& dir : {sharded, other_sharded}) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") files.push_back(e.path());
    ASSERT_FALSE(files.empty()) << dir;
    const std::string before = slurp(files.front());
    const Result over = run("consolidate " + sharded + " " + files.front().string());
    EXPECT_EQ(over.status, 1) << over.output;
    EXPECT_NE(over.output.find(files.front().string() + " is a file of the checkpoint " + dir),
              std::string::npos)
        << over.output;
    EXPECT_EQ(slurp(files.front()), before);
  }
}

// The folders of OUT are made, for the checkpoint directory and for the weights file alike.
TEST_F(FabricTrainConsolidate, MakesTheFoldersOfItsOutput) {
  const std::string sharded = (dir_ / "sharded").string();
  save_sharded_checkpoint_of_three_steps(sharded);
  for (const fs::path& out : {dir_ / "new/deeper/full", dir_ / "other/w.safetensors"}) {
    const Result r = run("consolidate " + sharded + " " + out.string());
    EXPECT_EQ(r.status, 0) << out << "\n" << r.output;
    EXPECT_TRUE(fs::exists(out)) << out;
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
  // A DIR that does not exist is a wrong command line, as for every command.
  const Result missing = run("consolidate " + (dir_ / "nothing").string() + " " + out);
  EXPECT_EQ(missing.status, 2) << missing.output;
  EXPECT_NE(missing.output.find(
                "does not exist (expected a sharded checkpoint directory (it holds meta.json))"),
            std::string::npos)
      << missing.output;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace fabric
