// SpikeDetection (Lightning's lightning.fabric.utilities.SpikeDetection) driven through
// Fabric::call("on_train_batch_end", ...): worked loss sequences where Lightning's conditions put
// the spike at one exact batch (and a loss just short of it that is no spike), warmup, the
// running window, mode "max" with atol, finite_only, and the JSON file of batches to skip.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/fabric.h"
#include "runtime/spike_detection.h"
#include "tensor/factory.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

fs::path temp_dir(const std::string& name) {
  return fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Feeds the losses as batches 0, 1, ... through Fabric::call; returns the batch of the
// TrainingSpikeException (none when every loss passed).
std::optional<int64_t> run_losses(Fabric& fab, const std::vector<double>& losses) {
  for (size_t i = 0; i < losses.size(); ++i) {
    try {
      fab.call("on_train_batch_end", {{"fabric", fab},
                                      {"loss", scalar_tensor(losses[i], {.dtype = DType::float64})},
                                      {"batch", "ignored"},
                                      {"batch_idx", static_cast<int64_t>(i)}});
    } catch (const TrainingSpikeException& e) {
      EXPECT_EQ(std::string(e.what()), "Training spike detected in batch " + std::to_string(i));
      return e.batch_idx();
    }
  }
  return std::nullopt;
}

// Each case by Lightning's formulas (spike_detection.h): a loss L at batch i >= warmup that is not
// an improvement on the previous loss is a spike when |L - M| >= |atol| and |L - M| >= |rtol * M|,
// M the mean of the last `window` losses taken in.
TEST(SpikeDetection, WorkedSequencesSpikeAtTheBatchLightningsFormulaGives) {
  struct Case {
    const char* what;
    SpikeDetectionOptions options;
    std::vector<double> losses;
    std::optional<int64_t> spike_at;
  };
  const std::vector<Case> cases = {
      // window 4: at batch 5 the window is (1, 1, 2, 2), M = 1.5 (the 8 of batch 0 has left it);
      // |4.5 - 1.5| = 3 >= 2 * 1.5: a spike exactly at the threshold.
      {"at the threshold", {.window = 4, .warmup = 2}, {8, 1, 1, 2, 2, 4.5}, 5},
      {"just below it", {.window = 4, .warmup = 2}, {8, 1, 1, 2, 2, 4.49}, std::nullopt},
      // The same losses with a window of 10 keep the 8: M = 14 / 5 = 2.8, |4.5 - 2.8| < 5.6.
      {"a longer window remembers the 8",
       {.window = 10, .warmup = 2},
       {8, 1, 1, 2, 2, 4.5},
       std::nullopt},
      // Equal or lower losses are improvements in mode "min", however far from the mean.
      {"improvements never spike", {.window = 2}, {100, 1, 1, 0.01}, std::nullopt},
      // Batch 1 jumps from 1 to 10 (|9| >= 2): a spike from warmup 1 on, ignored before warmup 3.
      {"after warmup", {.warmup = 1}, {1, 10}, 1},
      {"during warmup", {.warmup = 3}, {1, 10, 10, 10}, std::nullopt},
      // The jump entered the mean during warmup: at batch 3, M = 7, |31 - 7| = 24 >= 14.
      {"first check after warmup", {.warmup = 3}, {1, 10, 10, 31}, 3},
      // atol and rtol must both hold: |4 - 1| = 3 >= 2 (rtol) but < atol 3.5.
      {"atol also required", {.atol = 3.5}, {1, 1, 4}, std::nullopt},
      {"atol and rtol met", {.atol = 3.0}, {1, 1, 4}, 2},
      {"rtol unset: atol alone", {.atol = 0.5, .rtol = std::nullopt}, {1, 1, 1.5}, 2},
      // Mode "max": a drop of |1.9 - 4| = 2.1 >= atol 2 is a spike; a rise never is.
      {"max: a drop", {.mode = "max", .atol = 2.0, .rtol = std::nullopt}, {4, 4, 1.9}, 2},
      {"max: a smaller drop",
       {.mode = "max", .atol = 2.0, .rtol = std::nullopt},
       {4, 4, 2.5},
       std::nullopt},
      {"max: a rise",
       {.mode = "max", .atol = 2.0, .rtol = std::nullopt},
       {4, 4, 100},
       std::nullopt},
      // finite_only (the default): NaN and inf are spikes once checking has started.
      {"finite_only: NaN", {}, {1, 1, kNaN}, 2},
      {"finite_only: -inf", {}, {1, 1, -kInf}, 2},
      // finite_only false: NaN fails every tolerance comparison (no spike) and stays out of the
      // mean; inf is far from any finite mean (a spike).
      {"not finite_only: NaN", {.finite_only = false}, {1, 1, kNaN, 1}, std::nullopt},
      {"not finite_only: inf", {.finite_only = false}, {1, 1, kInf}, 2},
  };
  const fs::path dir = temp_dir("spike_cases");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    SpikeDetectionOptions options = c.options;
    options.exclude_batches_path = dir.string();
    auto spikes = std::make_shared<SpikeDetection>(options);
    Fabric fab({.callbacks = {spikes}});
    EXPECT_EQ(run_losses(fab, c.losses), c.spike_at);
    if (c.spike_at)
      EXPECT_EQ(spikes->bad_batches(), (std::vector<int64_t>{*c.spike_at - 1, *c.spike_at}));
    else
      EXPECT_TRUE(spikes->bad_batches().empty());
  }
  fs::remove_all(dir);
}

