// Throughput and ThroughputMonitor (Lightning's lightning.fabric.utilities.throughput): a worked
// example by hand from Lightning's formulas (window fill, per device and global, items, FLOPs,
// MFU), the metric names and order, the update errors, the peak-FLOPs table and the monitor's
// logging through Fabric.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/connector.h"
#include "runtime/fabric.h"
#include "runtime/throughput.h"
#include "runtime/throughput_flops.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {
using namespace std::chrono_literals;

std::vector<std::string> names_of(const Metrics& m) {
  std::vector<std::string> out;
  for (const auto& [name, value] : m) out.push_back(name);
  return out;
}

double value_of(const Metrics& m, const std::string& name) {
  for (const auto& [n, v] : m)
    if (n == name) return v;
  ADD_FAILURE() << "no metric " << name;
  return 0;
}

// window_size 3, world_size 2, a peak of 100 FLOP/s. Per device, the updates are
//   time 1, 2, 4, 5; batches 1..4; samples 4, 8, 12, 16; lengths 40, 100, 130, 170; 10 FLOPs each.
// After the third the window is full: elapsed time 4 - 1 = 3 s, batches 3 - 1 = 2, samples
// 12 - 4 = 8, lengths 130 - 40 = 90; FLOPs (10 * 2 per update, summed over the ranks):
// 20 + 20 + 20 - 20 (the first entry was spent before the window's first time) = 40.
// After the fourth: time 5 - 2 = 3, batches 4 - 2, samples 16 - 8, lengths 170 - 100.
TEST(Throughput, WorkedExampleFromLightningsFormulas) {
  Throughput t({.available_flops = 100.0, .world_size = 2, .window_size = 3});
  struct Step {
    ThroughputUpdate update;
    std::vector<std::pair<std::string, double>> expected;
  };
  const std::vector<Step> steps = {
      {{.time = 1, .batches = 1, .samples = 4, .lengths = 40, .flops = 10},
       {{"time", 1}, {"batches", 1}, {"samples", 4}, {"lengths", 40}}},
      // Not full yet: only the totals.
      {{.time = 2, .batches = 2, .samples = 8, .lengths = 100, .flops = 10},
       {{"time", 2}, {"batches", 2}, {"samples", 8}, {"lengths", 100}}},
      {{.time = 4, .batches = 3, .samples = 12, .lengths = 130, .flops = 10},
       {{"time", 4},
        {"batches", 3},
        {"samples", 12},
        {"lengths", 130},
        {"device/batches_per_sec", 2.0 / 3},
        {"device/samples_per_sec", 8.0 / 3},
        {"batches_per_sec", 2.0 / 3 * 2},
        {"samples_per_sec", 8.0 / 3 * 2},
        {"device/items_per_sec", 90.0 / 3},
        {"items_per_sec", 90.0 / 3 * 2},
        {"flops_per_sec", 40.0 / 3},
        {"device/flops_per_sec", 40.0 / 3 / 2},
        {"device/mfu", 40.0 / 3 / 2 / 100}}},
      {{.time = 5, .batches = 4, .samples = 16, .lengths = 170, .flops = 10},
       {{"time", 5},
        {"batches", 4},
        {"samples", 16},
        {"lengths", 170},
        {"device/batches_per_sec", 2.0 / 3},
        {"device/samples_per_sec", 8.0 / 3},
        {"batches_per_sec", 2.0 / 3 * 2},
        {"samples_per_sec", 8.0 / 3 * 2},
        {"device/items_per_sec", 70.0 / 3},
        {"items_per_sec", 70.0 / 3 * 2},
        {"flops_per_sec", 40.0 / 3},
        {"device/flops_per_sec", 40.0 / 3 / 2},
        {"device/mfu", 40.0 / 3 / 2 / 100}}},
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE("update " + std::to_string(i + 1));
    t.update(steps[i].update);
    const Metrics m = t.compute();
    ASSERT_EQ(m.size(), steps[i].expected.size()) << ::testing::PrintToString(names_of(m));
    for (size_t k = 0; k < m.size(); ++k) {
      EXPECT_EQ(m[k].first, steps[i].expected[k].first);  // Lightning's dict order
      EXPECT_DOUBLE_EQ(m[k].second, steps[i].expected[k].second) << m[k].first;
    }
  }
  t.reset();
  EXPECT_THROW(t.compute(), Error);
  t.update({.time = 0.5, .batches = 1, .samples = 1});  // after reset the values may start lower
  EXPECT_EQ(names_of(t.compute()), (std::vector<std::string>{"time", "batches", "samples"}));
}

