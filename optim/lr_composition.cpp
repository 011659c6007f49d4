// SequentialLR and ChainedScheduler: PyTorch's construction, stepping and state of composed
// schedulers.
#include "optim/lr_composition.h"

#include <algorithm>
#include <string>

namespace fabric::optim {
namespace {

void check_present(const std::vector<std::shared_ptr<LRScheduler>>& schedulers, const char* who) {
  for (size_t i = 0; i < schedulers.size(); ++i) {
    FABRIC_CHECK(schedulers[i] != nullptr, ValueError, who, ": scheduler ", i, " is null");
  }
}

// "[5, 3]"
std::string listed(const std::vector<int64_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "]";
}

Optimizer& first_optimizer(const std::vector<std::shared_ptr<LRScheduler>>& schedulers) {
  FABRIC_CHECK(!schedulers.empty(), ValueError,
               "ChainedScheduler: expected at least one scheduler, got none");
  check_present(schedulers, "ChainedScheduler");
  return schedulers[0]->optimizer();
}

}  // namespace

// ---- ComposedScheduler ------------------------------------------------------------------------

// The composed states after the composite's own fields.
SchedulerState ComposedScheduler::state_dict() const {
  SchedulerState own{last_epoch_, base_lrs_, last_lr_, {}};
  for (const auto& s : schedulers_) own.schedulers.push_back(s->state_dict());
  return own;
}

void ComposedScheduler::load_state_dict(const SchedulerState& s) {
  const size_t expected = schedulers_.size();
  FABRIC_CHECK(s.schedulers.size() == expected, ValueError, name_,
               ".load_state_dict: the state holds ", s.schedulers.size(),
               " schedulers' states but this ", name_, " composes ", expected);
  load_own_state(s);
  for (size_t i = 0; i < schedulers_.size(); ++i) schedulers_[i]->load_state_dict(s.schedulers[i]);
}

// ---- SequentialLR -----------------------------------------------------------------------------

SequentialLR::SequentialLR(Optimizer& optimizer,
                           std::vector<std::shared_ptr<LRScheduler>> schedulers,
                           std::vector<int64_t> milestones)
    : ComposedScheduler(optimizer, "SequentialLR", std::move(schedulers)),
      milestones_(std::move(milestones)) {
  check_present(schedulers_, "SequentialLR");
  for (size_t i = 0; i < schedulers_.size(); ++i) {
    FABRIC_CHECK(&schedulers_[i]->optimizer() == &optimizer, ValueError,
                 "SequentialLR expects all schedulers to belong to the same optimizer, but got "
                 "schedulers at index ",
                 i, " to be different than the optimizer passed in");
  }
  FABRIC_CHECK(!schedulers_.empty() && milestones_.size() == schedulers_.size() - 1, ValueError,
               "SequentialLR expects number of schedulers provided to be one more than the number "
               "of milestone "
               "points, but got number of schedulers ",
               schedulers_.size(), " and the number of milestones to be equal to ",
               milestones_.size());
  FABRIC_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()), ValueError,
               "SequentialLR: the milestones must be non-decreasing, got ", listed(milestones_));
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) {
    const std::optional<double> initial = optimizer.initial_lr(g);
    FABRIC_CHECK(initial.has_value(), ValueError, "SequentialLR: parameter group ", g,
                 " has no initial lr (it was added after the schedulers were built)");
    optimizer.set_lr(g, *initial);
  }
  for (const auto& s : schedulers_) s->last_epoch_ -= 1;
  schedulers_[0]->initial_step_again();
  last_epoch_ = 0;
  base_lrs_ = schedulers_[0]->base_lrs();
  last_lr_ = schedulers_[0]->get_last_lr();
}

void SequentialLR::step() {
  const int64_t epoch = last_epoch_ + 1;
  const size_t idx =
      std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin();
  LRScheduler& s = *schedulers_[idx];
  // A composed step that throws has changed nothing, so neither has this one.
  if (idx > 0 && milestones_[idx - 1] == epoch) {
    s.step_to(0);
  } else {
    s.step();
  }
  last_epoch_ = epoch;
  last_lr_ = s.get_last_lr();
}

// ---- ChainedScheduler -------------------------------------------------------------------------

ChainedScheduler::ChainedScheduler(std::vector<std::shared_ptr<LRScheduler>> schedulers)
    : ComposedScheduler(first_optimizer(schedulers), "ChainedScheduler", std::move(schedulers)) {
  for (size_t i = 1; i < schedulers_.size(); ++i) {
    FABRIC_CHECK(&schedulers_[i]->optimizer() == optimizer_, ValueError,
                 "ChainedScheduler expects all schedulers to belong to the same optimizer, but got "
                 "schedulers at "
                 "index 0 and ",
                 i, " to be different");
  }
  last_epoch_ = 0;
  base_lrs_ = schedulers_[0]->base_lrs();
  last_lr_ = current_lrs();
}

void ChainedScheduler::step() {
  // When a later scheduler throws, the earlier ones' steps are undone: their states and the lrs
  // come back (a momentum a cycling scheduler wrote stays).
  const std::vector<double> lrs = current_lrs();
  std::vector<SchedulerState> states;
  for (const auto& s : schedulers_) states.push_back(s->state_dict());
  for (size_t i = 0; i < schedulers_.size(); ++i) {
    try {
      schedulers_[i]->step();
    } catch (...) {
      for (size_t j = 0; j < i; ++j) schedulers_[j]->load_state_dict(states[j]);
      for (size_t g = 0; g < lrs.size(); ++g) optimizer_->set_lr(g, lrs[g]);
      throw;
    }
  }
  ++last_epoch_;
  last_lr_ = current_lrs();
}

}  // namespace fabric::optim
