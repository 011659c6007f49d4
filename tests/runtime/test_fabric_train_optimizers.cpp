// fabric-train's rmsprop, adagrad, nadam, radam, adamax, adadelta, rprop and asgd: each trains with
// its keys, writes them to config.yaml, and a run resumed from a checkpoint continues exactly as
// the uninterrupted run; optimizer.eps and optimizer.alpha not given are the named optimizer's
// PyTorch default; their bad values exit 2 at their key, and lbfgs is refused saying why.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/train_builders.h"
#include "runtime/train_config.h"
#include "tensor/ops.h"
#include "tensor/safetensors.h"
#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

struct OptimizerCase {
  const char* name;
  std::string set;                  // --set overrides of the contract (sgd, lr 0.1, momentum 0.9)
  std::vector<std::string> dumped;  // lines config.yaml must hold
};

const std::vector<OptimizerCase>& optimizer_cases() {
  static const std::vector<OptimizerCase> cases = {
      {"rmsprop",
       "optimizer.name=rmsprop optimizer.lr=0.001",
       {"name: rmsprop", "alpha: 0.99", "centered: false"}},
      {"rmsprop centered, momentum, eps, weight decay",
       "optimizer.name=rmsprop optimizer.lr=0.001 optimizer.alpha=0.9 optimizer.centered=true "
       "optimizer.eps=1e-6 optimizer.weight_decay=0.01",
       {"alpha: 0.9", "centered: true", "eps: 1.0e-06", "momentum: 0.9"}},
      {"adagrad", "optimizer.name=adagrad optimizer.lr=0.05", {"name: adagrad"}},
      {"adagrad lr decay, initial accumulator",
       "optimizer.name=adagrad optimizer.lr=0.05 optimizer.lr_decay=0.1 "
       "optimizer.initial_accumulator_value=0.1",
       {"lr_decay: 0.1", "initial_accumulator_value: 0.1"}},
      {"nadam", "optimizer.name=nadam optimizer.lr=0.01", {"name: nadam", "momentum_decay: 0.004"}},
      {"nadam momentum decay, weight decay",
       "optimizer.name=nadam optimizer.lr=0.01 optimizer.momentum_decay=0.01 "
       "optimizer.weight_decay=0.01",
       {"momentum_decay: 0.01"}},
      {"radam", "optimizer.name=radam optimizer.lr=0.01", {"name: radam"}},
      {"adamax",
       "optimizer.name=adamax optimizer.lr=0.01 optimizer.betas=[0.8,0.99]",
       {"name: adamax"}},
      {"adadelta", "optimizer.name=adadelta optimizer.lr=1", {"name: adadelta", "rho: 0.9"}},
      {"adadelta rho, eps",
       "optimizer.name=adadelta optimizer.lr=1 optimizer.rho=0.5 optimizer.eps=1e-4",
       {"rho: 0.5", "eps: 1.0e-04"}},
      {"rprop",
       "optimizer.name=rprop optimizer.lr=0.001",
       {"name: rprop", "etas: [0.5, 1.2]", "step_sizes: [1.0e-06, 50.0]"}},
      {"rprop etas, step sizes",
       "optimizer.name=rprop optimizer.lr=0.001 optimizer.etas=[0.4,1.5] "
       "optimizer.step_sizes=[1e-5,0.01]",
       {"etas: [0.4, 1.5]", "step_sizes: [1.0e-05, 0.01]"}},
      {"asgd",
       "optimizer.name=asgd optimizer.lr=0.05",
       {"name: asgd", "alpha: 0.75", "lambd: 1.0e-04", "t0: 1.0e+06"}},
      // Averaging from step 2 on: the resume must restore eta, mu and ax.
      {"asgd averaging, lambd, alpha, weight decay",
       "optimizer.name=asgd optimizer.lr=0.05 optimizer.t0=2 optimizer.lambd=0.01 "
       "optimizer.alpha=0.5 optimizer.weight_decay=0.01",
       {"alpha: 0.5", "t0: 2.0", "lambd: 0.01"}},
  };
  return cases;
}

bool has_line(const std::vector<std::string>& text, const std::string& line) {
  for (const std::string& l : text)
    if (l.find(line) != std::string::npos) return true;
  return false;
}

