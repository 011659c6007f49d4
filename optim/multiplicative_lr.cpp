// MultiplicativeLR: torch 1.13's argument checks and get_lr().
#include "optim/multiplicative_lr.h"

#include <algorithm>

// PyTorch computes each formula in Python, one rounding per operation: no fused multiply-adds.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

MultiplicativeLR::MultiplicativeLR(Optimizer& optimizer, Lambda lr_lambda)
    : LRScheduler(optimizer, "MultiplicativeLR") {
  FABRIC_CHECK(lr_lambda != nullptr, ValueError, "MultiplicativeLR: the lr lambda is empty");
  lambdas_.assign(optimizer.num_param_groups(), lr_lambda);
  initial_step();
}

MultiplicativeLR::MultiplicativeLR(Optimizer& optimizer, std::vector<Lambda> lr_lambdas)
    : LRScheduler(optimizer, "MultiplicativeLR"), lambdas_(std::move(lr_lambdas)) {
  FABRIC_CHECK(lambdas_.size() == optimizer.num_param_groups(), ValueError,
               "MultiplicativeLR: expected ", optimizer.num_param_groups(),
               " lr_lambdas (one per parameter group), but got ", lambdas_.size());
  for (size_t g = 0; g < lambdas_.size(); ++g) {
    FABRIC_CHECK(lambdas_[g] != nullptr, ValueError, "MultiplicativeLR: the lr lambda of group ", g,
                 " is empty");
  }
  initial_step();
}

std::vector<double> MultiplicativeLR::get_lr() const {
  std::vector<double> lrs = current_lrs();
  if (last_epoch_ <= 0) return lrs;
  // torch zips the lambdas with the groups: groups added after construction keep their lr.
  lrs.resize(std::min(lrs.size(), lambdas_.size()));
  for (size_t g = 0; g < lrs.size(); ++g) lrs[g] = lrs[g] * lambdas_[g](last_epoch_);
  return lrs;
}

}  // namespace fabric::optim
