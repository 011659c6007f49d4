// fabric-train end to end, through the binary: the scheduler names after PyTorch's schedulers
// (multistep, exponential, linear, polynomial, onecycle, cosine_warm_restarts, cyclic,
// multiplicative) train with torch 1.13's lr sequence (the
// numbers in the table), their bad values exit 2 naming the file, line and key, and a resumed run
// continues each one's sequence bit for bit.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

struct SchedulerCase {
  const char* name;
  std::string set;          // --set overrides of the contract (sgd, lr 0.1, momentum 0.9)
  std::vector<double> lrs;  // torch 1.13: the lr of steps 1..4 (before each scheduler step)
};

const std::vector<SchedulerCase>& scheduler_cases() {
  static const std::vector<SchedulerCase> cases = {
      {"multistep",
       "scheduler.name=multistep scheduler.milestones=[1,3] scheduler.gamma=0.5",
       {0.10000000000000001, 0.050000000000000003, 0.050000000000000003, 0.025000000000000001}},
      {"exponential",
       "scheduler.name=exponential scheduler.gamma=0.5",
       {0.10000000000000001, 0.050000000000000003, 0.025000000000000001, 0.012500000000000001}},
      {"linear",
       "scheduler.name=linear scheduler.start_factor=0.5 scheduler.total_iters=2",
       {0.050000000000000003, 0.075000000000000011, 0.10000000000000001, 0.10000000000000001}},
      {"polynomial",
       "scheduler.name=polynomial scheduler.total_iters=4 scheduler.power=2",
       {0.10000000000000001, 0.056250000000000001, 0.024999999999999998, 0.0062499999999999995}},
      {"onecycle",
       "scheduler.name=onecycle scheduler.max_lr=0.2",
       {0.0080000000000000071, 0.16234913078995261, 0.056612199641739844, 7.9999999999999996e-07}},
      {"onecycle three-phase linear, optimizer.lr as max_lr",
       "scheduler.name=onecycle scheduler.pct_start=0.5 scheduler.anneal_strategy=linear "
       "scheduler.three_phase=true "
       "scheduler.cycle_momentum=false",
       {0.0040000000000000001, 0.10000000000000001, 0.0040000000000000036, 4.0000000000022656e-07}},
      // After the last of 4 steps, Adam's beta1 extrapolates to 1 (torch writes it unchecked).
      {"onecycle linear with adam",
       "scheduler.name=onecycle scheduler.pct_start=0.5 scheduler.anneal_strategy=linear "
       "optimizer.name=adam",
       {0.0040000000000000001, 0.10000000000000001, 0.050000200000000002, 3.9999999999762448e-07}},
      {"cosine_warm_restarts",
       "scheduler.name=cosine_warm_restarts scheduler.t_0=2 scheduler.t_mult=2 "
       "scheduler.min_lr=0.01",
       {0.10000000000000001, 0.055000000000000007, 0.10000000000000001, 0.086819805153394644}},
      // CyclicLR(base_lr=0.1 (optimizer.lr), max_lr=0.5, step_size_up=2), cycling sgd's momentum.
      {"cyclic",
       "scheduler.name=cyclic scheduler.max_lr=0.5 scheduler.step_size_up=2",
       {0.1, 0.30000000000000004, 0.5, 0.30000000000000004}},
      {"cyclic triangular2 with adam",
       "scheduler.name=cyclic scheduler.mode=triangular2 scheduler.base_lr=0.01 "
       "scheduler.max_lr=0.1 "
       "scheduler.step_size_up=1 scheduler.step_size_down=2 scheduler.cycle_momentum=false "
       "optimizer.name=adam",
       {0.01, 0.09999999999999999, 0.055000000000000014, 0.01}},
      {"cyclic exp_range",
       "scheduler.name=cyclic scheduler.mode=exp_range scheduler.gamma=0.5 scheduler.max_lr=0.5 "
       "scheduler.step_size_up=1 scheduler.cycle_momentum=false",
       {0.1, 0.30000000000000004, 0.1, 0.15000000000000002}},
      // MultiplicativeLR(lambda _: 0.5).
      {"multiplicative",
       "scheduler.name=multiplicative scheduler.factor=0.5",
       {0.1, 0.05, 0.025, 0.0125}},
  };
  return cases;
}

std::vector<double> lr_column(const fs::path& csv) {
  const auto rows = lines(csv);
  std::vector<double> out;
  for (size_t row = 1; row < rows.size(); ++row) out.push_back(std::stod(cell(rows, row, "lr")));
  return out;
}

