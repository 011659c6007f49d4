// DeepSpeed's loss scalers (spec §5), step for step as runtime/fp16/loss_scaler.py and
// fused_optimizer.py compute them: the scale is a Python float there, a double here.
#include "precision/dynamic_loss_scaler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "tensor/amp_kernels.h"
#include "tensor/ops.h"

namespace fabric::precision {
namespace {

// Python's %: the result takes the divisor's sign.
int64_t py_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

void check_positive_scale(const char* who, const char* what, double v) {
  FABRIC_CHECK(std::isfinite(v) && v > 0.0, ValueError, who, ": ", what,
               " must be finite and > 0, got ", v);
}

// A floor for the scale: 0 is DeepSpeed's "none" (min_loss_scale: 0 in real configs).
void check_scale_floor(const char* who, double v) {
  FABRIC_CHECK(std::isfinite(v) && v >= 0.0, ValueError, who,
               ": min_scale must be finite and >= 0, got ", v);
}

const char* kind_name(const StateValue& v) {
  static const char* names[] = {"int64", "double", "bool", "string"};
  return names[v.index()];
}

// Typed reads from a PrecisionState; `who` names the loader in errors.
struct StateReader {
  const char* who;
  const PrecisionState& s;

  const StateValue& at(const std::string& key) const {
    auto it = s.find(key);
    FABRIC_CHECK(it != s.end(), ValueError, who, ".load_state_dict: missing key '", key, "'");
    return it->second;
  }
  bool has(const std::string& key) const { return s.count(key) != 0; }
  double number(const std::string& key) const {
    const StateValue& v = at(key);
    if (const double* d = std::get_if<double>(&v)) return *d;
    if (const int64_t* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
    throw ValueError(
        detail::cat(who, ".load_state_dict: '", key, "' must be a number, got a ", kind_name(v)));
  }
  int64_t integer(const std::string& key) const {
    const StateValue& v = at(key);
    if (const int64_t* i = std::get_if<int64_t>(&v)) return *i;
    if (const double* d = std::get_if<double>(&v)) {
      FABRIC_CHECK(std::nearbyint(*d) == *d && std::abs(*d) < 9.0e18, ValueError, who,
                   ".load_state_dict: '", key, "' must be an integer, got ", *d);
      return static_cast<int64_t>(*d);
    }
    throw ValueError(
        detail::cat(who, ".load_state_dict: '", key, "' must be an integer, got a ", kind_name(v)));
  }
  bool boolean(const std::string& key) const {
    const StateValue& v = at(key);
    if (const bool* b = std::get_if<bool>(&v)) return *b;
    if (const int64_t* i = std::get_if<int64_t>(&v)) return *i != 0;
    throw ValueError(
        detail::cat(who, ".load_state_dict: '", key, "' must be a bool, got a ", kind_name(v)));
  }
};

}  // namespace

// ---- DynamicLossScaler --------------------------------------------------------------------------

DynamicLossScaler::DynamicLossScaler(const DynamicLossScalerOptions& o)
    : cur_scale_(o.init_scale),
      scale_factor_(o.scale_factor),
      scale_window_(o.scale_window),
      min_scale_(o.min_scale),
      delayed_shift_(o.delayed_shift),
      cur_hysteresis_(o.delayed_shift),
      consecutive_hysteresis_(o.consecutive_hysteresis),
      raise_error_at_min_scale_(o.raise_error_at_min_scale) {
  check_positive_scale("DynamicLossScaler", "init_scale", o.init_scale);
  check_scale_floor("DynamicLossScaler", o.min_scale);
  FABRIC_CHECK(o.scale_factor > 1.0 && std::isfinite(o.scale_factor), ValueError,
               "DynamicLossScaler: scale_factor must be > 1 (and finite), got ", o.scale_factor);
  FABRIC_CHECK(o.scale_window >= 1, ValueError,
               "DynamicLossScaler: scale_window must be >= 1, got ", o.scale_window);
  FABRIC_CHECK(o.delayed_shift >= 1, ValueError,
               "DynamicLossScaler: delayed_shift (hysteresis) must be >= 1, got ", o.delayed_shift);
}

DynamicLossScaler::DynamicLossScaler(double static_scale, bool)
    : dynamic_(false),
      cur_scale_(static_scale),
      scale_factor_(2.0),
      scale_window_(1000),
      min_scale_(1.0),
      delayed_shift_(1),
      cur_hysteresis_(1),
      consecutive_hysteresis_(false),
      raise_error_at_min_scale_(true) {
  check_positive_scale("LossScaler", "scale", static_scale);
}

DynamicLossScaler DynamicLossScaler::static_scale(double scale) {
  return DynamicLossScaler(scale, false);
}

void DynamicLossScaler::update_scale(bool overflow) {
  if (!dynamic_) return;  // DeepSpeed's static LossScaler.update_scale is a no-op
  if (overflow) {
    if (delayed_shift_ == 1 || cur_hysteresis_ == 1) {
      FABRIC_CHECK(!(cur_scale_ == min_scale_ && raise_error_at_min_scale_), ValueError,
                   "DynamicLossScaler: current loss scale already at minimum (", min_scale_,
                   ") - cannot decrease scale anymore (gradient overflow at iteration ", cur_iter_,
                   ")");
      cur_scale_ = std::max(cur_scale_ / scale_factor_, min_scale_);
    } else {
      cur_hysteresis_ -= 1;
    }
    last_overflow_iter_ = cur_iter_;
  } else {
    if (consecutive_hysteresis_) cur_hysteresis_ = delayed_shift_;
    if (py_mod(cur_iter_ - last_overflow_iter_, scale_window_) == 0) {
      if (!consecutive_hysteresis_) cur_hysteresis_ = delayed_shift_;
      cur_scale_ *= scale_factor_;
    }
  }
  cur_iter_ += 1;
}

Tensor DynamicLossScaler::scale_loss(const Tensor& loss) const {
  FABRIC_CHECK(loss.defined(), ValueError, "DynamicLossScaler.scale_loss: got an undefined loss");
  return loss.to(DType::float32) * cur_scale_;
}

double DynamicLossScaler::combined_scale(double total_norm, double clip_grad) const {
  double combined = cur_scale_;
  if (clip_grad > 0.0) {
    const double clip = ((total_norm / cur_scale_) + 1e-6) / clip_grad;
    combined = std::max(clip, 1.0) * cur_scale_;  // clamp(min=1); a NaN clip stays NaN, as in torch
  }
  return combined;
}

void DynamicLossScaler::unscale_and_clip_(const std::vector<Tensor>& grads, double total_norm,
                                          double clip_grad) const {
  const float inv = static_cast<float>(1.0 / combined_scale(total_norm, clip_grad));
  std::vector<Tensor> defined;
  for (const Tensor& g : grads)
    if (g.defined()) defined.push_back(g);
  amp_unscale_and_check_all_(defined, inv, "DynamicLossScaler.unscale_and_clip_");
}

PrecisionState DynamicLossScaler::state_dict() const {
  return {{"cur_scale", cur_scale_},
          {"cur_iter", cur_iter_},
          {"last_overflow_iter", last_overflow_iter_},
          {"scale_factor", scale_factor_},
          {"scale_window", scale_window_},
          {"min_scale", min_scale_},
          {"delayed_shift", delayed_shift_},
          {"cur_hysteresis", cur_hysteresis_},
          {"consecutive_hysteresis", consecutive_hysteresis_},
          {"dynamic_loss_scale", dynamic_}};
}

void DynamicLossScaler::load_state_dict(const PrecisionState& s) {
  const StateReader r{"DynamicLossScaler", s};
  const double cur_scale = r.number("cur_scale");
  const int64_t cur_iter = r.integer("cur_iter");
  const int64_t last_overflow_iter = r.integer("last_overflow_iter");
  const double scale_factor = r.number("scale_factor");
  const int64_t scale_window = r.integer("scale_window");
  const double min_scale = r.number("min_scale");
  const int64_t delayed_shift = r.integer("delayed_shift");
  const int64_t cur_hysteresis = r.integer("cur_hysteresis");
  const bool consecutive = r.boolean("consecutive_hysteresis");
  const bool dynamic = r.has("dynamic_loss_scale") ? r.boolean("dynamic_loss_scale") : dynamic_;
  // DeepSpeed's scale grows without a cap (to inf after enough clean steps) and backs off no lower
  // than min_scale: every such state loads back.
  // A scale backed off to a floor of 0 may reach 0 itself.
  FABRIC_CHECK(
      !std::isnan(cur_scale) && (cur_scale > 0.0 || (cur_scale == 0.0 && min_scale == 0.0)),
      ValueError, "DynamicLossScaler.load_state_dict: cur_scale must be > 0, got ", cur_scale);
  check_scale_floor("DynamicLossScaler.load_state_dict", min_scale);
  FABRIC_CHECK(scale_factor > 1.0 && std::isfinite(scale_factor), ValueError,
               "DynamicLossScaler.load_state_dict: scale_factor must be > 1, got ", scale_factor);
  FABRIC_CHECK(scale_window >= 1, ValueError,
               "DynamicLossScaler.load_state_dict: scale_window must be >= 1, got ", scale_window);
  FABRIC_CHECK(delayed_shift >= 1 && cur_hysteresis >= 1 && cur_hysteresis <= delayed_shift,
               ValueError,
               "DynamicLossScaler.load_state_dict: need 1 <= cur_hysteresis <= delayed_shift, got "
               "cur_hysteresis ",
               cur_hysteresis, ", delayed_shift ", delayed_shift);
  FABRIC_CHECK(
      cur_iter >= 0 && last_overflow_iter >= -1 && last_overflow_iter < cur_iter, ValueError,
      "DynamicLossScaler.load_state_dict: need -1 <= last_overflow_iter < cur_iter, got cur_iter ",
      cur_iter, ", last_overflow_iter ", last_overflow_iter);
  dynamic_ = dynamic;
  cur_scale_ = cur_scale;
  cur_iter_ = cur_iter;
  last_overflow_iter_ = last_overflow_iter;
  scale_factor_ = scale_factor;
  scale_window_ = scale_window;
  min_scale_ = min_scale;
  delayed_shift_ = delayed_shift;
  cur_hysteresis_ = cur_hysteresis;
  consecutive_hysteresis_ = consecutive;
}

// ---- FusedLossScaler ----------------------------------------------------------------------------

FusedLossScaler::FusedLossScaler(const FusedLossScalerOptions& o)
    : dynamic_(o.dynamic),
      cur_scale_(o.dynamic ? o.init_scale : o.static_scale),
      scale_window_(o.scale_window),
      min_scale_(o.min_scale) {
  check_positive_scale("FusedLossScaler", o.dynamic ? "init_scale" : "static_scale", cur_scale_);
  check_scale_floor("FusedLossScaler", o.min_scale);
  FABRIC_CHECK(o.scale_window >= 1, ValueError, "FusedLossScaler: scale_window must be >= 1, got ",
               o.scale_window);
}

void FusedLossScaler::update_scale(bool overflow) {
  if (dynamic_) {
    if (overflow) {
      cur_scale_ = std::max(cur_scale_ / scale_factor_, min_scale_);
      last_overflow_iter_ = cur_iter_;
    } else {
      // "Ensure self.scale_window updates since last overflow"
      const int64_t stable_interval = (cur_iter_ - last_overflow_iter_) - 1;
      if (stable_interval > 0 && py_mod(stable_interval, scale_window_) == 0)
        cur_scale_ *= scale_factor_;
    }
  }
  cur_iter_ += 1;
}

PrecisionState FusedLossScaler::state_dict() const {
  PrecisionState s{
      {"dynamic_loss_scale", dynamic_}, {"cur_scale", cur_scale_}, {"cur_iter", cur_iter_}};
  if (dynamic_) {
    s["last_overflow_iter"] = last_overflow_iter_;
    s["scale_factor"] = scale_factor_;
    s["scale_window"] = scale_window_;
  }
  return s;
}

void FusedLossScaler::load_state_dict(const PrecisionState& s) {
  const StateReader r{"FusedLossScaler", s};
  const bool dynamic = r.boolean("dynamic_loss_scale");
  const double cur_scale = r.number("cur_scale");
  const int64_t cur_iter = r.integer("cur_iter");
  // As DynamicLossScaler's: a scale grown to inf is a state this scaler reaches.
  FABRIC_CHECK(!std::isnan(cur_scale) && cur_scale > 0.0, ValueError,
               "FusedLossScaler.load_state_dict: cur_scale must be > 0, got ", cur_scale);
  FABRIC_CHECK(cur_iter >= 0, ValueError,
               "FusedLossScaler.load_state_dict: cur_iter must be >= 0, got ", cur_iter);
  int64_t last = last_overflow_iter_, window = scale_window_;
  double factor = scale_factor_;
  if (dynamic) {
    last = r.integer("last_overflow_iter");
    factor = r.number("scale_factor");
    window = r.integer("scale_window");
    FABRIC_CHECK(factor > 1.0 && std::isfinite(factor), ValueError,
                 "FusedLossScaler.load_state_dict: scale_factor must be > 1, got ", factor);
    FABRIC_CHECK(window >= 1, ValueError,
                 "FusedLossScaler.load_state_dict: scale_window must be >= 1, got ", window);
  }
  dynamic_ = dynamic;
  cur_scale_ = cur_scale;
  cur_iter_ = cur_iter;
  last_overflow_iter_ = last;
  scale_factor_ = factor;
  scale_window_ = window;
}

// ---- factories and the overflow check -----------------------------------------------------------

namespace {
bool has_dynamic_keys(const DeepSpeedFp16Config& c) {
  return c.initial_scale_power || c.loss_scale_window || c.min_loss_scale || c.hysteresis ||
         c.consecutive_hysteresis;
}
double scale_from_power(int64_t power) {
  FABRIC_CHECK(power >= -1022 && power <= 1023, ValueError,
               "DeepSpeed fp16 config: initial_scale_power must give a finite scale 2^p (p in "
               "[-1022, 1023]), got ",
               power);
  return std::ldexp(1.0, static_cast<int>(power));
}
double static_loss_scale(const DeepSpeedFp16Config& c) {
  const double s = c.loss_scale.value_or(0.0);
  FABRIC_CHECK(
      s >= 0.0 && std::isfinite(s), ValueError,
      "DeepSpeed fp16 config: loss_scale must be 0 (dynamic) or a positive static scale, got ", s);
  return s;
}
}  // namespace

DynamicLossScaler make_zero_loss_scaler(const DeepSpeedFp16Config& c) {
  if (!c.enabled) return DynamicLossScaler::static_scale(1.0);
  const double loss_scale = static_loss_scale(c);
  if (loss_scale > 0.0) return DynamicLossScaler::static_scale(loss_scale);
  if (!has_dynamic_keys(c)) return DynamicLossScaler();  // the pitfall: constructor defaults
  DynamicLossScalerOptions o;
  o.init_scale = scale_from_power(c.initial_scale_power.value_or(16));
  o.scale_window = c.loss_scale_window.value_or(1000);
  o.delayed_shift = c.hysteresis.value_or(2);
  o.consecutive_hysteresis = c.consecutive_hysteresis.value_or(false);
  o.min_scale = c.min_loss_scale.value_or(1.0);
  return DynamicLossScaler(o);
}

FusedLossScaler make_fused_loss_scaler(const DeepSpeedFp16Config& c) {
  FusedLossScalerOptions o;
  if (!c.enabled) {
    o.dynamic = false;
    o.static_scale = 1.0;
    return FusedLossScaler(o);
  }
  const double loss_scale = static_loss_scale(c);
  if (loss_scale > 0.0) {
    o.dynamic = false;
    o.static_scale = loss_scale;
    return FusedLossScaler(o);
  }
  o.init_scale = scale_from_power(c.initial_scale_power.value_or(16));
  if (has_dynamic_keys(c)) {
    o.scale_window = c.loss_scale_window.value_or(1000);
    o.min_scale = c.min_loss_scale.value_or(1.0);
  }
  return FusedLossScaler(o);
}

bool has_overflow(const std::vector<Tensor>& grads) {
  std::vector<Tensor> defined;
  for (const Tensor& g : grads)
    if (g.defined()) defined.push_back(g);
  // One pass over every gradient and one wait per device, rather than one per tensor.
  for (const auto& [device, found] : amp_unscale_and_check_all_(defined, 1.0f, "has_overflow"))
    if (found) return true;
  return false;
}

}  // namespace fabric::precision
