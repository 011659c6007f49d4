// ReduceLROnPlateau: torch 1.13's step(), is_better() and _reduce_lr() with its arithmetic, and
// argument checks that name what is wrong.
#include "optim/plateau.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/factory.h"

// PyTorch computes each formula in Python, one rounding per operation: no fused multiply-adds.
#pragma GCC optimize("fp-contract=off")

namespace fabric::optim {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<double> min_lrs_for(const std::vector<double>& min_lr, size_t groups,
                                const char* where) {
  if (min_lr.size() == 1) return std::vector<double>(groups, min_lr[0]);
  FABRIC_CHECK(min_lr.size() == groups, ValueError, where, ": expected ", groups,
               " min_lrs (one per parameter group) or one for all, got ", min_lr.size());
  return min_lr;
}

// The constructor's checks, also run on a loaded state's arguments (`where` names which); returns
// the per-group min_lrs.
std::vector<double> checked_min_lrs(const PlateauOptions& o, size_t groups, const char* where) {
  FABRIC_CHECK(o.mode == "min" || o.mode == "max", ValueError, where,
               ": mode must be 'min' (the metric should fall) or 'max' (rise), got '", o.mode, "'");
  FABRIC_CHECK(o.threshold_mode == "rel" || o.threshold_mode == "abs", ValueError, where,
               ": threshold_mode must be 'rel' or 'abs', got '", o.threshold_mode, "'");
  // torch: 'Factor should be < 1.0.' (a factor below 0 would make the lrs negative).
  FABRIC_CHECK(o.factor >= 0 && o.factor < 1, ValueError, where,
               ": factor (the lr's multiplier at a reduction) must be in [0, 1), got ", o.factor);
  FABRIC_CHECK(o.patience >= 0, ValueError, where, ": patience must be >= 0, got ", o.patience);
  FABRIC_CHECK(o.cooldown >= 0, ValueError, where, ": cooldown must be >= 0, got ", o.cooldown);
  FABRIC_CHECK(o.threshold >= 0, ValueError, where, ": threshold must be >= 0, got ", o.threshold);
  FABRIC_CHECK(o.eps >= 0, ValueError, where, ": eps must be >= 0, got ", o.eps);
  std::vector<double> min_lrs = min_lrs_for(o.min_lr, groups, where);
  for (size_t g = 0; g < min_lrs.size(); ++g) {
    FABRIC_CHECK(min_lrs[g] >= 0, ValueError, where, ": min_lr of group ", g, " must be >= 0, got ",
                 min_lrs[g]);
  }
  return min_lrs;
}

double mode_worse_of(const std::string& mode) { return mode == "min" ? kInf : -kInf; }

Tensor characters(const std::string& s) {
  return from_vector<uint8_t>(std::vector<uint8_t>(s.begin(), s.end()),
                              {static_cast<int64_t>(s.size())});
}

}  // namespace

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& o)
    : optimizer_(&optimizer), options_(o) {
  min_lrs_ = checked_min_lrs(o, optimizer.num_param_groups(), "ReduceLROnPlateau");
  mode_worse_ = mode_worse_of(o.mode);
  best_ = mode_worse_;
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) last_lr_.push_back(optimizer.lr(g));
}

bool ReduceLROnPlateau::is_better(double a, double best) const {
  const double t = options_.threshold;
  if (options_.mode == "min") {
    if (options_.threshold_mode == "rel") return a < best * (1. - t);
    return a < best - t;
  }
  if (options_.threshold_mode == "rel") return a > best * (t + 1.);
  return a > best + t;
}