TEST_F(FabricTrain, EachPyTorchSchedulerTrainsWithTorchsLrs) {
  const std::string cfg = write_contract();
  for (const SchedulerCase& c : scheduler_cases()) {
    fs::remove_all(dir_ / "run");
    const Result r = run("fit " + cfg + " --set trainer.max_steps=4 " + c.set);
    ASSERT_EQ(r.status, 0) << c.name << "\n" << r.output;
    const std::vector<double> got = lr_column(dir_ / "run/metrics.csv");
    ASSERT_EQ(got.size(), c.lrs.size()) << c.name;
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], c.lrs[i], 1e-15 * std::max(1.0, std::abs(c.lrs[i])))
          << c.name << " step " << i + 1;
    // The dumped config reads back as given.
    EXPECT_EQ(run("fit " + (dir_ / "run/config.yaml").string() +
                  " --set trainer.max_steps=0 trainer.run_dir=" + (dir_ / "again").string())
                  .status,
              0)
        << c.name;
    fs::remove_all(dir_ / "again");
  }
}

TEST_F(FabricTrain, BadSchedulerValuesExit2AtTheirKey) {
  // The scheduler mapping on line 7 of the file, and what the error says after
  // "bad.yaml:7:<column of the mapping's last key>: scheduler.<that key>: ".
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"name: linear, start_factor: 0.0", "must be in (0, 1] (the lr factor at step 0"},
      {"name: linear, start_factor: 1.5", "must be between 0 and 1, got 1.5"},
      {"name: linear, end_factor: -0.5", "must be between 0 and 1, got -0.5"},
      {"name: linear, total_iters: 0", "must be >= 1, got 0"},
      {"name: multistep, milestones: [3, 1]", "must be non-decreasing steps"},
      {"name: multistep, milestones: [0]", "must be >= 1, got 0"},
      {"name: polynomial, power: -1", "must be >= 0, got -1"},
      {"name: onecycle, pct_start: 1.5", "must be between 0 and 1, got 1.5"},
      {"name: onecycle, anneal_strategy: cosine", "'cosine' is not one of: cos, linear"},
      {"name: onecycle, div_factor: 0", "must be > 0 (a divisor of the lr), got 0.0"},
      {"name: onecycle, final_div_factor: 0", "must be > 0 (a divisor of the lr), got 0.0"},
      {"name: onecycle, max_momentum: 1.0", "must be between 0 and 0.999999, got 1"},
      {"name: cyclic, mode: min",
       "'min' is not a mode of cyclic (triangular, triangular2 or exp_range)"},
      {"name: cyclic, step_size_up: 0", "must be >= 1, got 0"},
      {"name: cyclic, step_size_down: -1", "must be >= 0, got -1"},
      {"name: cyclic, base_lr: -1", "must be >= 0, got -1"},
      {"name: multiplicative, factor: 0",
       "must be > 0 (multiplicative: the lr's multiplier at every step), got 0.0"},
      {"name: cyclical", "'cyclical' is not one of: constant, step, cosine, multistep"},
      {"name: cosine_warm_restarts, t_0: 0", "must be >= 1, got 0"},
      {"name: cosine_warm_restarts, t_mult: 0", "must be >= 1, got 0"},
      {"name: plateau",
       "plateau reduces the lr when val_loss stops improving, but validation is off "
       "(trainer.val_every is 0): set trainer.val_every > 0 and data.val_fraction > 0"},
      {"name: step, factor: 1.0", "must be in [0, 1) (the lr's multiplier at a plateau), got 1.0"},
      {"name: step, mode: maximum", "'maximum' is not one of: min, max"},
      {"name: step, threshold_mode: relative", "'relative' is not one of: rel, abs"},
      {"name: step, patience: -1", "must be >= 0, got -1"},
      {"name: step, cooldown: -1", "must be >= 0, got -1"},
  };
  for (const auto& [scheduler, message] : cases) {
    const fs::path cfg = dir_ / "bad.yaml";
    std::ofstream(cfg) << "fabric:    {accelerator: cpu, devices: 1, precision: 32-true}\n"
                          "model:     {name: mlp, sizes: [784, 16, 10]}\n"
                          "data:      {kind: tensors, path: "
                       << (dir_ / "data.safetensors").string()
                       << "}\n"
                          "optimizer: {name: sgd, lr: 0.1}\n"
                          "trainer:   {max_steps: 4, batch_size: 32, run_dir: "
                       << (dir_ / "run").string()
                       << "}\n"
                          "\n"
                          "scheduler: {"
                       << scheduler << "}\n";
    const size_t comma = scheduler.find(", ");
    const size_t last_key = comma == std::string::npos ? 0 : comma + 2;
    const std::string key = scheduler.substr(last_key, scheduler.find(':', last_key) - last_key);
    const std::string at =
        "bad.yaml:7:" + std::to_string(13 + last_key) + ": scheduler." + key + ": ";
    const Result r = run("fit " + cfg.string());
    EXPECT_EQ(r.status, 2) << scheduler << "\n" << r.output;
    EXPECT_NE(r.output.find(at + message), std::string::npos) << scheduler << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "run"))
        << scheduler << ": the run directory must not be created";
  }
  const std::string good = write_contract();
  const std::vector<std::pair<std::string, std::string>> unlocated = {
      {"scheduler.name=multistep",
       "scheduler.milestones: scheduler.name multistep needs the steps"},
      {"scheduler.name=cyclic",
       "scheduler.max_lr: scheduler.name cyclic needs the cycle's upper bound, e.g. max_lr: 0.1"},
      {"scheduler.name=plateau trainer.val_every=1 data.val_fraction=0.25 "
       "scheduler.mode=triangular",
       "scheduler.mode: 'triangular' is not a mode of plateau (min or max)"},
      // Validation on without a split to validate on: plateau says why it needs one.
      {"scheduler.name=plateau trainer.val_every=2",
       "scheduler.name: plateau reduces the lr when val_loss stops improving, but validation is "
       "off (data.val_fraction is 0)"},
      // Only the run's length tells: 0.25 * 4 steps puts the warm-up phase at no steps.
      {"scheduler.name=onecycle scheduler.pct_start=0.25",
       "config error: scheduler: OneCycleLR: phase 1 spans no steps (it starts and ends at step "
       "0)"},
  };
  for (const auto& [set, message] : unlocated) {
    const Result r = run("fit " + good + " --set trainer.max_steps=4 " + set);
    EXPECT_EQ(r.status, 2) << set << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << set << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "run")) << set << ": the run directory must not be created";
  }
}

