// Stochastic Weight Averaging as torch.optim.swa_utils (torch 1.13) gives it: AveragedModel keeps a
// running average of a model's weights, SWALR anneals every group's lr to a fixed SWA lr, and
// update_bn recomputes BatchNorm statistics for the averaged weights with one pass over the data.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "optim/lr_scheduler.h"

namespace fabric::optim {

// avg_fn(averaged, current, num_averaged): the new averaged value of one parameter (or buffer)
// after num_averaged earlier models were averaged into it (torch's avg_fn signature).
using AvgFn =
    std::function<Tensor(const Tensor& averaged, const Tensor& current, int64_t num_averaged)>;

// torch's default: the equal running average, averaged + (current - averaged) / (n + 1). An
// integer tensor (a num_batches_tracked buffer under use_buffers) is averaged in float64 and, as in
// torch, truncated when copied back.
Tensor equal_average(const Tensor& averaged, const Tensor& current, int64_t num_averaged);
// The exponential moving average torch 1.13 users write as their own avg_fn:
// decay * averaged + (1 - decay) * current. ValueError unless 0 <= decay <= 1.
AvgFn ema_avg_fn(double decay);

// torch's AveragedModel: a copy of `model` registered as the child "module" and the int64 0-dim
// buffer "n_averaged", so state_dict holds "n_averaged" and "module.<key>" as torch's does.
// A Module cannot be deep-copied here (registration stores handles by identity), so the copy is
// built by `make_copy` (a factory returning a fresh module of the same architecture, e.g.
// [] { return nn::make<MyNet>(cfg); }) and then given what torch's deepcopy keeps: every
// parameter's and buffer's values, dtype and device (non-persistent buffers included; a model of
// mixed dtypes stays mixed), every parameter's requires_grad and every submodule's training flag
// (an eval-mode BatchNorm in a training model stays in eval mode). That is the whole deepcopy for
// every module whose state is its parameters, buffers and training flags. ValueError (listing the
// keys) when the copy's state_dict keys or shapes are not the model's.
class AveragedModel : public nn::Module {
 public:
  using Factory = std::function<std::shared_ptr<nn::Module>()>;
  AveragedModel(const nn::Module& model, const Factory& make_copy, AvgFn avg_fn = {},
                bool use_buffers = false);

  // The first call copies the model's parameters (and, with use_buffers, its buffers); later calls
  // set each to avg_fn(averaged, current, n_averaged). n_averaged then counts one more. Without
  // use_buffers the copy's buffers keep the values they were copied with, as in torch 1.13
  // (update_bn recomputes BatchNorm's). ValueError when the model's tensors do not match the
  // copy's.
  void update_parameters(const nn::Module& model);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AveragedModel"; }

  nn::Module& module() const { return *module_; }
  int64_t n_averaged() const;
  bool use_buffers() const { return use_buffers_; }

 private:
  std::shared_ptr<nn::Module> module_;
  Tensor n_averaged_;
  AvgFn avg_fn_;
  bool use_buffers_;
};

// torch's update_bn: every BatchNorm's running statistics start over (mean 0, var 1, no batches
// tracked) and are recomputed as the cumulative average (momentum None) over one training-mode
// pass of `model` over `batches`, without recording for autograd; the momenta are restored
// afterwards and, as torch's model.train(was_training), the model's mode is set on every module
// (a submodule in the other mode does not keep it). A model without BatchNorm is left untouched.
// A BatchNorm with track_running_stats=false has no statistics to recompute: torch 1.13 raises
// TypeError (zeros_like(None)), here ValueError naming the layer, before anything changes (torch
// has reset the BatchNorms before it by then).
void update_bn(const std::vector<Tensor>& batches, nn::Module& model);

// torch's SWALR: anneals each group's lr from its current value to its swa_lr over anneal_epochs
// steps ("cos": alpha = (1 - cos(pi t)) / 2, "linear": alpha = t, t = step / anneal_epochs), then
// holds swa_lr. Chainable, like torch's: each step recovers the lr the annealing started from out
// of the groups' current lrs, so an lr changed by hand carries on. swa_lrs holds one value for
// every group or one per group. ValueError for another count, a strategy other than "cos" or
// "linear", or anneal_epochs < 0. As torch's, it records each group's swa_lr in the optimizer's
// param group (optimizer.state_dict()'s param_groups.<g>.swa_lr) and anneals towards the value
// found there, so an optimizer state loaded afterwards brings its own swa_lr.
class SWALR : public LRScheduler {
 public:
  SWALR(Optimizer& optimizer, std::vector<double> swa_lrs, int64_t anneal_epochs = 10,
        const std::string& anneal_strategy = "cos");
  SWALR(Optimizer& optimizer, double swa_lr, int64_t anneal_epochs = 10,
        const std::string& anneal_strategy = "cos")
      : SWALR(optimizer, std::vector<double>{swa_lr}, anneal_epochs, anneal_strategy) {}

  // Each group's swa_lr: the optimizer's param_groups.<g>.swa_lr (the constructor's value, or
  // one an optimizer load brought); the constructor's where a load removed it (a state saved
  // before the scheduler existed, where torch raises KeyError). KeyError for a group added
  // after the scheduler was built (torch's too).
  std::vector<double> swa_lrs() const;

  void step() override;
  // The state holds torch's `_step_count` as an extra (a state without it: last_epoch + 1).
  SchedulerState state_dict() const override;
  void load_state_dict(const SchedulerState& s) override;

 protected:
  std::vector<double> get_lr() const override;
  void step_to(int64_t epoch) override;
  void initial_step_again() override;

 private:
  double anneal(double t) const;

  std::vector<double> swa_lrs_;  // the constructor's, one per group (see swa_lrs())
  int64_t anneal_epochs_;
  bool cosine_;
  // torch's _step_count: every step, the construction's and SequentialLR's step(0) at a milestone
  // included, which does not rewind it as it does last_epoch. The annealing counts from it.
  int64_t step_count_ = 0;
};

}  // namespace fabric::optim