TEST(Throughput, OneDeviceHasNoGlobalMetricsAndMfuNeedsAPeak) {
  struct Case {
    const char* what;
    ThroughputOptions options;
    std::vector<std::string> names;
  };
  const std::vector<Case> cases = {
      {"world 1 with a peak",
       {.available_flops = 1e12, .window_size = 2},
       {"time", "batches", "samples", "device/batches_per_sec", "device/samples_per_sec",
        "device/flops_per_sec", "device/mfu"}},
      {"no peak: no mfu",
       {.window_size = 2},
       {"time", "batches", "samples", "device/batches_per_sec", "device/samples_per_sec",
        "device/flops_per_sec"}},
      {"a peak of 0: no mfu",
       {.available_flops = 0.0, .window_size = 2},
       {"time", "batches", "samples", "device/batches_per_sec", "device/samples_per_sec",
        "device/flops_per_sec"}},
      {"another separator",
       {.window_size = 2, .separator = "|"},
       {"time", "batches", "samples", "device|batches_per_sec", "device|samples_per_sec",
        "device|flops_per_sec"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Throughput t(c.options);
    t.update({.time = 1, .batches = 1, .samples = 2, .flops = 6});
    t.update({.time = 3, .batches = 2, .samples = 4, .flops = 6});
    const Metrics m = t.compute();
    EXPECT_EQ(names_of(m), c.names);
    EXPECT_DOUBLE_EQ(value_of(m, c.names[3]), 0.5);  // 1 batch in 2 s
    EXPECT_DOUBLE_EQ(value_of(m, c.names[5]), 3.0);  // (6 + 6 - 6) FLOPs in 2 s
  }
}

TEST(Throughput, UpdateErrorsNameWhatWasExpected) {
  struct Case {
    const char* what;
    std::vector<ThroughputUpdate> updates;  // the last one fails
    bool value_error;                       // else a plain Error
    std::string message;
  };
  const std::vector<Case> cases = {
      {"time not increasing",
       {{.time = 2, .batches = 1, .samples = 1}, {.time = 2, .batches = 2, .samples = 2}},
       true,
       "expected `time` to increase, last: 2, current: 2"},
      {"batches not increasing",
       {{.time = 1, .batches = 3, .samples = 3}, {.time = 2, .batches = 3, .samples = 4}},
       true,
       "expected `batches` to increase, last: 3, current: 3"},
      {"samples not increasing",
       {{.time = 1, .batches = 1, .samples = 3}, {.time = 2, .batches = 2, .samples = 2}},
       true,
       "expected `samples` to increase, last: 3, current: 2"},
      {"lengths not increasing",
       {{.time = 1, .batches = 1, .samples = 1, .lengths = 9},
        {.time = 2, .batches = 2, .samples = 2, .lengths = 9}},
       true,
       "expected `lengths` to increase, last: 9, current: 9"},
      {"samples below batches",
       {{.time = 1, .batches = 4, .samples = 3}},
       true,
       "expected samples (3) to be greater or equal than batches (4)"},
      {"lengths below samples",
       {{.time = 1, .batches = 1, .samples = 4, .lengths = 3}},
       true,
       "expected lengths (3) to be greater or equal than samples (4)"},
      {"lengths on some updates only",
       {{.time = 1, .batches = 1, .samples = 1},
        {.time = 2, .batches = 2, .samples = 2, .lengths = 5}},
       false,
       "if lengths are passed (1), there needs to be the same number of samples (2)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Throughput t({.window_size = 4});
    for (size_t i = 0; i + 1 < c.updates.size(); ++i) t.update(c.updates[i]);
    const auto fail = [&] { t.update(c.updates.back()); };
    EXPECT_CONTAINS(c.value_error ? thrown<ValueError>(fail) : thrown<Error>(fail), c.message);
  }
  EXPECT_CONTAINS(thrown<ValueError>([] { Throughput({.window_size = 1}); }),
                  "window_size must be at least 2");
  EXPECT_CONTAINS(thrown<ValueError>([] { Throughput({.world_size = 0}); }),
                  "world_size must be at least 1");
  EXPECT_CONTAINS(thrown<Error>([] { Throughput().compute(); }), "before the first update");
}

// Lightning's _CUDA_FLOPS entries and chip parsing, for the devices this runtime targets.
TEST(ThroughputFlops, PeakTableAndChipNames) {
  struct Case {
    std::string device;
    std::string dtype;
    bool tf32;
    std::optional<double> flops;
    std::string why_none;
  };
  const std::vector<Case> cases = {
      {"NVIDIA H100 80GB HBM3", "bfloat16", false, 989.4e12, ""},
      {"NVIDIA H100 80GB HBM3", "float32", false, 66.9e12, ""},
      {"NVIDIA H100 80GB HBM3", "float32", true, 494.7e12, ""},  // TF32 matmuls: the tfloat32 entry
      {"NVIDIA H100 80GB HBM3", "int8", false, 1978.9e12, ""},
      {"NVIDIA H100 PCIe", "float16", false, 756e12, ""},
      {"NVIDIA H100 80GB HBM2e", "float64", false, 25.6e12, ""},
      {"NVIDIA H100 NVL", "bfloat16", false, 1978.8e12, ""},
      {"NVIDIA H200", "bfloat16", false, 989.5e12, ""},
      {"NVIDIA H200", "float32", true, 494.5e12, ""},
      {"NVIDIA H200", "int8", false, 1979e12, ""},
      {"NVIDIA A100-SXM4-80GB", "bfloat16", false, 312e12, ""},
      {"NVIDIA A100 80GB PCIe", "float32", false, 19.5e12, ""},
      {"NVIDIA A100-SXM4-40GB", "float32", true, 156e12, ""},
      {"NVIDIA H100", "bfloat16", false, std::nullopt,
       "FLOPs not found for 'NVIDIA H100', chip is 'nvidia h100'"},
      {"NVIDIA H200 NVL", "bfloat16", false, std::nullopt,
       "FLOPs not found for 'NVIDIA H200 NVL', chip is 'h200 nvl'"},
      {"Tesla T4", "float16", false, std::nullopt, "FLOPs not found for 'Tesla T4'"},
      {"NVIDIA A100-SXM4-80GB", "float8", false, std::nullopt,
       "'NVIDIA A100-SXM4-80GB' does not support float8"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.device + " " + c.dtype + (c.tf32 ? " tf32" : ""));
    std::string why;
    EXPECT_EQ(cuda_peak_flops(c.device, c.dtype, c.tf32, &why), c.flops);
    EXPECT_EQ(why, c.why_none);
  }
  std::string why;
  EXPECT_EQ(get_available_flops(Device::cpu(), "float32", &why),
            std::nullopt);  // none on CPU, silently
  EXPECT_EQ(why, "");
}

// On a GPU: the driver's name for it reaches the table (a peak, or Lightning's warning naming it).
TEST(ThroughputFlops, TheVisibleGpuIsLookedUpByItsDriverName) {
  std::string why_no_gpu;
  if (cuda_device_count(&why_no_gpu) == 0) GTEST_SKIP() << why_no_gpu;
  std::string why;
  const std::optional<double> bf16 = get_available_flops(Device::cuda(0), "bfloat16", &why);
  if (bf16) {
    EXPECT_GE(*bf16, 312e12);  // the smallest bf16 peak in the table (A100)
    EXPECT_EQ(why, "");
  } else {
    EXPECT_CONTAINS(why, "FLOPs not found for '");
  }
}

// Lightning's _plugin_to_compute_dtype: the dtype whose peak a Fabric's precision is rated at.
TEST(ThroughputFlops, ComputeDtypeOfEachPrecision) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"32-true", "float32"},         {"64-true", "float64"},  {"16-true", "float16"},
      {"bf16-true", "bfloat16"},      {"16-mixed", "float16"}, {"bf16-mixed", "bfloat16"},
      {"transformer-engine", "int8"},  // FP8: rated at the int8 peak, as Lightning
  };
  for (const auto& [precision, dtype] : cases) {
    SCOPED_TRACE(precision);
    Fabric fab({.accelerator = "cpu", .precision = precision});
    EXPECT_EQ(compute_dtype_key(fab.precision()), dtype);
  }
}

