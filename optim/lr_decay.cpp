// PyTorch's decaying LR schedulers: each get_lr() keeps torch's operation order, so that float64
// results equal torch's bit for bit.
#include "optim/lr_decay.h"

#include <algorithm>
#include <cmath>
#include <numbers>

// PyTorch computes each formula in Python, one rounding per operation: no fused multiply-adds,
// or the float64 lrs drift from torch's by an ulp.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {
namespace {

// Every group's lr times `factor`.
std::vector<double> scaled(std::vector<double> lrs, double factor) {
  for (double& lr : lrs) lr *= factor;
  return lrs;
}

// Python's a % b for b > 0 (never negative).
int64_t python_mod(int64_t a, int64_t b) { return ((a % b) + b) % b; }

}  // namespace

// ---- MultiStepLR ------------------------------------------------------------------------------

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(optimizer, "MultiStepLR"), milestones_(std::move(milestones)), gamma_(gamma) {
  std::sort(milestones_.begin(), milestones_.end());
  initial_step();
}

std::vector<double> MultiStepLR::get_lr() const {
  const auto hits = std::count(milestones_.begin(), milestones_.end(), last_epoch_);
  if (hits == 0) return current_lrs();
  return scaled(current_lrs(), std::pow(gamma_, static_cast<double>(hits)));
}

std::vector<double> MultiStepLR::closed_form_lr() const {
  const auto passed =
      std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) - milestones_.begin();
  return scaled(base_lrs_, std::pow(gamma_, static_cast<double>(passed)));
}

// ---- ExponentialLR ----------------------------------------------------------------------------

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LRScheduler(optimizer, "ExponentialLR"), gamma_(gamma) {
  initial_step();
}

std::vector<double> ExponentialLR::get_lr() const {
  if (last_epoch_ == 0) return current_lrs();
  return scaled(current_lrs(), gamma_);
}

std::vector<double> ExponentialLR::closed_form_lr() const {
  return scaled(base_lrs_, std::pow(gamma_, static_cast<double>(last_epoch_)));
}

// ---- LinearLR ---------------------------------------------------------------------------------

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor,
                   int64_t total_iters)
    : LRScheduler(optimizer, "LinearLR"),
      start_factor_(start_factor),
      end_factor_(end_factor),
      total_iters_(total_iters) {
  FABRIC_CHECK(
      start_factor > 0 && start_factor <= 1, ValueError,
      "LinearLR: start_factor (the starting multiplicative factor) must be in (0, 1], got ",
      start_factor);
  FABRIC_CHECK(end_factor >= 0 && end_factor <= 1, ValueError,
               "LinearLR: end_factor (the ending multiplicative factor) must be in [0, 1], got ",
               end_factor);
  FABRIC_CHECK(total_iters >= 1, ValueError, "LinearLR: total_iters must be >= 1, got ",
               total_iters);
  initial_step();
}

std::vector<double> LinearLR::get_lr() const {
  if (last_epoch_ == 0) return scaled(current_lrs(), start_factor_);
  if (last_epoch_ > total_iters_) return current_lrs();
  // The ratio of this step's factor to the last one's, in torch's order.
  const double delta = end_factor_ - start_factor_;
  const double factor = 1. + delta / (static_cast<double>(total_iters_) * start_factor_ +
                                      static_cast<double>(last_epoch_ - 1) * delta);
  return scaled(current_lrs(), factor);
}

std::vector<double> LinearLR::closed_form_lr() const {
  std::vector<double> lrs;
  const double done = static_cast<double>(std::min(total_iters_, last_epoch_));
  for (double base : base_lrs_) {
    lrs.push_back(base * (start_factor_ + (end_factor_ - start_factor_) * done /
                                              static_cast<double>(total_iters_)));
  }
  return lrs;
}

// ---- CosineAnnealingLR ------------------------------------------------------------------------

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min)
    : LRScheduler(optimizer, "CosineAnnealingLR"), t_max_(T_max), eta_min_(eta_min) {
  // PyTorch takes 0 and divides by it at the first step.
  FABRIC_CHECK(T_max >= 1, ValueError,
               "CosineAnnealingLR: T_max (the steps to eta_min) must be >= 1, got ", T_max);
  initial_step();
}

std::vector<double> CosineAnnealingLR::get_lr() const {
  constexpr double pi = std::numbers::pi;
  const double t_max = static_cast<double>(t_max_);
  const auto e = static_cast<double>(last_epoch_);
  std::vector<double> lrs = current_lrs();
  if (last_epoch_ == 0) return lrs;
  // (PyTorch's branch for a first step() with last_epoch > 0 needs a scheduler built with a
  // last_epoch argument, which these constructors do not take.)
  if (python_mod(last_epoch_ - 1 - t_max_, 2 * t_max_) == 0) {
    // At the bottom of the cosine (T_max + 1, 3 T_max + 1, ...) the ratio below is 0 / 0: torch
    // steps up by the cosine's first increment instead, zipping base_lrs with the groups (a group
    // added after construction keeps its lr at this step).
    lrs.resize(std::min(lrs.size(), base_lrs_.size()));
    for (size_t g = 0; g < lrs.size(); ++g) {
      lrs[g] = lrs[g] + (base_lrs_[g] - eta_min_) * (1 - std::cos(pi / t_max)) / 2;
    }
    return lrs;
  }
  for (double& lr : lrs) {
    lr = (1 + std::cos(pi * e / t_max)) / (1 + std::cos(pi * (e - 1) / t_max)) * (lr - eta_min_) +
         eta_min_;
  }
  return lrs;
}

std::vector<double> CosineAnnealingLR::closed_form_lr() const {
  std::vector<double> lrs;
  const double e = static_cast<double>(last_epoch_), t_max = static_cast<double>(t_max_);
  for (double base : base_lrs_) {
    lrs.push_back(eta_min_ + (base - eta_min_) * (1 + std::cos(std::numbers::pi * e / t_max)) / 2);
  }
  return lrs;
}

// ---- PolynomialLR -----------------------------------------------------------------------------

PolynomialLR::PolynomialLR(Optimizer& optimizer, int64_t total_iters, double power)
    : LRScheduler(optimizer, "PolynomialLR"), total_iters_(total_iters), power_(power) {
  FABRIC_CHECK(total_iters >= 1, ValueError, "PolynomialLR: total_iters must be >= 1, got ",
               total_iters);
  initial_step();
}

std::vector<double> PolynomialLR::get_lr() const {
  if (last_epoch_ == 0 || last_epoch_ > total_iters_) return current_lrs();
  const double e = static_cast<double>(last_epoch_), total = static_cast<double>(total_iters_);
  const double decay_factor = std::pow((1.0 - e / total) / (1.0 - (e - 1) / total), power_);
  return scaled(current_lrs(), decay_factor);
}

std::vector<double> PolynomialLR::closed_form_lr() const {
  std::vector<double> lrs;
  const double done = static_cast<double>(std::min(total_iters_, last_epoch_));
  for (double base : base_lrs_)
    lrs.push_back(base * std::pow(1.0 - done / static_cast<double>(total_iters_), power_));
  return lrs;
}

}  // namespace fabric::optim