void ReduceLROnPlateau::step(double metric) {
  const size_t groups = optimizer_->num_param_groups();
  // The counters' next values first: a reduction that cannot happen leaves them as they are.
  double best = best_;
  int64_t bad = num_bad_epochs_, cooldown = cooldown_counter_;
  if (is_better(metric, best)) {
    best = metric;
    bad = 0;
  } else {
    ++bad;
  }
  if (cooldown > 0) {
    --cooldown;
    bad = 0;  // bad steps in a cooldown do not count
  }
  const bool reduce = bad > options_.patience;
  if (reduce) {
    FABRIC_CHECK(groups <= min_lrs_.size(), ValueError,
                 "ReduceLROnPlateau.step: reducing the lrs needs every group's min_lr, but the "
                 "optimizer has ",
                 groups, " parameter groups and the scheduler was built for ", min_lrs_.size(),
                 " (build it after adding the groups)");
    for (size_t g = 0; g < groups; ++g) {
      const double old_lr = optimizer_->lr(g);
      const double new_lr = std::max(old_lr * options_.factor, min_lrs_[g]);
      if (old_lr - new_lr > options_.eps) optimizer_->set_lr(g, new_lr);
    }
    cooldown = options_.cooldown;
    bad = 0;
  }
  ++last_epoch_;
  best_ = best;
  num_bad_epochs_ = bad;
  cooldown_counter_ = cooldown;
  last_lr_.clear();
  for (size_t g = 0; g < groups; ++g) last_lr_.push_back(optimizer_->lr(g));
}

PlateauState ReduceLROnPlateau::state_dict() const {
  return {.factor = options_.factor,
          .threshold = options_.threshold,
          .eps = options_.eps,
          .patience = options_.patience,
          .cooldown = options_.cooldown,
          .min_lrs = min_lrs_,
          .mode = options_.mode,
          .threshold_mode = options_.threshold_mode,
          .best = best_,
          .mode_worse = mode_worse_,
          .num_bad_epochs = num_bad_epochs_,
          .cooldown_counter = cooldown_counter_,
          .last_epoch = last_epoch_,
          .last_lr = last_lr_};
}

void ReduceLROnPlateau::load_state_dict(const PlateauState& s) {
  const char* where = "ReduceLROnPlateau.load_state_dict";
  const size_t groups = optimizer_->num_param_groups();
  FABRIC_CHECK(s.last_lr.empty() || s.last_lr.size() == groups, ValueError, where,
               ": the state has ", s.last_lr.size(), " last lrs but the optimizer has ", groups,
               " parameter groups");
  // A state without mode (saved before it was kept) has the one its mode_worse stands for.
  PlateauOptions o{
      .mode = s.mode.empty() ? (s.mode_worse > 0 ? "min" : "max") : s.mode,
      .factor = s.factor,
      .patience = s.patience,
      .threshold = s.threshold,
      .threshold_mode = s.threshold_mode.empty() ? options_.threshold_mode : s.threshold_mode,
      .cooldown = s.cooldown,
      .min_lr = s.min_lrs,
      .eps = s.eps};
  std::vector<double> min_lrs = checked_min_lrs(o, groups, where);
  FABRIC_CHECK(s.mode_worse == mode_worse_of(o.mode), ValueError, where, ": mode_worse ",
               s.mode_worse, " is not mode '", o.mode, "''s worst metric (", mode_worse_of(o.mode),
               ")");
  FABRIC_CHECK(s.num_bad_epochs >= 0 && s.cooldown_counter >= 0 && s.last_epoch >= 0, ValueError,
               where, ": num_bad_epochs (", s.num_bad_epochs, "), cooldown_counter (",
               s.cooldown_counter, ") and last_epoch (", s.last_epoch, ") must be >= 0");
  options_ = std::move(o);
  min_lrs_ = std::move(min_lrs);
  mode_worse_ = s.mode_worse;
  best_ = s.best;
  num_bad_epochs_ = s.num_bad_epochs;
  cooldown_counter_ = s.cooldown_counter;
  last_epoch_ = s.last_epoch;
  last_lr_ = s.last_lr;
  if (last_lr_.empty())  // never stepped: the groups' lrs, as the constructor takes them
    for (size_t g = 0; g < groups; ++g) last_lr_.push_back(optimizer_->lr(g));
}

