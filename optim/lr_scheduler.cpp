// The learning-rate schedulers: PyTorch's stepping protocol and each schedule's formula.
#include "optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "tensor/factory.h"

namespace fabric::optim {

std::vector<std::pair<std::string, Tensor>> SchedulerState::flatten(const std::string& prefix) const {
  return {{prefix + "last_epoch", scalar_tensor(last_epoch, {.dtype = DType::int64})},
          {prefix + "base_lrs", from_vector<double>(base_lrs, {static_cast<int64_t>(base_lrs.size())})},
          {prefix + "_last_lr", from_vector<double>(last_lr, {static_cast<int64_t>(last_lr.size())})}};
}

SchedulerState SchedulerState::unflatten(const std::vector<std::pair<std::string, Tensor>>& items,
                                         const std::string& prefix) {
  auto find = [&](const char* name) -> const Tensor& {
    for (const auto& [k, t] : items) {
      if (k == prefix + name) {
        FABRIC_CHECK(t.defined(), ValueError, "SchedulerState::unflatten: '", k, "' is undefined");
        return t;
      }
    }
    throw ValueError(detail::cat("SchedulerState::unflatten: key '", prefix, name, "' is missing"));
  };
  SchedulerState s;
  const Tensor& e = find("last_epoch");
  FABRIC_CHECK(e.numel() == 1, ValueError, "SchedulerState::unflatten: '", prefix,
               "last_epoch' must hold one number, got shape ", shape_str(e.sizes()));
  s.last_epoch = e.item<int64_t>();
  s.base_lrs = find("base_lrs").to_vector<double>();
  s.last_lr = find("_last_lr").to_vector<double>();
  return s;
}

LRScheduler::LRScheduler(Optimizer& optimizer, const char* name) : optimizer_(&optimizer), name_(name) {
  base_lrs_ = current_lrs();
}

std::vector<double> LRScheduler::current_lrs() const {
  std::vector<double> lrs;
  for (size_t g = 0; g < optimizer_->num_param_groups(); ++g) lrs.push_back(optimizer_->lr(g));
  return lrs;
}

void LRScheduler::step() {
  FABRIC_CHECK(optimizer_->num_param_groups() == base_lrs_.size(), ValueError, name_, ".step: the optimizer has ",
               optimizer_->num_param_groups(), " parameter groups but the scheduler was built for ", base_lrs_.size());
  ++last_epoch_;
  last_lr_ = get_lr();
  for (size_t g = 0; g < last_lr_.size(); ++g) optimizer_->set_lr(g, last_lr_[g]);
}

bool LRScheduler::reapply() {
  if (!closed_form()) return false;
  last_lr_ = get_lr();
  for (size_t g = 0; g < last_lr_.size(); ++g) optimizer_->set_lr(g, last_lr_[g]);
  return true;
}

void LRScheduler::load_state_dict(const SchedulerState& s) {
  const size_t groups = optimizer_->num_param_groups();
  FABRIC_CHECK(s.base_lrs.size() == groups, ValueError, name_, ".load_state_dict: the state has ",
               s.base_lrs.size(), " base lrs but the optimizer has ", groups, " parameter groups");
  FABRIC_CHECK(s.last_lr.size() == groups, ValueError, name_, ".load_state_dict: the state has ", s.last_lr.size(),
               " last lrs but the optimizer has ", groups, " parameter groups");
  FABRIC_CHECK(s.last_epoch >= 0, ValueError, name_, ".load_state_dict: last_epoch ", s.last_epoch,
               " is negative");
  last_epoch_ = s.last_epoch;
  base_lrs_ = s.base_lrs;
  last_lr_ = s.last_lr;
}

// ---- LambdaLR ---------------------------------------------------------------------------------

LambdaLR::LambdaLR(Optimizer& optimizer, Lambda lr_lambda) : LRScheduler(optimizer, "LambdaLR") {
  FABRIC_CHECK(lr_lambda != nullptr, ValueError, "LambdaLR: the lr lambda is empty");
  lambdas_.assign(base_lrs_.size(), lr_lambda);
  step();
}

LambdaLR::LambdaLR(Optimizer& optimizer, std::vector<Lambda> lr_lambdas)
    : LRScheduler(optimizer, "LambdaLR"), lambdas_(std::move(lr_lambdas)) {
  FABRIC_CHECK(lambdas_.size() == base_lrs_.size(), ValueError, "LambdaLR: expected ", base_lrs_.size(),
               " lr lambdas (one per parameter group), got ", lambdas_.size());
  for (size_t g = 0; g < lambdas_.size(); ++g) {
    FABRIC_CHECK(lambdas_[g] != nullptr, ValueError, "LambdaLR: the lr lambda of group ", g, " is empty");
  }
  step();
}

std::vector<double> LambdaLR::get_lr() const {
  std::vector<double> lrs;
  for (size_t g = 0; g < base_lrs_.size(); ++g) lrs.push_back(base_lrs_[g] * lambdas_[g](last_epoch_));
  return lrs;
}

// ---- StepLR -----------------------------------------------------------------------------------

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
  FABRIC_CHECK(step_size >= 1, ValueError, "StepLR: step_size must be >= 1, got ", step_size);
  step();
}

