// CosineAnnealingWarmRestarts: torch 1.13's argument checks, its T_cur / T_i bookkeeping (integer
// and fractional steps) and its cosine, operation for operation.
#include "optim/lr_warm_restarts.h"

#include <algorithm>
#include <cmath>
#include <numbers>

// PyTorch computes each formula in Python, one rounding per operation: no fused multiply-adds,
// or the float64 lrs drift from torch's by an ulp.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {
namespace {

// Python's int ** int for the small powers a cycle count reaches.
int64_t int_pow(int64_t base, int64_t exponent) {
  int64_t r = 1;
  for (int64_t i = 0; i < exponent; ++i) r *= base;
  return r;
}

}  // namespace

CosineAnnealingWarmRestarts::CosineAnnealingWarmRestarts(Optimizer& optimizer, int64_t T_0,
                                                         int64_t T_mult, double eta_min)
    : LRScheduler(optimizer, "CosineAnnealingWarmRestarts"),
      t_0_(T_0),
      t_mult_(T_mult),
      eta_min_(eta_min),
      t_i_(T_0) {
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

void CosineAnnealingWarmRestarts::step() {
  if (last_epoch_ < 0) return step(0.0);  // torch's first step: epoch 0
  ++last_epoch_;
  t_cur_ = t_cur_ + 1;
  if (t_cur_ >= static_cast<double>(t_i_)) {
    t_cur_ = t_cur_ - static_cast<double>(t_i_);
    t_i_ = t_i_ * t_mult_;
  }
  set_lrs(get_lr());
}

void CosineAnnealingWarmRestarts::step(double epoch) {
  FABRIC_CHECK(epoch >= 0, ValueError,
               "CosineAnnealingWarmRestarts.step: expected non-negative epoch, but got ", epoch);
  place(epoch);
  last_epoch_ = static_cast<int64_t>(std::floor(epoch));
  set_lrs(get_lr());
}

void CosineAnnealingWarmRestarts::step_to(int64_t epoch) { step(static_cast<double>(epoch)); }

void CosineAnnealingWarmRestarts::place(double epoch) {
  const auto t_0 = static_cast<double>(t_0_);
  if (epoch < t_0) {
    t_i_ = t_0_;
    t_cur_ = epoch;
  } else if (t_mult_ == 1) {
    t_cur_ = std::fmod(epoch, t_0);  // Python's % for epoch >= 0
  } else {
    // torch: n = int(math.log(epoch / T_0 * (T_mult - 1) + 1, T_mult)), Python's two-argument log
    // being log(x) / log(base).
    const auto t_mult = static_cast<double>(t_mult_);
    const auto n =
        static_cast<int64_t>(std::log(epoch / t_0 * (t_mult - 1) + 1) / std::log(t_mult));
    const int64_t power = int_pow(t_mult_, n);
    t_cur_ = epoch - static_cast<double>(t_0_ * (power - 1)) / static_cast<double>(t_mult_ - 1);
    t_i_ = t_0_ * power;
  }
}

SchedulerState CosineAnnealingWarmRestarts::state_dict() const {
  SchedulerState s = LRScheduler::state_dict();
  s.extra = {{"T_i", static_cast<double>(t_i_)}, {"T_cur", t_cur_}};
  return s;
}

void CosineAnnealingWarmRestarts::load_state_dict(const SchedulerState& s) {
  const double* t_i = nullptr;
  const double* t_cur = nullptr;
  for (const auto& [name, value] : s.extra) {
    if (name == "T_i") t_i = &value;
    if (name == "T_cur") t_cur = &value;
  }
  FABRIC_CHECK((t_i == nullptr) == (t_cur == nullptr), ValueError,
               "CosineAnnealingWarmRestarts.load_state_dict: the state holds ",
               t_i ? "T_i but not T_cur" : "T_cur but not T_i", " (both or neither)");
  // (T_cur is not bounded by T_i: torch's rounded log can put a fractional epoch at a cycle's end.)
  if (t_i) {
    FABRIC_CHECK(*t_i >= 1 && *t_i == std::floor(*t_i) && *t_i < 9.2e18 && std::isfinite(*t_cur),
                 ValueError,
                 "CosineAnnealingWarmRestarts.load_state_dict: expected an integer T_i >= 1 and a "
                 "finite T_cur, got T_i ",
                 *t_i, " and T_cur ", *t_cur);
  }
  LRScheduler::load_state_dict(s);
  if (t_i) {
    t_i_ = static_cast<int64_t>(*t_i);
    t_cur_ = *t_cur;
  } else {
    // Integer steps from 0 to last_epoch: the cycle last_epoch falls in (cycles grow
    // geometrically for T_mult > 1: at most ~63 of them fit in an int64 epoch).
    const int64_t epoch = std::max<int64_t>(last_epoch_, 0);
    int64_t position = t_mult_ == 1 ? epoch % t_0_ : epoch;
    t_i_ = t_0_;
    while (position >= t_i_) {
      position -= t_i_;
      t_i_ *= t_mult_;
    }
    t_cur_ = static_cast<double>(position);
  }
}

std::vector<double> CosineAnnealingWarmRestarts::get_lr() const {
  const double angle = std::numbers::pi * t_cur_ / static_cast<double>(t_i_);
  std::vector<double> lrs;
  for (double base : base_lrs_)
    lrs.push_back(eta_min_ + (base - eta_min_) * (1 + std::cos(angle)) / 2);
  return lrs;
}

}  // namespace fabric::optim