TEST(SpikeDetection, RunningMeanKeepsTheLastWindowLossesAndSkipsNaN) {
  auto spikes = std::make_shared<SpikeDetection>(SpikeDetectionOptions{.window = 3, .warmup = 100});
  Fabric fab({.callbacks = {spikes}});
  EXPECT_TRUE(std::isnan(spikes->running_mean()));  // torchmetrics' empty mean: 0 / 0
  EXPECT_EQ(run_losses(fab, {6, 3, 3}), std::nullopt);
  EXPECT_DOUBLE_EQ(spikes->running_mean(), 4.0);
  EXPECT_EQ(run_losses(fab, {6, 3, 3, 0}), std::nullopt);  // batches 0..3 again: window (3, 3, 0)
  EXPECT_DOUBLE_EQ(spikes->running_mean(), 2.0);
  // During warmup a NaN is taken in (finite_only) but dropped from the mean, as torchmetrics'
  // MeanMetric does; it still takes a place in the window: (3, 0, NaN) -> mean 1.5.
  fab.call("on_train_batch_end",
           {{"fabric", fab}, {"loss", scalar_tensor(kNaN)}, {"batch_idx", 4}});
  EXPECT_DOUBLE_EQ(spikes->running_mean(), 1.5);
  EXPECT_TRUE(std::isnan(spikes->last_value()));
}