// Stopped after step 3 (its checkpoint) and resumed to 6: the same metrics as the uninterrupted
// run, which trained (its loss fell).
TEST_F(FabricTrain, AdaptiveOptimizersTrainAndResumeExactly) {
  const std::string cfg = write_contract(", checkpoint_every: 3");
  for (const OptimizerCase& c : optimizer_cases()) {
    const std::string common = " --set trainer.max_steps=6 " + c.set;
    const std::string full_dir = (dir_ / "full").string(), part_dir = (dir_ / "part").string();
    fs::remove_all(full_dir);
    fs::remove_all(part_dir);
    const Result full = run("fit " + cfg + common + " trainer.run_dir=" + full_dir);
    ASSERT_EQ(full.status, 0) << c.name << "\n" << full.output;
    ASSERT_EQ(run("fit " + cfg + common + " trainer.run_dir=" + part_dir).status, 0) << c.name;
    const auto dumped = lines(full_dir + "/config.yaml");
    for (const std::string& want : c.dumped)
      EXPECT_TRUE(has_line(dumped, want)) << c.name << ": " << want;
    const auto metrics = lines(full_dir + "/metrics.csv");
    ASSERT_EQ(metrics.size(), 7u) << c.name;
    EXPECT_LT(std::stod(cell(metrics, 6, "train_loss")), std::stod(cell(metrics, 1, "train_loss")))
        << c.name;
    // As if the process died after step 4: checkpoints/last back to step 3.
    fs::remove_all(part_dir + "/checkpoints/last");
    fs::copy(part_dir + "/checkpoints/step-3", part_dir + "/checkpoints/last",
             fs::copy_options::recursive);
    const Result res = run("resume " + part_dir);
    ASSERT_EQ(res.status, 0) << c.name << "\n" << res.output;
    EXPECT_EQ(metrics, lines(part_dir + "/metrics.csv"))
        << c.name << ": resumed metrics must equal the uninterrupted run's";
  }
}

// ZeRO-2 over two processes shards RMSprop's and Adagrad's state as Adam's: the same weights and
// optimizer.safetensors (single-process layout, the same keys) as one process, and a resume from
// the step-3 checkpoint reproduces the run. RMSprop's eps is raised for the comparison: an element
// whose gradient is rounding noise gets g / sqrt(v) of order 1 in either run (the two sum the
// gradients in different orders), as with Adam (tools/fixtures/make_parity_fixtures.py).
TEST_F(FabricTrain, RmspropAndAdagradUnderZeroStage2MatchOneProcessAndResume) {
  const std::string cfg = write_contract(", checkpoint_every: 3");
  for (const char* set :
       {"optimizer.name=rmsprop optimizer.lr=0.001 optimizer.centered=true optimizer.eps=1e-4",
        "optimizer.name=adagrad optimizer.lr=0.05 optimizer.initial_accumulator_value=0.1"}) {
    const std::string common =
        std::string(" --set model.sizes=[784,32,10] trainer.max_steps=6 ") + set;
    const std::string one = (dir_ / "one").string(), two = (dir_ / "two").string();
    fs::remove_all(one);
    fs::remove_all(two);
    const Result r1 = run("fit " + cfg + common + " trainer.batch_size=32 trainer.run_dir=" + one);
    ASSERT_EQ(r1.status, 0) << set << "\n" << r1.output;
    const Result r2 = run("fit " + cfg + common +
                          " fabric.devices=2 fabric.strategy=deepspeed_stage_2 "
                          "trainer.batch_size=16 trainer.run_dir=" +
                          two);
    ASSERT_EQ(r2.status, 0) << set << "\n" << r2.output;
    for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
      SafetensorsFile a = load_safetensors(one + "/checkpoints/last/" + file);
      SafetensorsFile b = load_safetensors(two + "/checkpoints/last/" + file);
      ASSERT_EQ(a.tensors.size(), b.tensors.size()) << set << " " << file;
      for (const auto& [k, t] : a.tensors) {
        ASSERT_TRUE(b.tensors.count(k)) << set << " " << file << ": " << k;
        const Tensor& u = b.tensors.at(k);
        ASSERT_EQ(t.sizes(), u.sizes()) << file << ": " << k;
        if (!t.is_floating_point()) continue;
        const Tensor x = t.to(DType::float64), y = u.to(DType::float64);
        EXPECT_LE(amax(abs(x - y)).item<double>(),
                  1e-5 * std::max(1.0, amax(abs(x)).item<double>()))
            << set << " " << file << ": " << k;
      }
    }
    expect_resume_reproduces(two, 3);
  }
}

