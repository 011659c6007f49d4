// The learning-rate schedulers: PyTorch's stepping protocol and each schedule's formula.
#include "optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "tensor/factory.h"

// PyTorch computes each formula in Python, one rounding per operation: no fused multiply-adds,
// or the float64 lrs drift from torch's by an ulp.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

std::vector<std::pair<std::string, Tensor>> SchedulerState::flatten(const std::string& prefix) const {
  std::vector<std::pair<std::string, Tensor>> items = {
      {prefix + "last_epoch", scalar_tensor(last_epoch, {.dtype = DType::int64})},
      {prefix + "base_lrs", from_vector<double>(base_lrs, {static_cast<int64_t>(base_lrs.size())})},
      {prefix + "_last_lr", from_vector<double>(last_lr, {static_cast<int64_t>(last_lr.size())})}};
  for (const auto& [name, value] : extra)
    items.emplace_back(prefix + name, scalar_tensor(value, {.dtype = DType::float64}));
  for (size_t i = 0; i < schedulers.size(); ++i) {
    for (auto& item : schedulers[i].flatten(prefix + "_schedulers." + std::to_string(i) + ".")) {
      items.push_back(std::move(item));
    }
  }
  return items;
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
  const auto has = [&](const char* name) {
    return std::any_of(items.begin(), items.end(),
                       [&](const auto& item) { return item.first == prefix + name; });
  };
  SchedulerState s;
  // Composed schedulers first: torch's SequentialLR keeps no base_lrs and its ChainedScheduler no
  // last_epoch either; those come from the first composed scheduler then.
  const std::string nested = prefix + "_schedulers.";
  size_t count = 0;
  for (const auto& [k, t] : items) {
    if (k.rfind(nested, 0) != 0) continue;
    const std::string rest = k.substr(nested.size());
    const size_t dot = rest.find('.');
    const std::string index = rest.substr(0, dot);
    FABRIC_CHECK(
        dot != std::string::npos && !index.empty() &&
            index.find_first_not_of("0123456789") == std::string::npos && index.size() < 10,
        ValueError, "SchedulerState::unflatten: '", k, "' is not '", nested, "<index>.<key>'");
    count = std::max<size_t>(count, std::stoul(index) + 1);
  }
  for (size_t i = 0; i < count; ++i)
    s.schedulers.push_back(unflatten(items, nested + std::to_string(i) + "."));
  const bool composed = !s.schedulers.empty();
  if (composed && !has("last_epoch")) {
    s.last_epoch = s.schedulers.front().last_epoch;
  } else {
    const Tensor& e = find("last_epoch");
    FABRIC_CHECK(e.numel() == 1, ValueError, "SchedulerState::unflatten: '", prefix,
                 "last_epoch' must hold one number, got shape ", shape_str(e.sizes()));
    s.last_epoch = e.item<int64_t>();
  }
  s.base_lrs = composed && !has("base_lrs") ? s.schedulers.front().base_lrs
                                            : find("base_lrs").to_vector<double>();
  s.last_lr = find("_last_lr").to_vector<double>();
  // Extras: the other 0-dim keys directly under the prefix.
  for (const auto& [k, t] : items) {
    if (k.rfind(prefix, 0) != 0 || !t.defined() || t.dim() != 0) continue;
    const std::string name = k.substr(prefix.size());
    if (name == "last_epoch" || name.find('.') != std::string::npos) continue;
    s.extra.emplace_back(name, t.item<double>());
  }
  return s;
}

LRScheduler::LRScheduler(Optimizer& optimizer, const char* name)
    : optimizer_(&optimizer), name_(name) {}

void LRScheduler::initial_step() {
  base_lrs_.clear();
  for (size_t g = 0; g < optimizer_->num_param_groups(); ++g) {
    if (!optimizer_->initial_lr(g)) optimizer_->set_initial_lr(g, optimizer_->lr(g));
    base_lrs_.push_back(*optimizer_->initial_lr(g));
  }
  step();
}

std::vector<double> LRScheduler::current_lrs() const {
  std::vector<double> lrs;
  for (size_t g = 0; g < optimizer_->num_param_groups(); ++g) lrs.push_back(optimizer_->lr(g));
  return lrs;
}

void LRScheduler::set_lrs(const std::vector<double>& lrs) {
  const size_t groups = optimizer_->num_param_groups();
  for (size_t g = 0; g < std::min(lrs.size(), groups); ++g) optimizer_->set_lr(g, lrs[g]);
  last_lr_ = current_lrs();
}

void LRScheduler::step() {
  const int64_t before = last_epoch_;
  ++last_epoch_;
  try {
    set_lrs(get_lr());  // get_lr() either throws before changing anything or returns
  } catch (...) {
    last_epoch_ = before;
    throw;
  }
}

void LRScheduler::step_to(int64_t epoch) {
  const int64_t before = last_epoch_;
  last_epoch_ = epoch;
  try {
    set_lrs(closed_form_lr());
  } catch (...) {
    last_epoch_ = before;
    throw;
  }
}

bool LRScheduler::reapply() {
  if (!closed_form()) return false;
  set_lrs(get_lr());
  return true;
}

void LRScheduler::load_state_dict(const SchedulerState& s) {
  FABRIC_CHECK(s.schedulers.empty(), ValueError, name_, ".load_state_dict: the state holds ",
               s.schedulers.size(),
               " composed schedulers' states (a SequentialLR's or ChainedScheduler's), but ", name_,
               " composes none");
  load_own_state(s);
}

