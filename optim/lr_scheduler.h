// Learning-rate schedulers with PyTorch's semantics: constructing one sets the groups' initial lr
// (last_epoch becomes 0), each step() advances last_epoch by one and sets the groups' lrs.
// A scheduler holds a reference to its optimizer, which must outlive it.
//
// Groups added to the optimizer after the scheduler was built (Lightning's BaseFinetuning unfreezes
// layers into a new group) are scheduled as torch 1.13 schedules them: a chainable step scales
// every group's current lr, the new ones too, while a schedule that zips its per-group lists
// (base_lrs, lambdas, max_lrs) with the groups leaves the extra groups' lrs alone. get_last_lr()
// always holds every group's lr; base_lrs keep the groups the scheduler was built for.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "optim/optimizer.h"

namespace fabric::optim {

struct SchedulerState {
  int64_t last_epoch = 0;
  std::vector<double> base_lrs;  // one per parameter group
  std::vector<double> last_lr;
  // SequentialLR, ChainedScheduler: the composed schedulers' states, in order (empty otherwise).
  std::vector<SchedulerState> schedulers;
  // A scheduler's own progress beyond last_epoch, by torch's attribute name
  // (CosineAnnealingWarmRestarts: T_i and T_cur, which a fractional step(epoch) leaves off
  // last_epoch's values).
  std::vector<std::pair<std::string, double>> extra;

  // Keys under `prefix`: "last_epoch" (0-dim int64), "base_lrs" and "_last_lr" (1-D float64), each
  // extra (0-dim float64), and each composed scheduler's keys under "<prefix>_schedulers.<i>.".
  std::vector<std::pair<std::string, Tensor>> flatten(const std::string& prefix = "") const;
  // Keys not starting with `prefix` are ignored; a missing key raises ValueError. Any other
  // one-number key directly under `prefix` is an extra.
  static SchedulerState unflatten(const std::vector<std::pair<std::string, Tensor>>& items,
                                  const std::string& prefix = "");
};

class SequentialLR;

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;

  // last_epoch += 1, then the groups' lrs = the schedule's values for last_epoch. When it throws
  // (OneCycleLR past its total steps), nothing has changed.
  virtual void step();
  // Every group's lr after the last step (or construction), one per group.
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  // The groups' initial lrs (Optimizer::initial_lr: the lrs when the first scheduler was built on
  // the optimizer): what closed-form schedules scale.
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  Optimizer& optimizer() const { return *optimizer_; }
  const char* name() const { return name_; }

  virtual SchedulerState state_dict() const { return {last_epoch_, base_lrs_, last_lr_, {}, {}}; }
  // Restores last_epoch, base_lrs and the last lrs (the optimizer's own state restores its group
  // lrs, as in PyTorch). ValueError when the state has more base lrs or last lrs than the
  // optimizer has groups (fewer: groups added after the saving scheduler was built).
  virtual void load_state_dict(const SchedulerState& s);
  // A closed-form schedule (its lr a function of last_epoch alone) sets every group's lr to its
  // value for last_epoch and returns true; a chainable one (it scales the groups' current lrs)
  // changes nothing and returns false. For a schedule loaded into a different shape than it was
  // saved with (fabric-train resumed with a larger max_steps: the cosine's length): the restored
  // lrs belong to the old shape. With the same shape it sets exactly the restored values.
  virtual bool reapply();

