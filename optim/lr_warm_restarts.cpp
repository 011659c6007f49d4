// CosineAnnealingWarmRestarts: torch 1.13's argument checks and its cosine, operation for
// operation.
#include "optim/lr_warm_restarts.h"

#include <algorithm>
#include <cmath>
#include <numbers>

// PyTorch computes each formula in Python, one rounding per operation: no fused multiply-adds,
// or the float64 lrs drift from torch's by an ulp.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {

CosineAnnealingWarmRestarts::CosineAnnealingWarmRestarts(Optimizer& optimizer, int64_t T_0,
                                                         int64_t T_mult, double eta_min)
    : LRScheduler(optimizer, "CosineAnnealingWarmRestarts"),
      t_0_(T_0),
      t_mult_(T_mult),
      eta_min_(eta_min) {
  FABRIC_CHECK(T_0 >= 1, ValueError,
               "CosineAnnealingWarmRestarts: expected positive integer T_0 (the first cycle's "
               "steps), but got ",
               T_0);
  FABRIC_CHECK(T_mult >= 1, ValueError,
               "CosineAnnealingWarmRestarts: expected integer T_mult >= 1 (each cycle's length "
               "over the last one's), but got ",
               T_mult);
  initial_step();
}

CosineAnnealingWarmRestarts::Cycle CosineAnnealingWarmRestarts::cycle() const {
  const int64_t epoch = std::max<int64_t>(last_epoch_, 0);
  if (t_mult_ == 1) return {t_0_, epoch % t_0_};
  // Cycles grow geometrically: at most ~63 of them fit in an int64 epoch.
  Cycle c{t_0_, epoch};
  while (c.position >= c.length) {
    c.position -= c.length;
    c.length *= t_mult_;
  }
  return c;
}

std::vector<double> CosineAnnealingWarmRestarts::get_lr() const {
  const Cycle c = cycle();
  const double angle =
      std::numbers::pi * static_cast<double>(c.position) / static_cast<double>(c.length);
  std::vector<double> lrs;
  for (double base : base_lrs_)
    lrs.push_back(eta_min_ + (base - eta_min_) * (1 + std::cos(angle)) / 2);
  return lrs;
}

}  // namespace fabric::optim