std::vector<double> StepLR::get_lr() const {
  std::vector<double> lrs = current_lrs();
  if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return lrs;
  for (double& lr : lrs) lr *= gamma_;
  return lrs;
}

// ---- ConstantLR -------------------------------------------------------------------------------

ConstantLR::ConstantLR(Optimizer& optimizer, double factor, int64_t total_iters)
    : LRScheduler(optimizer, "ConstantLR"), factor_(factor), total_iters_(total_iters) {
  FABRIC_CHECK(factor > 0 && factor <= 1, ValueError, "ConstantLR: the factor must be in (0, 1], got ", factor);
  FABRIC_CHECK(total_iters >= 0, ValueError, "ConstantLR: total_iters must be >= 0, got ", total_iters);
  step();
}

std::vector<double> ConstantLR::get_lr() const {
  std::vector<double> lrs = current_lrs();
  if (last_epoch_ == 0) {
    for (double& lr : lrs) lr *= factor_;
  } else if (last_epoch_ == total_iters_) {
    for (double& lr : lrs) lr *= 1.0 / factor_;
  }
  return lrs;
}

// ---- LinearWarmup -----------------------------------------------------------------------------

LinearWarmup::LinearWarmup(Optimizer& optimizer, int64_t warmup_steps)
    : LRScheduler(optimizer, "LinearWarmup"), warmup_steps_(warmup_steps) {
  FABRIC_CHECK(warmup_steps >= 0, ValueError, "LinearWarmup: warmup_steps must be >= 0, got ", warmup_steps);
  step();
}

std::vector<double> LinearWarmup::get_lr() const {
  std::vector<double> lrs = base_lrs_;
  if (last_epoch_ < warmup_steps_) {
    for (double& lr : lrs) lr *= static_cast<double>(last_epoch_) / static_cast<double>(warmup_steps_);
  }
  return lrs;
}

// ---- CosineWithWarmup -------------------------------------------------------------------------

CosineWithWarmup::CosineWithWarmup(Optimizer& optimizer, int64_t warmup_steps, int64_t max_steps, double min_lr)
    : LRScheduler(optimizer, "CosineWithWarmup"), warmup_steps_(warmup_steps), max_steps_(max_steps),
      min_lr_(min_lr) {
  FABRIC_CHECK(warmup_steps >= 0, ValueError, "CosineWithWarmup: warmup_steps must be >= 0, got ", warmup_steps);
  FABRIC_CHECK(max_steps >= warmup_steps, ValueError, "CosineWithWarmup: max_steps (", max_steps,
               ") must be >= warmup_steps (", warmup_steps, ")");
  FABRIC_CHECK(min_lr >= 0, ValueError, "CosineWithWarmup: min_lr must be >= 0, got ", min_lr);
  step();
}

std::vector<double> CosineWithWarmup::get_lr() const {
  std::vector<double> lrs;
  const int64_t e = last_epoch_;
  for (double base : base_lrs_) {
    if (e < warmup_steps_) {
      lrs.push_back(base * (static_cast<double>(e) / static_cast<double>(warmup_steps_)));
    } else if (e >= max_steps_) {
      lrs.push_back(min_lr_);
    } else {
      const double progress = static_cast<double>(e - warmup_steps_) / static_cast<double>(max_steps_ - warmup_steps_);
      lrs.push_back(min_lr_ + (base - min_lr_) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
    }
  }
  return lrs;
}

}  // namespace fabric::optim
