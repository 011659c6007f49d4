// PyTorch's ReduceLROnPlateau (torch 1.13): divides the lrs by 1 / factor when a monitored metric
// (a validation loss) has not improved for more than `patience` steps. Unlike the LRSchedulers it
// is stepped with that metric, and it changes the lrs in place (a manual lr change carries on); in
// torch, too, it is no _LRScheduler.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "optim/optimizer.h"

namespace fabric::optim {

struct PlateauOptions {
  std::string mode = "min";  // min: the metric should fall (a loss); max: rise (an accuracy)
  double factor = 0.1;       // new lr = lr * factor, in [0, 1)
  int64_t patience = 10;     // steps without improvement tolerated before a reduction
  // What counts as an improvement on `best` (torch's rule as it is): rel: below
  // best * (1 - threshold) (max: above best * (1 + threshold)); abs: below best - threshold (max:
  // above best + threshold).
  double threshold = 1e-4;
  std::string threshold_mode = "rel";  // rel | abs
  int64_t cooldown = 0;                // steps after a reduction in which bad steps are not counted
  std::vector<double> min_lr = {0.0};  // the lrs' floor: one for every group, or one per group
  double eps = 1e-8;                   // a reduction by no more than eps is skipped
};

// torch's state_dict() keys (torch 1.13, less "verbose"): the arguments as well as the progress,
// as torch's load_state_dict restores them all.
struct PlateauState {
  double factor = 0.1, threshold = 1e-4, eps = 1e-8;
  int64_t patience = 10, cooldown = 0;
  std::vector<double> min_lrs;
  // The strings, flattened as 1-D uint8 tensors of their characters. States saved before they were
  // kept lack them: mode then follows mode_worse, threshold_mode stays empty (load keeps its own).
  std::string mode, threshold_mode;
  double best = 0, mode_worse = 0;
  int64_t num_bad_epochs = 0, cooldown_counter = 0, last_epoch = 0;
  std::vector<double> last_lr;  // "_last_lr": the groups' lrs after the last step

  // One tensor per key under `prefix`: 0-dim float64 or int64, min_lrs and _last_lr 1-D float64,
  // mode and threshold_mode 1-D uint8.
  std::vector<std::pair<std::string, Tensor>> flatten(const std::string& prefix = "") const;
  // Keys not starting with `prefix` are ignored; a missing one raises ValueError.
  static PlateauState unflatten(const std::vector<std::pair<std::string, Tensor>>& items,
                                const std::string& prefix = "");
};

// Holds a reference to its optimizer, which must outlive it.
class ReduceLROnPlateau {
 public:
  // ValueError naming an argument out of range (mode, threshold_mode, factor, patience, ...) or a
  // min_lr count that is neither 1 nor the group count; nothing is written into the optimizer.
  ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options = {});

  // torch's step(metrics): last_epoch += 1, then a better metric resets the bad-step count, a
  // worse one (NaN included) adds to it; in a cooldown the count stays 0. More than `patience` bad
  // steps reduce every group's lr to max(lr * factor, min_lr) (unless that changes it by no more
  // than eps) and start a cooldown. Groups added to the optimizer after construction are stepped
  // along until a reduction, which needs their min_lr: ValueError then, nothing changed (torch
  // 1.13 raises IndexError there, having reduced the earlier groups).
  void step(double metric);

  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t cooldown_counter() const { return cooldown_counter_; }
  bool in_cooldown() const { return cooldown_counter_ > 0; }
  // torch's is_better(a, best) for this mode and threshold.
  bool is_better(double a, double best) const;
  Optimizer& optimizer() const { return *optimizer_; }

  PlateauState state_dict() const;
  // Restores everything, as torch's does: the arguments (mode, factor, patience, threshold,
  // threshold_mode, cooldown, min_lrs, eps) as well as the progress (best, num_bad_epochs,
  // cooldown_counter, last_epoch, the last lrs), so the scheduler goes on as the saved one whatever
  // it was built with (a resumed fabric-train run too: the checkpoint's arguments win over its
  // config's). The optimizer's state restores the lrs. ValueError, changing nothing, for arguments
  // the constructor would refuse, a mode_worse that is not the mode's, or other groups.
  void load_state_dict(const PlateauState& s);

 private:
  Optimizer* optimizer_;
  PlateauOptions options_;
  std::vector<double> min_lrs_;  // one per group
  double mode_worse_;            // the worst metric: +inf (min mode) or -inf (max)
  double best_;
  int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
  std::vector<double> last_lr_;
};

}  // namespace fabric::optim