// ---- PlateauState -----------------------------------------------------------------------------

std::vector<std::pair<std::string, Tensor>> PlateauState::flatten(const std::string& prefix) const {
  auto real = [](double x) { return scalar_tensor(x, {.dtype = DType::float64}); };
  auto count = [](int64_t x) { return scalar_tensor(x, {.dtype = DType::int64}); };
  auto list = [](const std::vector<double>& v) {
    return from_vector<double>(v, {static_cast<int64_t>(v.size())});
  };
  return {{prefix + "factor", real(factor)},
          {prefix + "min_lrs", list(min_lrs)},
          {prefix + "patience", count(patience)},
          {prefix + "cooldown", count(cooldown)},
          {prefix + "cooldown_counter", count(cooldown_counter)},
          {prefix + "mode", characters(mode)},
          {prefix + "threshold", real(threshold)},
          {prefix + "threshold_mode", characters(threshold_mode)},
          {prefix + "best", real(best)},
          {prefix + "num_bad_epochs", count(num_bad_epochs)},
          {prefix + "mode_worse", real(mode_worse)},
          {prefix + "eps", real(eps)},
          {prefix + "last_epoch", count(last_epoch)},
          {prefix + "_last_lr", list(last_lr)}};
}

PlateauState PlateauState::unflatten(const std::vector<std::pair<std::string, Tensor>>& items,
                                     const std::string& prefix) {
  auto find = [&](const char* name) -> const Tensor& {
    for (const auto& [k, t] : items) {
      if (k == prefix + name) {
        FABRIC_CHECK(t.defined(), ValueError, "PlateauState::unflatten: '", k, "' is undefined");
        return t;
      }
    }
    throw ValueError(detail::cat("PlateauState::unflatten: key '", prefix, name,
                                 "' is missing (not a ReduceLROnPlateau's state?)"));
  };
  auto one = [&](const char* name) -> const Tensor& {
    const Tensor& t = find(name);
    FABRIC_CHECK(t.numel() == 1, ValueError, "PlateauState::unflatten: '", prefix, name,
                 "' must hold one number, got shape ", shape_str(t.sizes()));
    return t;
  };
  // The strings: optional (states saved before they were kept lack them).
  auto text = [&](const char* name) {
    for (const auto& [k, t] : items) {
      if (k != prefix + name) continue;
      FABRIC_CHECK(t.defined() && t.dim() == 1 && t.dtype() == DType::uint8, ValueError,
                   "PlateauState::unflatten: '", k, "' must be a 1-D uint8 tensor (a string)");
      const auto chars = t.to_vector<uint8_t>();
      return std::string(chars.begin(), chars.end());
    }
    return std::string();
  };
  PlateauState s;
  s.mode = text("mode");
  s.threshold_mode = text("threshold_mode");
  s.factor = one("factor").item<double>();
  s.min_lrs = find("min_lrs").to_vector<double>();
  s.patience = one("patience").item<int64_t>();
  s.cooldown = one("cooldown").item<int64_t>();
  s.cooldown_counter = one("cooldown_counter").item<int64_t>();
  s.threshold = one("threshold").item<double>();
  s.best = one("best").item<double>();
  s.num_bad_epochs = one("num_bad_epochs").item<int64_t>();
  s.mode_worse = one("mode_worse").item<double>();
  s.eps = one("eps").item<double>();
  s.last_epoch = one("last_epoch").item<int64_t>();
  // torch 1.13 sets _last_lr in step() only: a state saved before the first step has none (empty
  // here; load_state_dict takes the groups' lrs then).
  const bool stepped = std::any_of(items.begin(), items.end(), [&](const auto& item) {
    return item.first == prefix + "_last_lr";
  });
  if (stepped) s.last_lr = find("_last_lr").to_vector<double>();
  return s;
}

}  // namespace fabric::optim