TEST(SpikeDetection, WritesTheBatchesToSkipAsLightningsJson) {
  const fs::path dir = temp_dir("spike_json");
  struct Case {
    const char* what;
    std::string option;  // exclude_batches_path
    fs::path file;       // where the JSON lands
  };
  const std::vector<Case> cases = {
      {"a directory: skip_batches.json in it (created)", (dir / "nested").string(),
       dir / "nested" / "skip_batches.json"},
      {"a directory with a trailing slash", (dir / "slash").string() + "/",
       dir / "slash" / "skip_batches.json"},
      {"a .json path: that file", (dir / "mine.json").string(), dir / "mine.json"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto spikes =
        std::make_shared<SpikeDetection>(SpikeDetectionOptions{.exclude_batches_path = c.option});
    Fabric fab({.callbacks = {spikes}});
    EXPECT_EQ(run_losses(fab, {1, 1, 1, 1, 5}), 4);
    EXPECT_EQ(read_file(c.file), "[\n    3,\n    4\n]");  // json.dump(indent=4)
    EXPECT_EQ(fs::path(*spikes->exclude_batches_path()), c.file);
    // A second spike (the run caught the first and went on) adds its pair to the file.
    EXPECT_EQ(run_losses(fab, {1, 1, 1, 1, 1, 1, 1, 40}), 7);
    EXPECT_EQ(read_file(c.file), "[\n    3,\n    4,\n    6,\n    7\n]");
  }
  fs::remove_all(dir);
}

// Two processes: each rank checks its own loss, a spike on any rank stops both, only rank 0
// writes the file, and a loss that is not finite on one rank keeps every rank's mean unchanged
// (finite_only false).
TEST(SpikeDetection, AnyRanksSpikeStopsEveryRankAndOnlyRankZeroWrites) {
  // The launched rank has another pid, hence another directory: it must stay without a file.
  const fs::path dir = temp_dir("spike_ddp");
  auto spikes = std::make_shared<SpikeDetection>(
      SpikeDetectionOptions{.exclude_batches_path = dir.string(), .finite_only = false});
  Fabric fab({.accelerator = "cpu",
              .strategy = "ddp",
              .devices = 2,
              .callbacks = {spikes},
              .timeout = 60s,
              .launch_argv = dist_test::self_argv()});
  fab.launch([&](Fabric& f) {
    const bool rank0 = f.global_rank() == 0;
    // Batch 2: rank 1's NaN is no spike (finite_only false), but it keeps rank 0's 0.5 out of
    // the mean too. Batch 3: rank 1 jumps to 10 (|10 - 1| >= 2 * 1), rank 0 stays at 1.
    const std::vector<double> losses =
        rank0 ? std::vector<double>{1, 1, 0.5, 1} : std::vector<double>{1, 1, kNaN, 10};
    EXPECT_EQ(run_losses(f, losses), 3);
    EXPECT_EQ(spikes->bad_batches(), (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(spikes->last_value(), 1.0);  // not rank 0's 0.5
    EXPECT_EQ(spikes->running_mean(), 1.0);
    const fs::path file = dir / "skip_batches.json";
    if (rank0)
      EXPECT_EQ(read_file(file), "[\n    2,\n    3\n]");
    else
      EXPECT_FALSE(fs::exists(file)) << file;
    f.barrier();
    if (rank0) fs::remove_all(dir);
    return 0;
  });
}

TEST(SpikeDetection, BadOptionsAndArguments) {
  EXPECT_CONTAINS(thrown<ValueError>([] { SpikeDetection({.mode = "lowest"}); }), "'lowest'");
  EXPECT_CONTAINS(thrown<ValueError>([] { SpikeDetection({.window = 0}); }), "window");
  auto spikes = std::make_shared<SpikeDetection>();
  Fabric fab({.callbacks = {spikes}});
  EXPECT_CONTAINS(
      thrown<ValueError>([&] {
        fab.call("on_train_batch_end", {{"fabric", fab}, {"loss", ones({2})}, {"batch_idx", 0}});
      }),
      "one-element");
  EXPECT_CONTAINS(thrown<KeyError>([&] {
                    fab.call("on_train_batch_end", {{"fabric", fab}, {"batch_idx", 0}});
                  }),
                  "'loss'");
  EXPECT_CONTAINS(
      thrown<DTypeError>([&] {
        fab.call("on_train_batch_end", {{"fabric", fab}, {"loss", 0.5}, {"batch_idx", 0}});
      }),
      "'loss' is a number, expected a tensor");
  const TrainingSpikeException e(12);
  const Error& as_error = e;  // a fabric::Error, as every error here
  EXPECT_EQ(std::string(as_error.what()), "Training spike detected in batch 12");
}

}  // namespace
}  // namespace fabric
