// Throughput's rolling window and Lightning's metric formulas; ThroughputMonitor's rank-zero
// logging through Fabric.
#include "runtime/throughput.h"

#include <numeric>
#include <sstream>

#include "runtime/fabric.h"
#include "runtime/throughput_flops.h"
#include "tensor/warning.h"

namespace fabric {

namespace {
// Whole numbers as integers, as Python prints them in the error ("last: 3, current: 2").
std::string number_text(double x) {
  std::ostringstream os;
  os.precision(15);
  os << x;
  return os.str();
}
}  // namespace

void Throughput::MonotonicWindow::append(double x, int64_t maxlen) {
  FABRIC_CHECK(values.empty() || values.back() < x, ValueError, "Throughput.update: expected `",
               name, "` to increase, last: ", number_text(values.back()),
               ", current: ", number_text(x));
  values.push_back(x);
  if (static_cast<int64_t>(values.size()) > maxlen) values.pop_front();
}

Throughput::Throughput(const ThroughputOptions& options) : options_(options) {
  FABRIC_CHECK(options_.world_size > 0, ValueError,
               "Throughput: world_size must be at least 1, got ", options_.world_size);
  // The rates are differences between the window's first and last values: two at least.
  FABRIC_CHECK(options_.window_size > 1, ValueError,
               "Throughput: window_size must be at least 2, got ", options_.window_size);
}

void Throughput::update(const ThroughputUpdate& u) {
  // Lightning's order of checks and appends: a rejected call may have appended the time already.
  const int64_t n = options_.window_size;
  time_.append(u.time, n);
  FABRIC_CHECK(u.samples >= u.batches, ValueError, "Throughput.update: expected samples (",
               u.samples, ") to be greater or equal than batches (", u.batches, ")");
  batches_.append(static_cast<double>(u.batches), n);
  samples_.append(static_cast<double>(u.samples), n);
  if (u.lengths) {
    FABRIC_CHECK(*u.lengths >= u.samples, ValueError, "Throughput.update: expected lengths (",
                 *u.lengths, ") to be greater or equal than samples (", u.samples, ")");
    lengths_.append(static_cast<double>(*u.lengths), n);
    FABRIC_CHECK(samples_.values.size() == lengths_.values.size(), Error,
                 "Throughput.update: if lengths are passed (", lengths_.values.size(),
                 "), there needs to be the same number of samples (", samples_.values.size(),
                 "): pass lengths at every update or at none");
  }
  if (u.flops) {
    flops_.push_back(*u.flops * static_cast<double>(options_.world_size));  // summed over the ranks
    if (static_cast<int64_t>(flops_.size()) > n) flops_.pop_front();
  }
}

Metrics Throughput::compute() const {
  FABRIC_CHECK(!time_.values.empty(), Error,
               "Throughput.compute: nothing to compute before the first update()");
  Metrics m{{"time", time_.values.back()},
            {"batches", batches_.values.back()},
            {"samples", samples_.values.back()}};
  if (!lengths_.values.empty()) m.emplace_back("lengths", lengths_.values.back());
  const bool global = options_.world_size > 1;
  const double world = static_cast<double>(options_.world_size);
  const auto full = [&](size_t size) { return static_cast<int64_t>(size) == options_.window_size; };
  // Rates are only reported once the window is full.
  if (full(time_.values.size())) {
    const double elapsed_time =
        time_.values.back() - time_.values.front();  // > 0: the window increases
    const double dev_batches_per_sec =
        (batches_.values.back() - batches_.values.front()) / elapsed_time;
    const double dev_samples_per_sec =
        (samples_.values.back() - samples_.values.front()) / elapsed_time;
    m.emplace_back(device_key("batches_per_sec"), dev_batches_per_sec);
    m.emplace_back(device_key("samples_per_sec"), dev_samples_per_sec);
    if (global) {
      m.emplace_back("batches_per_sec", dev_batches_per_sec * world);
      m.emplace_back("samples_per_sec", dev_samples_per_sec * world);
    }
    if (full(lengths_.values.size())) {
      const double dev_items_per_sec =
          (lengths_.values.back() - lengths_.values.front()) / elapsed_time;
      m.emplace_back(device_key("items_per_sec"), dev_items_per_sec);
      if (global) m.emplace_back("items_per_sec", dev_items_per_sec * world);
    }
  }
  if (full(flops_.size())) {
    // The first entry's FLOPs were spent before the window's first time stamp.
    const double elapsed_flops =
        std::accumulate(flops_.begin(), flops_.end(), 0.0) - flops_.front();
    const double elapsed_time = time_.values.back() - time_.values.front();
    const double flops_per_sec = elapsed_flops / elapsed_time;
    const double dev_flops_per_sec = flops_per_sec / world;
    if (global) m.emplace_back("flops_per_sec", flops_per_sec);
    m.emplace_back(device_key("flops_per_sec"), dev_flops_per_sec);
    if (options_.available_flops && *options_.available_flops != 0.0)
      m.emplace_back(device_key("mfu"), dev_flops_per_sec / *options_.available_flops);
  }
  return m;
}

void Throughput::reset() {
  time_.values.clear();
  batches_.values.clear();
  samples_.values.clear();
  lengths_.values.clear();
  flops_.clear();
}

namespace {
// Lightning's ThroughputMonitor checks the launch first: the world size is only known after it.
ThroughputOptions monitor_options(Fabric& fabric, const ThroughputMonitorOptions& o) {
  distributed::Strategy& strategy = fabric.strategy_object();
  FABRIC_CHECK(!strategy.is_distributed() || strategy.launched(), Error, "ThroughputMonitor: with ",
               fabric.world_size(),
               " processes call `fabric.launch()` first (the world size is known only then)");
  std::string why_none;
  const std::string dtype = compute_dtype_key(fabric.precision());
  std::optional<double> flops = get_available_flops(fabric.device(), dtype, &why_none);
  if (!flops && !why_none.empty() && fabric.is_global_zero()) warn(why_none);
  return {.available_flops = flops,
          .world_size = fabric.world_size(),
          .window_size = o.window_size,
          .separator = o.separator};
}
}  // namespace

ThroughputMonitor::ThroughputMonitor(Fabric& fabric, const ThroughputMonitorOptions& options)
    : Throughput(monitor_options(fabric, options)),
      fabric_(fabric),
      rank_zero_(fabric.is_global_zero()) {}

void ThroughputMonitor::update(const ThroughputUpdate& u) {
  if (rank_zero_) Throughput::update(u);
}

Metrics ThroughputMonitor::compute() const {
  return rank_zero_ ? Throughput::compute() : Metrics{};
}

void ThroughputMonitor::reset() {
  if (rank_zero_) Throughput::reset();
}

Metrics ThroughputMonitor::compute_and_log(std::optional<int64_t> step) {
  if (!rank_zero_) return {};
  step_ = step ? *step : step_ + 1;
  Metrics metrics = compute();
  fabric_.log_dict(metrics, step_);
  return metrics;
}

}  // namespace fabric
