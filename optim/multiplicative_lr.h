// PyTorch's MultiplicativeLR (torch 1.13): every step multiplies each group's lr by its lambda's
// factor for that step.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "optim/lr_scheduler.h"

namespace fabric::optim {

// lr *= lr_lambda(last_epoch) at each step after the first (chainable: it scales the groups'
// current lrs, so a manual lr change carries on). One lambda for every group, or one per group.
// Unlike LambdaLR's, the factor compounds: a constant 0.95 is ExponentialLR(0.95).
class MultiplicativeLR : public LRScheduler {
 public:
  using Lambda = std::function<double(int64_t)>;
  MultiplicativeLR(Optimizer& optimizer, Lambda lr_lambda);
  // ValueError unless there is one non-empty lambda per group.
  MultiplicativeLR(Optimizer& optimizer, std::vector<Lambda> lr_lambdas);

 protected:
  std::vector<double> get_lr() const override;

 private:
  std::vector<Lambda> lambdas_;
};

}  // namespace fabric::optim
