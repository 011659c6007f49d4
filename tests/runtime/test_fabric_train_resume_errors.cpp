// fabric-train resume, end to end, on a damaged run directory: counters in the checkpoint that are
// not counts, and a malformed metrics.csv, exit 1 as damaged run files (README: exit 2 is for bad
// configs and command lines), naming the file, the key or line, and what was expected. Either way
// the run directory stays as it was.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "tensor/random.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace train_test;

class FabricTrainResumeErrors : public train_test::RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_resume_errors");
    if (IsSkipped()) return;
    Generator gen(7);  // 100 examples of 8 features, 3 classes
    save_classification_data(dir_ / "cls.safetensors", 100, 8, 3, gen);
    const std::string cfg = (dir_ / "base.yaml").string();
    std::ofstream(cfg) << "model:     {name: mlp, sizes: [8, 16, 3]}\n"
                          "data:      {kind: tensors, path: "
                       << (dir_ / "cls.safetensors").string()
                       << "}\n"
                          "optimizer: {name: adamw, lr: 0.01}\n"
                          "trainer:   {max_steps: 4, batch_size: 16, checkpoint_every: 2, run_dir: "
                       << run_dir().string() << "}\n";
    const Result fit = run("fit " + cfg);
    ASSERT_EQ(fit.status, 0) << fit.output;
    saved_state_ = slurp(state_json());
    config_ = slurp(run_dir() / "config.yaml");
    metrics_ = slurp(run_dir() / "metrics.csv");
  }

  fs::path run_dir() const { return dir_ / "run"; }
  fs::path state_json() const { return run_dir() / "checkpoints/last/state.json"; }
  // The last checkpoint's state.json with `edit` applied.
  void edit_state(const std::function<void(json&)>& edit) {
    json meta = json::parse(saved_state_);
    edit(meta);
    std::ofstream(state_json()) << meta.dump(2);
  }
  // resume (lengthened, so that config.yaml would change) fails with `status` and `message`, and
  // leaves config.yaml and metrics.csv as they were.
  void expect_refused(int status, const std::string& message, const std::string& expected_metrics) {
    const Result r = run("resume " + run_dir().string() + " --set trainer.max_steps=6");
    EXPECT_EQ(r.status, status) << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << "expected: " << message << "\n"
                                                         << r.output;
    EXPECT_EQ(slurp(run_dir() / "config.yaml"), config_);
    EXPECT_EQ(slurp(run_dir() / "metrics.csv"), expected_metrics);
  }

  std::string saved_state_, config_, metrics_;
};

TEST_F(FabricTrainResumeErrors, CounterThatIsNotACountExits1) {
  const std::string file = (run_dir() / "checkpoints/last/state.json").string();
  edit_state([](json& m) { m["entries"]["step"]["value"] = -3; });
  expect_refused(1, "fabric-train: error: resume: " + file + ": 'step' is -3, a count that must be >= 0", metrics_);
  edit_state([](json& m) { m["entries"]["step"] = {{"kind", "float"}, {"value", 2.5}}; });
  expect_refused(1, "error: resume: " + file + ": 'step' is a float, not an integer", metrics_);
  edit_state([](json& m) { m["entries"]["data.epoch"]["value"] = -1; });
  expect_refused(1, "error: resume: " + file + ": 'data.epoch' is -1, a count that must be >= 0", metrics_);
  edit_state([](json& m) { m["entries"]["rng.offset"] = {{"kind", "string"}, {"value", "7"}}; });
  expect_refused(1, "error: resume: " + file + ": 'rng.offset' is a string, not an integer", metrics_);
  edit_state([](json& m) { m["entries"].erase("rng.offset"); });
  expect_refused(1, "error: resume: " + file + " holds no 'rng.offset' (not a checkpoint fabric-train wrote?)",
                 metrics_);
  // A value that does not match its own kind is a malformed file too.
  edit_state([](json& m) { m["entries"]["step"]["value"] = "abc"; });
  expect_refused(1, "entry 'step' (kind int) holds \"abc\", which is not an int", metrics_);
  // The checkpoint as saved still resumes.
  std::ofstream(state_json()) << saved_state_;
  const Result good = run("resume " + run_dir().string() + " --set trainer.max_steps=6");
  EXPECT_EQ(good.status, 0) << good.output;
}

TEST_F(FabricTrainResumeErrors, MalformedMetricsCsvExits1NamingTheLine) {
  // The header is lr,step,train_loss: the step is the second cell.
  std::string bad = metrics_;
  const size_t line3 = bad.find('\n', bad.find('\n') + 1) + 1;
  const size_t cell = bad.find(',', line3) + 1;
  bad.replace(cell, bad.find(',', cell) - cell, "abc");
  std::ofstream(run_dir() / "metrics.csv") << bad;
  expect_refused(1,
                 "fabric-train: error: CSVLogger: " + (run_dir() / "metrics.csv").string() +
                     " line 3: step 'abc' is not an integer",
                 bad);
  const std::string ragged = metrics_ + "0.01,5\n";
  std::ofstream(run_dir() / "metrics.csv") << ragged;
  expect_refused(1, "line 6: 2 cells but the header has 3 columns", ragged);
}

}  // namespace
}  // namespace fabric