// Collects what Fabric::log_dict hands the loggers.
struct MemoryLogger : Logger {
  std::string name() const override { return "memory"; }
  void log_metrics(const Metrics& metrics, std::optional<int64_t> step) override {
    rows.emplace_back(metrics, step);
  }
  std::vector<std::pair<Metrics, std::optional<int64_t>>> rows;
};

TEST(ThroughputMonitor, LogsThroughFabricWithLightningsStepCounting) {
  auto logger = std::make_shared<MemoryLogger>();
  Fabric fab({.accelerator = "cpu", .loggers = {logger}});
  ThroughputMonitor monitor(fab, {.window_size = 2});
  EXPECT_EQ(monitor.options().world_size, 1);
  EXPECT_EQ(monitor.options().available_flops, std::nullopt);  // CPU: no peak, so no device/mfu
  monitor.update({.time = 1, .batches = 1, .samples = 8});
  monitor.update({.time = 2, .batches = 2, .samples = 16});
  struct Case {
    std::optional<int64_t> step;
    int64_t logged_step;
  };
  // No step: one past the previous call's (0 first); a given step replaces the count.
  for (const Case& c : {Case{std::nullopt, 0}, Case{10, 10}, Case{std::nullopt, 11}}) {
    SCOPED_TRACE(c.logged_step);
    const Metrics m = monitor.compute_and_log(c.step);
    EXPECT_EQ(monitor.step(), c.logged_step);
    ASSERT_FALSE(logger->rows.empty());
    EXPECT_EQ(logger->rows.back().first, m);
    EXPECT_EQ(logger->rows.back().second, c.logged_step);
  }
  EXPECT_EQ(names_of(logger->rows.back().first),
            (std::vector<std::string>{"time", "batches", "samples", "device/batches_per_sec",
                                      "device/samples_per_sec"}));
  EXPECT_DOUBLE_EQ(value_of(logger->rows.back().first, "device/samples_per_sec"), 8.0);
  monitor.reset();
  EXPECT_THROW(monitor.compute(), Error);
}