void LRScheduler::load_own_state(const SchedulerState& s) {
  // Fewer than the groups: a scheduler saved before groups were added (torch's base_lrs keep the
  // groups it was built for) restored into a run that re-added them first.
  const size_t groups = optimizer_->num_param_groups();
  FABRIC_CHECK(s.base_lrs.size() <= groups, ValueError, name_, ".load_state_dict: the state has ",
               s.base_lrs.size(), " base lrs but the optimizer has ", groups, " parameter groups");
  FABRIC_CHECK(s.last_lr.size() <= groups, ValueError, name_, ".load_state_dict: the state has ",
               s.last_lr.size(), " last lrs but the optimizer has ", groups, " parameter groups");
  // -1: a scheduler of a SequentialLR whose milestone has not come yet.
  FABRIC_CHECK(s.last_epoch >= -1, ValueError, name_, ".load_state_dict: last_epoch ", s.last_epoch,
               " is below -1");
  last_epoch_ = s.last_epoch;
  base_lrs_ = s.base_lrs;
  last_lr_ = s.last_lr;
}

// ---- LambdaLR ---------------------------------------------------------------------------------

LambdaLR::LambdaLR(Optimizer& optimizer, Lambda lr_lambda) : LRScheduler(optimizer, "LambdaLR") {
  FABRIC_CHECK(lr_lambda != nullptr, ValueError, "LambdaLR: the lr lambda is empty");
  lambdas_.assign(optimizer.num_param_groups(), lr_lambda);
  initial_step();
}

LambdaLR::LambdaLR(Optimizer& optimizer, std::vector<Lambda> lr_lambdas)
    : LRScheduler(optimizer, "LambdaLR"), lambdas_(std::move(lr_lambdas)) {
  FABRIC_CHECK(lambdas_.size() == optimizer.num_param_groups(), ValueError, "LambdaLR: expected ",
               optimizer.num_param_groups(), " lr lambdas (one per parameter group), got ",
               lambdas_.size());
  for (size_t g = 0; g < lambdas_.size(); ++g) {
    FABRIC_CHECK(lambdas_[g] != nullptr, ValueError, "LambdaLR: the lr lambda of group ", g, " is empty");
  }
  initial_step();
}

std::vector<double> LambdaLR::get_lr() const {
  std::vector<double> lrs;
  for (size_t g = 0; g < std::min(base_lrs_.size(), lambdas_.size()); ++g)
    lrs.push_back(base_lrs_[g] * lambdas_[g](last_epoch_));
  return lrs;
}

// ---- StepLR -----------------------------------------------------------------------------------

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
  FABRIC_CHECK(step_size >= 1, ValueError, "StepLR: step_size must be >= 1, got ", step_size);
  initial_step();
}

std::vector<double> StepLR::get_lr() const {
  std::vector<double> lrs = current_lrs();
  if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return lrs;
  for (double& lr : lrs) lr *= gamma_;
  return lrs;
}

std::vector<double> StepLR::closed_form_lr() const {
  std::vector<double> lrs;
  for (double base : base_lrs_) {
    lrs.push_back(base * std::pow(gamma_, static_cast<double>(last_epoch_ / step_size_)));
  }
  return lrs;
}

// ---- ConstantLR -------------------------------------------------------------------------------

ConstantLR::ConstantLR(Optimizer& optimizer, double factor, int64_t total_iters)
    : LRScheduler(optimizer, "ConstantLR"), factor_(factor), total_iters_(total_iters) {
  FABRIC_CHECK(factor >= 0 && factor <= 1, ValueError,
               "ConstantLR: the factor must be in [0, 1], got ", factor);
  FABRIC_CHECK(total_iters >= 0, ValueError, "ConstantLR: total_iters must be >= 0, got ", total_iters);
  initial_step();
}

std::vector<double> ConstantLR::get_lr() const {
  std::vector<double> lrs = current_lrs();
  if (last_epoch_ == 0) {
    for (double& lr : lrs) lr *= factor_;
  } else if (last_epoch_ == total_iters_) {
    FABRIC_CHECK(factor_ != 0, ValueError, "ConstantLR.step: step ", total_iters_,
                 " (total_iters) divides the lrs by the factor, which is 0 (torch raises "
                 "ZeroDivisionError here); a SequentialLR whose milestone is total_iters never "
                 "takes this step");
    for (double& lr : lrs) lr *= 1.0 / factor_;
  }
  return lrs;
}

std::vector<double> ConstantLR::closed_form_lr() const {
  std::vector<double> lrs;
  const double reached = last_epoch_ >= total_iters_ ? 1.0 : 0.0;
  for (double base : base_lrs_) lrs.push_back(base * (factor_ + reached * (1 - factor_)));
  return lrs;
}

// ---- LinearWarmup -----------------------------------------------------------------------------

LinearWarmup::LinearWarmup(Optimizer& optimizer, int64_t warmup_steps)
    : LRScheduler(optimizer, "LinearWarmup"), warmup_steps_(warmup_steps) {
  FABRIC_CHECK(warmup_steps >= 0, ValueError, "LinearWarmup: warmup_steps must be >= 0, got ", warmup_steps);
  initial_step();
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
  FABRIC_CHECK(max_steps >= 0, ValueError, "CosineWithWarmup: max_steps must be >= 0, got ",
               max_steps);
  FABRIC_CHECK(min_lr >= 0, ValueError, "CosineWithWarmup: min_lr must be >= 0, got ", min_lr);
  initial_step();
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
