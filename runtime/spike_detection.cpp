// SpikeDetection: Lightning's conditions, running mean and exclude file.
#include "runtime/spike_detection.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/fabric.h"
#include "tensor/warning.h"

namespace fabric {

SpikeDetection::SpikeDetection(const SpikeDetectionOptions& options) : options_(options) {
  FABRIC_CHECK(options_.mode == "min" || options_.mode == "max", ValueError,
               "SpikeDetection: invalid mode '", options_.mode, "'; expected 'min' or 'max'");
  FABRIC_CHECK(options_.window >= 1, ValueError,
               "SpikeDetection: window must be a positive integer, got ", options_.window);
  define_hook("on_train_batch_end", [this](const HookArgs& args) {
    on_train_batch_end(args.fabric("fabric"), args.tensor("loss"), args.integer("batch_idx"));
  });
}

double SpikeDetection::running_mean() const {
  double sum = 0.0, count = 0.0;
  for (const auto& [s, c] : window_) sum += s, count += c;
  return sum / count;  // 0/0 = NaN before the first loss, as torchmetrics
}

void SpikeDetection::on_train_batch_end(Fabric& fabric, const Tensor& loss, int64_t batch_idx) {
  FABRIC_CHECK(loss.defined() && loss.numel() == 1, ValueError,
               "SpikeDetection.on_train_batch_end: 'loss' must be a one-element tensor, got ",
               loss.defined() ? std::to_string(loss.numel()) + " elements"
                              : std::string("an undefined tensor"));
  const double value = loss.item<double>();
  if (!path_) {
    std::filesystem::path p =
        options_.exclude_batches_path.value_or(std::filesystem::current_path().string());
    if (!p.string().ends_with(".json")) p /= "skip_batches.json";
    path_ = p.string();
  }
  // Checking starts at batch `warmup`; the batches before it only feed the mean.
  const bool spike = batch_idx >= options_.warmup && is_spike(value);
  fabric.barrier("SpikeDetection");
  // Each rank checks its own loss, but all stop together when any of them saw a spike.
  if (fabric.all_reduce(spike ? 1.0 : 0.0, "max") > 0.0) handle_spike(fabric, batch_idx);
  const bool finite_everywhere =
      options_.finite_only || fabric.all_reduce(std::isfinite(value) ? 1.0 : 0.0, "min") > 0.0;
  if (finite_everywhere) update_stats(value);
}

bool SpikeDetection::is_spike(double loss) const {
  const double mean = running_mean();
  if (options_.finite_only && !std::isfinite(loss)) return true;
  if (is_better(loss - last_val_)) return false;
  // Comparisons with a NaN mean (no loss taken in yet) are false: no spike unless both are unset.
  const double distance = std::abs(loss - mean);
  const bool beyond_atol = !options_.atol || distance >= std::abs(*options_.atol);
  const bool beyond_rtol = !options_.rtol || distance >= std::abs(*options_.rtol * mean);
  return beyond_atol && beyond_rtol;
}

bool SpikeDetection::is_better(double diff) const {
  return options_.mode == "min" ? diff <= 0.0 : diff >= 0.0;
}

void SpikeDetection::update_stats(double loss) {
  // torchmetrics' MeanMetric drops NaN values (with a warning); the batch still takes its place.
  if (std::isnan(loss)) {
    warn("SpikeDetection: encountered a NaN loss; it is left out of the running mean");
    window_.emplace_back(0.0, 0.0);
  } else {
    window_.emplace_back(loss, 1.0);
  }
  while (static_cast<int64_t>(window_.size()) > options_.window) window_.pop_front();
  last_val_ = loss;
}

void SpikeDetection::handle_spike(Fabric& fabric, int64_t batch_idx) {
  // The previous batch goes too: its update may have been what corrupted the weights.
  bad_batches_.push_back(batch_idx - 1);
  bad_batches_.push_back(batch_idx);
  if (fabric.global_rank() == 0) {
    const std::filesystem::path p(*path_);
    std::error_code ec;
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
    std::ofstream out(p, std::ios::trunc);
    // json.dump(bad_batches, f, indent=4), byte for byte.
    out << nlohmann::json(bad_batches_).dump(4);
    out.close();
    FABRIC_CHECK(out.good(), IOError, "SpikeDetection: could not write the batches to skip to '",
                 *path_, "'", ec ? " (" + ec.message() + ")" : std::string());
  }
  throw TrainingSpikeException(batch_idx);
}

}  // namespace fabric