// Stopped after step 3 (its checkpoint) and resumed to 6: the same metrics as the uninterrupted
// run, for each scheduler (the chainable ones continue from the restored lr, onecycle from its
// step).
TEST_F(FabricTrain, ResumeContinuesEachSchedulersLrs) {
  const std::string cfg = write_contract(", checkpoint_every: 3");
  for (const SchedulerCase& c : scheduler_cases()) {
    const std::string common = " --set trainer.max_steps=6 " + c.set;
    const std::string full_dir = (dir_ / "full").string(), part_dir = (dir_ / "part").string();
    fs::remove_all(full_dir);
    fs::remove_all(part_dir);
    ASSERT_EQ(run("fit " + cfg + common + " trainer.run_dir=" + full_dir).status, 0) << c.name;
    ASSERT_EQ(run("fit " + cfg + common + " trainer.run_dir=" + part_dir).status, 0) << c.name;
    // As if the process died after step 4: checkpoints/last back to step 3.
    fs::remove_all(part_dir + "/checkpoints/last");
    fs::copy(part_dir + "/checkpoints/step-3", part_dir + "/checkpoints/last",
             fs::copy_options::recursive);
    const Result res = run("resume " + part_dir);
    ASSERT_EQ(res.status, 0) << c.name << "\n" << res.output;
    const auto a = lines(full_dir + "/metrics.csv");
    ASSERT_EQ(a.size(), 7u) << c.name;
    EXPECT_EQ(a, lines(part_dir + "/metrics.csv"))
        << c.name << ": resumed metrics must equal the uninterrupted run's";
  }
  // A onecycle resumed with fewer steps than it has taken has no lr there: a config error.
  const std::string one = (dir_ / "one").string();
  ASSERT_EQ(run("fit " + cfg +
                " --set trainer.max_steps=6 scheduler.name=onecycle trainer.run_dir=" + one)
                .status,
            0);
  const Result shorter = run("resume " + one + " --set trainer.max_steps=2");
  EXPECT_EQ(shorter.status, 2) << shorter.output;
  EXPECT_NE(
      shorter.output.find("config error: resume: scheduler: OneCycleLR: tried to step 7 times. The "
                          "specified number of total steps is 2"),
      std::string::npos)
      << shorter.output;
}

// A finished run resumes as Lightning's does: nothing left to train, exit 0, metrics and the
// checkpoint's step as they were; a longer max_steps continues it. The scheduler has stepped once
// past the run's last step there (a linear onecycle's lr is then below 0, as torch's:
// checkpoints/last holds it), and loading that state must not be refused.
TEST_F(FabricTrain, ResumeOfAFinishedRunWorksForEachScheduler) {
  const std::string cfg = write_contract();
  for (const SchedulerCase& c : scheduler_cases()) {
    const std::string run_dir = (dir_ / "done").string();
    fs::remove_all(run_dir);
    ASSERT_EQ(
        run("fit " + cfg + " --set trainer.max_steps=4 " + c.set + " trainer.run_dir=" + run_dir)
            .status,
        0)
        << c.name;
    const auto before = lines(run_dir + "/metrics.csv");
    const Result r = run("resume " + run_dir);
    ASSERT_EQ(r.status, 0) << c.name << "\n" << r.output;
    EXPECT_NE(r.output.find("(resumed at step 4, now at step 4)"), std::string::npos)
        << c.name << "\n"
        << r.output;
    EXPECT_EQ(lines(run_dir + "/metrics.csv"), before) << c.name;
    // And it can be lengthened (onecycle: on the longer run's curve from step 5 on).
    const Result longer = run("resume " + run_dir + " --set trainer.max_steps=6");
    ASSERT_EQ(longer.status, 0) << c.name << "\n" << longer.output;
    EXPECT_EQ(lines(run_dir + "/metrics.csv").size(), 7u) << c.name;
  }
}

}  // namespace
}  // namespace fabric