 protected:
  // Records nothing: a subclass checks its arguments, then calls initial_step(), as PyTorch's
  // constructors check theirs before touching the optimizer.
  LRScheduler(Optimizer& optimizer, const char* name);
  // PyTorch's _LRScheduler.__init__ with last_epoch -1: each group's initial_lr defaults to its lr,
  // base_lrs are the initial lrs, then the first step (last_epoch 0).
  void initial_step();
  // The lrs for last_epoch_, for the first groups (as many as it returns: torch's zip); chainable
  // schedules read the groups' current lrs.
  virtual std::vector<double> get_lr() const = 0;
  // PyTorch's _get_closed_form_lr (what step(epoch) uses, as SequentialLR does at a milestone);
  // get_lr() for schedules that have none.
  virtual std::vector<double> closed_form_lr() const { return get_lr(); }
  virtual bool closed_form() const { return false; }
  std::vector<double> current_lrs() const;
  // Sets the first lrs.size() groups' lrs (torch zips the values with the groups); last_lr_
  // becomes every group's lr.
  void set_lrs(const std::vector<double>& lrs);
  // load_state_dict's checks and restore of this scheduler's own fields (not composed ones').
  void load_own_state(const SchedulerState& s);
  // PyTorch's step(epoch) (deprecated there, used by SequentialLR at a milestone): last_epoch =
  // epoch, and the closed form's lrs. Virtual for schedules with progress of their own to reset.
  virtual void step_to(int64_t epoch);
  // torch's _initial_step() on a built scheduler (SequentialLR's first one): its step count from
  // the start again (SWALR's annealing reads it), then a step.
  virtual void initial_step_again() { step(); }

  Optimizer* optimizer_;
  const char* name_;
  std::vector<double> base_lrs_;
  std::vector<double> last_lr_;
  int64_t last_epoch_ = -1;

 private:
  friend class SequentialLR;
};

// lr = base_lr * lr_lambda(last_epoch): one lambda for every group, or one per group.
class LambdaLR : public LRScheduler {
 public:
  using Lambda = std::function<double(int64_t)>;
  LambdaLR(Optimizer& optimizer, Lambda lr_lambda);
  LambdaLR(Optimizer& optimizer, std::vector<Lambda> lr_lambdas);

 protected:
  std::vector<double> get_lr() const override;
  bool closed_form() const override { return true; }

 private:
  std::vector<Lambda> lambdas_;
};

// Multiplies the lr by gamma every step_size steps (PyTorch's chainable form).
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 protected:
  std::vector<double> get_lr() const override;
  std::vector<double> closed_form_lr() const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr = base_lr * factor until total_iters steps, then base_lr (PyTorch's ConstantLR; factor = 1
// keeps the lr constant). factor in [0, 1]; with factor 0 the chainable step at total_iters
// divides by it (torch's ZeroDivisionError): ValueError there, unless a SequentialLR moves on at
// that step (it never takes it).
class ConstantLR : public LRScheduler {
 public:
  ConstantLR(Optimizer& optimizer, double factor = 1.0 / 3, int64_t total_iters = 5);

 protected:
  std::vector<double> get_lr() const override;
  std::vector<double> closed_form_lr() const override;

 private:
  double factor_;
  int64_t total_iters_;
};

// lr = base_lr * min(1, step / warmup_steps): 0 at step 0, base_lr from warmup_steps on.
class LinearWarmup : public LRScheduler {
 public:
  LinearWarmup(Optimizer& optimizer, int64_t warmup_steps);

 protected:
  std::vector<double> get_lr() const override;
  bool closed_form() const override { return true; }

 private:
  int64_t warmup_steps_;
};

// Linear warm-up from 0 to base_lr over warmup_steps, then cosine decay to min_lr at max_steps,
// then min_lr:
//   step < warmup:           base_lr * step / warmup_steps
//   warmup <= step < max:    min_lr + (base_lr - min_lr) * (1 + cos(pi * (step - warmup) / (max -
//   warmup))) / 2 step >= max_steps:       min_lr
// A warm-up longer than max_steps keeps its length (the run ends inside it), as transformers' does.
class CosineWithWarmup : public LRScheduler {
 public:
  CosineWithWarmup(Optimizer& optimizer, int64_t warmup_steps, int64_t max_steps, double min_lr = 0);

 protected:
  std::vector<double> get_lr() const override;
  bool closed_form() const override { return true; }

 private:
  int64_t warmup_steps_, max_steps_;
  double min_lr_;
};

}  // namespace fabric::optim