// Two processes: the monitor takes world_size 2 (global metrics appear), and only rank 0 keeps,
// computes and logs them (Lightning's rank_zero_only); rank 1's calls return no metrics.
TEST(ThroughputMonitor, OnlyRankZeroComputesAndLogsTheGlobalMetrics) {
  auto logger = std::make_shared<MemoryLogger>();
  Fabric fab({.accelerator = "cpu",
              .strategy = "ddp",
              .devices = 2,
              .loggers = {logger},
              .timeout = 60s,
              .launch_argv = dist_test::self_argv()});
  EXPECT_CONTAINS(thrown<Error>([&] { ThroughputMonitor early(fab); }), "launch()");
  fab.launch([&](Fabric& f) {
    ThroughputMonitor monitor(f, {.window_size = 2});
    EXPECT_EQ(monitor.options().world_size, 2);
    monitor.update({.time = 1, .batches = 1, .samples = 4});
    monitor.update({.time = 3, .batches = 2, .samples = 8});
    const Metrics m = monitor.compute_and_log();
    if (f.global_rank() == 0) {
      EXPECT_EQ(names_of(m), (std::vector<std::string>{
                                 "time", "batches", "samples", "device/batches_per_sec",
                                 "device/samples_per_sec", "batches_per_sec", "samples_per_sec"}));
      EXPECT_DOUBLE_EQ(value_of(m, "samples_per_sec"), 4.0);  // 4 samples in 2 s, times 2 ranks
      EXPECT_EQ(logger->rows.size(), 1u);
      if (!logger->rows.empty()) EXPECT_EQ(logger->rows[0].second, 0);
    } else {
      EXPECT_TRUE(m.empty());
      EXPECT_TRUE(monitor.compute().empty());
      EXPECT_TRUE(logger->rows.empty());
      EXPECT_EQ(monitor.step(), -1);  // the whole call is skipped, as Lightning's rank_zero_only
    }
    return 0;
  });
}

}  // namespace
}  // namespace fabric