TEST_F(FabricTrain, BadAdaptiveOptimizerValuesExit2AtTheirKey) {
  const std::string cfg = write_contract();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"optimizer.name=rmsprop optimizer.alpha=-0.5", "optimizer.alpha: must be >= 0, got -0.5"},
      {"optimizer.name=adagrad optimizer.lr_decay=-1", "optimizer.lr_decay: must be >= 0, got -1"},
      {"optimizer.name=adagrad optimizer.initial_accumulator_value=-1",
       "optimizer.initial_accumulator_value: must be >= 0, got -1"},
      {"optimizer.name=rmsprop optimizer.centered=maybe", "optimizer.centered"},
      {"optimizer.name=adadelta optimizer.rho=1.5",
       "optimizer.rho: must be between 0 and 1, got 1.5"},
      {"optimizer.name=nadam optimizer.momentum_decay=-1",
       "optimizer.momentum_decay: must be >= 0, got -1"},
      {"optimizer.name=rprop optimizer.etas=[0.5,0.9]",
       "optimizer.etas: expected 0 < etaminus < 1 < etaplus"},
      {"optimizer.name=rprop optimizer.etas=[0.5]",
       "optimizer.etas: expected two numbers [etaminus, etaplus]"},
      {"optimizer.name=rprop optimizer.step_sizes=[1,0.5]",
       "optimizer.step_sizes: expected min <= max, got [1.0, 0.5]"},
      {"optimizer.name=asgd optimizer.lambd=-1", "optimizer.lambd: must be >= 0, got -1"},
      {"optimizer.name=asgd optimizer.t0=-1", "optimizer.t0: must be >= 0, got -1"},
      {"optimizer.name=lbfgs",
       "optimizer.name: lbfgs is not supported by fabric-train: LBFGS re-evaluates the loss "
       "several "
       "times per step through a closure"},
      // Under 16-true an eps that is 0 in float16 would give 0/0 = NaN (the default 1e-8 too).
      {"optimizer.name=nadam fabric.precision=16-true",
       "optimizer.eps: 1.0e-08 (nadam's default) is 0 in float16, the parameters' dtype under "
       "fabric.precision 16-true"},
      {"optimizer.name=adamax fabric.precision=16-true optimizer.eps=2e-8",
       "optimizer.eps: 2.0e-08 is 0 in float16"},
      {"optimizer.name=lbgfs",
       "'lbgfs' is not one of: sgd, adam, adamw, rmsprop, adagrad, nadam, radam, adamax, adadelta, "
       "rprop, asgd"},
  };
  for (const auto& [set, message] : cases) {
    const Result r = run("fit " + cfg + " --set " + set);
    EXPECT_EQ(r.status, 2) << set << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << set << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "run")) << set << ": the run directory must not be created";
  }
}

// optimizer.eps left out is each optimizer's own default (PyTorch's), and config.yaml leaves it
// out; given, every optimizer takes it.
TEST_F(FabricTrain, EpsNotGivenIsEachOptimizersDefault) {
  const std::string cfg = write_contract();
  const struct {
    const char* name;
    double eps;
  } cases[] = {{"sgd", 0},         {"adam", 1e-8},  {"adamw", 1e-8}, {"rmsprop", 1e-8},
               {"adagrad", 1e-10}, {"nadam", 1e-8}, {"radam", 1e-8}, {"adamax", 1e-8},
               {"adadelta", 1e-6}, {"rprop", 0},    {"asgd", 0}};
  Tensor w = zeros({2});
  w.set_requires_grad(true);
  for (const auto& c : cases) {
    const TrainConfig tc = load_train_config(cfg, {std::string("optimizer.name=") + c.name});
    EXPECT_FALSE(tc.optimizer.eps.has_value());
    EXPECT_EQ(dump_train_config(tc).find("\n  eps:"), std::string::npos) << c.name;
    const auto opt = build_optimizer(tc, {w});
    const optim::HyperParams h = opt->group_hyper_params(0);
    if (c.eps == 0) {
      EXPECT_EQ(h.count("eps"), 0u) << c.name;
      continue;
    }
    EXPECT_EQ(std::get<double>(h.at("eps")), c.eps) << c.name;
    const TrainConfig given =
        load_train_config(cfg, {std::string("optimizer.name=") + c.name, "optimizer.eps=0.5"});
    EXPECT_EQ(std::get<double>(build_optimizer(given, {w})->group_hyper_params(0).at("eps")), 0.5)
        << c.name;
    EXPECT_NE(dump_train_config(given).find("\n  eps: 0.5"), std::string::npos) << c.name;
  }
}

// optimizer.alpha is RMSprop's (0.99) and ASGD's (0.75): left out, each takes its own default,
// which config.yaml then writes; given, both take it.
TEST_F(FabricTrain, AlphaNotGivenIsTheNamedOptimizersDefault) {
  const std::string cfg = write_contract();
  const struct {
    const char* name;
    double alpha;
  } cases[] = {{"rmsprop", 0.99}, {"asgd", 0.75}};
  Tensor w = zeros({2});
  w.set_requires_grad(true);
  for (const auto& c : cases) {
    const std::string name = std::string("optimizer.name=") + c.name;
    const TrainConfig tc = load_train_config(cfg, {name});
    EXPECT_EQ(std::get<double>(build_optimizer(tc, {w})->group_hyper_params(0).at("alpha")),
              c.alpha)
        << c.name;
    const std::string dumped = dump_train_config(tc);
    EXPECT_NE(dumped.find("\n  alpha: " + std::string(c.alpha == 0.75 ? "0.75" : "0.99")),
              std::string::npos)
        << c.name << "\n"
        << dumped;
    const TrainConfig given = load_train_config(cfg, {name, "optimizer.alpha=0.5"});
    EXPECT_EQ(std::get<double>(build_optimizer(given, {w})->group_hyper_params(0).at("alpha")), 0.5)
        << c.name;
    // An explicit null is "not given".
    EXPECT_EQ(load_train_config(cfg, {name, "optimizer.alpha=null"}).optimizer.alpha, c.alpha)
        << c.name;
  }
}

}  // namespace
}  // namespace fabric
