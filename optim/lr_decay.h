// PyTorch's decaying LR schedulers (torch.optim.lr_scheduler in 1.13): MultiStepLR, ExponentialLR,
// LinearLR, CosineAnnealingLR and PolynomialLR. Each step() uses PyTorch's chainable get_lr() (it
// scales the groups' current lrs, so a manual lr change carries on) with its exact arithmetic, so
// that the lr sequence matches torch's to the last bit; the closed form is what SequentialLR uses
// at a milestone.
#pragma once
#include <cstdint>
#include <vector>

#include "optim/lr_scheduler.h"

namespace fabric::optim {

// lr *= gamma^(times last_epoch appears in milestones) at each milestone (a repeated milestone
// decays that many times).
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);

 protected:
  std::vector<double> get_lr() const override;
  std::vector<double> closed_form_lr() const override;

 private:
  std::vector<int64_t> milestones_;  // sorted, repeats kept
  double gamma_;
};

// lr *= gamma every step.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);

 protected:
  std::vector<double> get_lr() const override;
  std::vector<double> closed_form_lr() const override;

 private:
  double gamma_;
};

// The lr's factor goes linearly from start_factor (step 0) to end_factor (step total_iters), then
// stays. start_factor in (0, 1] (PyTorch 1.13 takes 0 and then divides by zero at step 1),
// end_factor in [0, 1], total_iters >= 1.
class LinearLR : public LRScheduler {
 public:
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0,
           int64_t total_iters = 5);

 protected:
  std::vector<double> get_lr() const override;
  std::vector<double> closed_form_lr() const override;

 private:
  double start_factor_, end_factor_;
  int64_t total_iters_;
};

// SGDR's cosine annealing without restarts, from the base lr to eta_min over T_max steps, then back
// up (the cosine continues: lr returns to the base lr at 2 T_max). The recursive form
//   lr_t = eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi t / T_max)) / (1 + cos(pi (t-1) / T_max))
// equals the closed form only while nothing else changes the lr.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0);

 protected:
  std::vector<double> get_lr() const override;
  std::vector<double> closed_form_lr() const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

// lr = base_lr * (1 - min(step, total_iters) / total_iters)^power: to 0 at total_iters.
class PolynomialLR : public LRScheduler {
 public:
  PolynomialLR(Optimizer& optimizer, int64_t total_iters = 5, double power = 1.0);

 protected:
  std::vector<double> get_lr() const override;
  std::vector<double> closed_form_lr() const override;

 private:
  int64_t total_iters_;
  double power_;
};

}  // namespace fabric::optim
