// Throughput and ThroughputMonitor (Lightning's lightning.fabric.utilities.throughput): rolling
// batches/samples/items/FLOPs per second over the last `window_size` updates, per device and, with
// several processes, for all of them, and the model FLOPs utilisation against the device's peak.
//
//   fabric::ThroughputMonitor throughput(fab, {.window_size = 10});
//   const auto t0 = std::chrono::steady_clock::now();
//   for (int64_t i = 1; i <= steps; ++i) {
//     train_step();  // on CUDA, synchronise first: the time must include the device's work
//     const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() -
//     t0).count(); throughput.update({.time = t, .batches = i, .samples = i * batch_size, .flops =
//     flops_per_batch}); if (i % 10 == 0) throughput.compute_and_log(i);
//   }
#pragma once
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "runtime/loggers.h"

namespace fabric {

class Fabric;

struct ThroughputOptions {
  // Peak FLOP/s of one device (get_available_flops); unset or 0: no device/mfu.
  std::optional<double> available_flops;
  int64_t world_size = 1;       // global metrics only when > 1
  int64_t window_size = 100;    // updates in the rolling window; at least 2
  std::string separator = "/";  // "device<separator>samples_per_sec"
};

// One update: running totals since the start, per device (each must increase with every call).
struct ThroughputUpdate {
  double time = 0;  // seconds elapsed
  int64_t batches = 0;
  int64_t samples = 0;             // >= batches
  std::optional<int64_t> lengths;  // items (e.g. tokens); >= samples; every call or none
  std::optional<double> flops;     // FLOPs of this device since the previous update
};

class Throughput {
 public:
  // world_size < 1 or window_size < 2: ValueError.
  explicit Throughput(const ThroughputOptions& options = {});
  virtual ~Throughput() = default;

  // A value that does not increase, samples < batches or lengths < samples: ValueError; lengths
  // passed on some calls only: Error.
  virtual void update(const ThroughputUpdate& u);
  // time, batches, samples[, lengths] (the latest totals); once the window is full also
  // device/batches_per_sec, device/samples_per_sec[, batches_per_sec, samples_per_sec],
  // [device/items_per_sec, items_per_sec]; once `window_size` flops were given
  // [flops_per_sec,] device/flops_per_sec[, device/mfu]. Global ("batches_per_sec") names only for
  // world_size > 1. In that order, as Lightning's dict. Before any update: Error.
  virtual Metrics compute() const;
  virtual void reset();

  const ThroughputOptions& options() const { return options_; }

 private:
  // Lightning's _MonotonicWindow: the newest `window_size` values, each above the one before.
  struct MonotonicWindow {
    const char* name;
    std::deque<double> values;
    void append(double x, int64_t maxlen);
  };
  std::string device_key(const char* name) const { return "device" + options_.separator + name; }
  ThroughputOptions options_;
  MonotonicWindow time_{"time", {}}, batches_{"batches", {}}, samples_{"samples", {}},
      lengths_{"lengths", {}};
  std::deque<double> flops_;  // each update's FLOPs times world_size (summed over the ranks)
};

struct ThroughputMonitorOptions {
  int64_t window_size = 100;
  std::string separator = "/";
};

// Throughput with the world size and the peak FLOP/s taken from a Fabric (its device and its
// precision plugin's compute dtype), logging through Fabric::log_dict. Only global rank 0 keeps
// and logs the metrics (Lightning's rank_zero_only): elsewhere update/reset do nothing and
// compute/compute_and_log return no metrics.
class ThroughputMonitor : public Throughput {
 public:
  // Several processes need launch() first (Error otherwise: the world size would be wrong). A
  // device missing from the peak table warns (rank 0) and leaves device/mfu out.
  explicit ThroughputMonitor(Fabric& fabric, const ThroughputMonitorOptions& options = {});

  void update(const ThroughputUpdate& u) override;
  Metrics compute() const override;
  void reset() override;
  // compute(), then Fabric::log_dict at `step`; without a step, one past the previous call's step
  // (0 for the first).
  Metrics compute_and_log(std::optional<int64_t> step = std::nullopt);
  int64_t step() const { return step_; }

 private:
  Fabric& fabric_;
  bool rank_zero_;
  int64_t step_ = -1;
};

}  // namespace fabric
