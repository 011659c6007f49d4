// SpikeDetection (Lightning's lightning.fabric.utilities.SpikeDetection): a callback that stops
// training with a TrainingSpikeException when the loss jumps away from its running mean, after
// writing the indices of the batch and the one before it to a JSON file, so that a resumed run
// can skip them. It runs on the hook "on_train_batch_end" with the arguments "fabric", "loss"
// (a one-element tensor) and "batch_idx":
//
//   auto spikes = std::make_shared<fabric::SpikeDetection>(fabric::SpikeDetectionOptions{.window =
//   20}); fabric::Fabric fab({.callbacks = {spikes}});
//   ...
//   fab.call("on_train_batch_end", {{"fabric", fab}, {"loss", loss}, {"batch_idx", i}});
//
// For a loss L at batch i >= warmup, with running mean M over the last `window` losses that were
// taken in and previous such loss P (0 before the first), L is a spike when
//   finite_only and L is not finite, or else
//   L is not an improvement on P (mode "min": L - P > 0; "max": L - P < 0) and
//   (atol unset or |L - M| >= |atol|) and (rtol unset or |L - M| >= |rtol * M|).
// On several processes the ranks decide together: a spike on any rank stops all of them.
#pragma once
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/callbacks.h"

namespace fabric {

struct SpikeDetectionOptions {
  std::string mode = "min";          // "min": the loss should go down; "max": up
  int64_t window = 10;               // the running mean's length, in batches
  int64_t warmup = 1;                // batches before checking starts (they still enter the mean)
  std::optional<double> atol;        // unset: no absolute condition
  std::optional<double> rtol = 2.0;  // unset: no relative condition
  // A path ending in ".json" is the file; anything else is its directory, holding
  // "skip_batches.json". Unset: the working directory at the first batch (as Lightning).
  std::optional<std::string> exclude_batches_path;
  // True: a NaN/inf loss is a spike. False: it is not checked, and it does not enter the mean.
  bool finite_only = true;
};

// Thrown on every rank when a spike was found (Lightning's TrainingSpikeException).
class TrainingSpikeException : public Error {
 public:
  explicit TrainingSpikeException(int64_t batch_idx)
      : Error("Training spike detected in batch " + std::to_string(batch_idx)),
        batch_idx_(batch_idx) {}
  int64_t batch_idx() const { return batch_idx_; }

 private:
  int64_t batch_idx_;
};

class SpikeDetection : public Callback {
 public:
  // mode other than "min"/"max", or a window below 1: ValueError.
  explicit SpikeDetection(const SpikeDetectionOptions& options = {});

  // The hook. Collective on several processes (a barrier and two reductions): every rank calls it.
  void on_train_batch_end(Fabric& fabric, const Tensor& loss, int64_t batch_idx);

  // Every excluded index so far, as written to the file: (i - 1, i) per spike.
  const std::vector<int64_t>& bad_batches() const { return bad_batches_; }
  // The mean of the window (NaN before the first loss, as torchmetrics' empty mean).
  double running_mean() const;
  double last_value() const { return last_val_; }
  // The JSON file's path once the first batch has resolved it; unset before.
  const std::optional<std::string>& exclude_batches_path() const { return path_; }
  const SpikeDetectionOptions& options() const { return options_; }

 private:
  bool is_spike(double loss) const;
  bool is_better(double diff) const;
  void update_stats(double loss);
  [[noreturn]] void handle_spike(Fabric& fabric, int64_t batch_idx);

  SpikeDetectionOptions options_;
  std::optional<std::string> path_;
  double last_val_ = 0.0;
  // One (sum, count) per batch taken in, the newest `window` of them (torchmetrics' Running over a
  // MeanMetric): a NaN loss is dropped from the mean but still takes its place in the window.
  std::deque<std::pair<double, double>> window_;
  std::vector<int64_t> bad_batches_;
};

}  // namespace fabric
