// GradScaler: the reference's scale/unscale_/step/update state machine over the fused
// unscale + inf/NaN kernel (tensor/amp_kernels.h).
#include "precision/grad_scaler.h"

#include <algorithm>
#include <cmath>

#include "tensor/amp_kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::precision {
namespace {

void check_growth_factor(double v) {
  FABRIC_CHECK(v > 1.0 && std::isfinite(v), ValueError,
               "GradScaler: growth_factor must be > 1.0 (and finite), got ", v);
}
void check_backoff_factor(double v) {
  FABRIC_CHECK(v > 0.0 && v < 1.0, ValueError, "GradScaler: backoff_factor must be in (0, 1), got ",
               v);
}
void check_growth_interval(int64_t v) {
  FABRIC_CHECK(v >= 1, ValueError, "GradScaler: growth_interval must be >= 1, got ", v);
}
// The scale lives in a float: the value must stay finite and non-zero once rounded.
void check_scale_value(const char* what, double v) {
  const float f = static_cast<float>(v);
  FABRIC_CHECK(std::isfinite(f) && f > 0.0f, ValueError, "GradScaler: ", what,
               " must be > 0 and finite as a float32, got ", v);
}

const char* kind_name(const StateValue& v) {
  static const char* names[] = {"int64", "double", "bool", "string"};
  return names[v.index()];
}

const StateValue& require_key(const PrecisionState& s, const std::string& key) {
  auto it = s.find(key);
  FABRIC_CHECK(
      it != s.end(), ValueError, "GradScaler.load_state_dict: missing key '", key,
      "' (expected scale, growth_factor, backoff_factor, growth_interval, _growth_tracker)");
  return it->second;
}

double number_at(const PrecisionState& s, const std::string& key) {
  const StateValue& v = require_key(s, key);
  if (const double* d = std::get_if<double>(&v)) return *d;
  if (const int64_t* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  throw ValueError(detail::cat("GradScaler.load_state_dict: '", key, "' must be a number, got a ",
                               kind_name(v)));
}

int64_t integer_at(const PrecisionState& s, const std::string& key) {
  const StateValue& v = require_key(s, key);
  if (const int64_t* i = std::get_if<int64_t>(&v)) return *i;
  if (const double* d = std::get_if<double>(&v)) {
    FABRIC_CHECK(std::nearbyint(*d) == *d && std::abs(*d) < 9.0e18, ValueError,
                 "GradScaler.load_state_dict: '", key, "' must be an integer, got ", *d);
    return static_cast<int64_t>(*d);
  }
  throw ValueError(detail::cat("GradScaler.load_state_dict: '", key, "' must be an integer, got a ",
                               kind_name(v)));
}

}  // namespace

GradScaler::GradScaler(const GradScalerOptions& o)
    : enabled_(o.enabled),
      allow_fp16_(o.allow_fp16_grads),
      init_scale_(o.init_scale),
      growth_factor_(o.growth_factor),
      backoff_factor_(o.backoff_factor),
      growth_interval_(o.growth_interval) {
  if (!enabled_) return;
  check_scale_value("init_scale", o.init_scale);
  check_growth_factor(o.growth_factor);
  check_backoff_factor(o.backoff_factor);
  check_growth_interval(o.growth_interval);
}

void GradScaler::check_scale_initialized(const char* fn) const {
  FABRIC_CHECK(
      initialized_, ValueError, "GradScaler.", fn,
      ": the scale is not initialized yet; call scaler.scale(loss) earlier in the iteration");
}

void GradScaler::set_scale(float s) {
  scale_ = s;
  // A fresh tensor rather than an in-place fill: a graph built from an earlier scale() keeps
  // the value it multiplied by.
  if (scale_tensor_.defined())
    scale_tensor_ =
        scalar_tensor(scale_, {.dtype = DType::float32, .device = scale_tensor_.device()});
}

Tensor GradScaler::scale(const Tensor& loss) {
  if (!enabled_) return loss;
  FABRIC_CHECK(loss.defined(), ValueError, "GradScaler.scale: got an undefined loss");
  if (!initialized_) {
    initialized_ = true;
    scale_ = static_cast<float>(init_scale_);
    tracker_ = init_growth_tracker_;
  }
  if (!scale_tensor_.defined() || scale_tensor_.device() != loss.device())
    scale_tensor_ = scalar_tensor(scale_, {.dtype = DType::float32, .device = loss.device()});
  return loss * scale_tensor_;
}

GradScaler::OptState& GradScaler::state_of(const optim::Optimizer& opt) {
  OptState& st = per_opt_[&opt];
  if (st.lifetime.expired()) {
    st = OptState{};
    st.lifetime = opt.lifetime();
  }
  return st;
}

void GradScaler::unscale_(optim::Optimizer& opt) {
  if (!enabled_) return;
  check_scale_initialized("unscale_");
  OptState& st = state_of(opt);
  FABRIC_CHECK(st.stage != Stage::unscaled, ValueError,
               "GradScaler.unscale_: unscale_() has already been called on this ", opt.name(),
               " optimizer since the last update()");
  FABRIC_CHECK(st.stage != Stage::stepped, ValueError,
               "GradScaler.unscale_: unscale_() is being called after step() on this ", opt.name(),
               " optimizer (call update() first)");

  // Check every gradient before touching any, so a bad dtype leaves them all as they were.
  std::vector<Tensor> grads;
  const std::vector<Tensor> params = opt.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor g = params[i].grad();
    if (!g.defined()) continue;
    const DType dt = g.dtype();
    if (dt == DType::float16 && !allow_fp16_)
      throw ValueError("Attempting to unscale FP16 gradients.");  // torch: ValueError
    FABRIC_CHECK(dt == DType::float32 || dt == DType::bfloat16 || dt == DType::float16 ||
                     dt == DType::float64,
                 DTypeError, "GradScaler.unscale_: parameter ", i, " of ", opt.name(), " has a ",
                 dtype_name(dt), " gradient (expected float32, bfloat16, float64",
                 allow_fp16_ ? " or float16)" : ")");
    grads.push_back(std::move(g));
  }

  // The inverse is taken in double and rounded once to float.
  const float inv = static_cast<float>(1.0 / static_cast<double>(scale_));
  // One fused pass per gradient, one wait per device (found_inf per device, as PyTorch keeps).
  std::vector<std::pair<Device, float>> found;
  for (const auto& [device, bad] : amp_unscale_and_check_all_(grads, inv, "GradScaler.unscale_"))
    found.emplace_back(device, bad ? 1.0f : 0.0f);
  if (reducer_) {
    for (auto& [dev, value] : found) {
      Tensor t = scalar_tensor(value, {.dtype = DType::float32, .device = dev});
      reducer_(t);
      FABRIC_CHECK(t.defined() && t.numel() == 1, ValueError,
                   "GradScaler: the found_inf reducer must leave a one-element tensor");
      value = t.item<float>();
    }
  }
  st.found_inf_per_device = std::move(found);
  st.stage = Stage::unscaled;
}

bool GradScaler::step(optim::Optimizer& opt) {
  if (!enabled_) {
    opt.step();
    return true;
  }
  check_scale_initialized("step");
  OptState& st = state_of(opt);
  FABRIC_CHECK(st.stage != Stage::stepped, ValueError,
               "GradScaler.step: step() has already been called on this ", opt.name(),
               " optimizer since the last update()");
  if (st.stage == Stage::ready) unscale_(opt);
  FABRIC_CHECK(!st.found_inf_per_device.empty(), ValueError,
               "GradScaler.step: no inf checks were recorded for this ", opt.name(),
               " optimizer (none of its parameters has a gradient)");
  float sum = 0;
  for (const auto& e : st.found_inf_per_device) sum += e.second;
  const bool do_step = sum == 0.0f;
  if (do_step) opt.step();
  st.stage = Stage::stepped;
  return do_step;
}

void GradScaler::update() {
  if (!enabled_) return;
  check_scale_initialized("update");
  bool any = false;
  float found = 0;
  for (const auto& [opt, st] : per_opt_) {
    for (const auto& e : st.found_inf_per_device) {
      found += e.second;
      any = true;
    }
  }
  FABRIC_CHECK(any, ValueError,
               "GradScaler.update: no inf checks were recorded prior to update() (call step() or "
               "unscale_() on an "
               "optimizer with gradients first)");
  if (found != 0.0f) {
    set_scale(static_cast<float>(static_cast<double>(scale_) * backoff_factor_));
    tracker_ = 0;
  } else {
    const int64_t successful = tracker_ + 1;
    if (successful == growth_interval_) {
      const float grown = static_cast<float>(static_cast<double>(scale_) * growth_factor_);
      if (std::isfinite(grown)) set_scale(grown);  // never grow past float32 range into inf
      tracker_ = 0;
    } else {
      tracker_ = successful;
    }
  }
  per_opt_.clear();
}

void GradScaler::update(double new_scale) {
  if (!enabled_) return;
  check_scale_initialized("update");
  check_scale_value("update(new_scale)", new_scale);
  set_scale(static_cast<float>(new_scale));
  per_opt_.clear();
}

double GradScaler::get_scale() const {
  if (!enabled_) return 1.0;
  return initialized_ ? static_cast<double>(scale_) : init_scale_;
}

int64_t GradScaler::growth_tracker() const {
  if (!enabled_) return 0;
  return initialized_ ? tracker_ : init_growth_tracker_;
}

void GradScaler::set_growth_factor(double v) {
  check_growth_factor(v);
  growth_factor_ = v;
}
void GradScaler::set_backoff_factor(double v) {
  check_backoff_factor(v);
  backoff_factor_ = v;
}
void GradScaler::set_growth_interval(int64_t v) {
  check_growth_interval(v);
  growth_interval_ = v;
}

bool GradScaler::found_inf(const optim::Optimizer& opt) const {
  auto it = per_opt_.find(&opt);
  FABRIC_CHECK(
      it != per_opt_.end() && !it->second.lifetime.expired() && it->second.stage != Stage::ready,
      ValueError, "GradScaler.found_inf: this ", opt.name(),
      " optimizer was not unscaled since the last update() (call unscale_() or step() first)");
  float sum = 0;
  for (const auto& e : it->second.found_inf_per_device) sum += e.second;
  return sum != 0.0f;
}

PrecisionState GradScaler::state_dict() const {
  if (!enabled_) return {};
  return {{"scale", get_scale()},
          {"growth_factor", growth_factor_},
          {"backoff_factor", backoff_factor_},
          {"growth_interval", growth_interval_},
          {"_growth_tracker", growth_tracker()}};
}

void GradScaler::load_state_dict(const PrecisionState& s) {
  if (!enabled_) return;
  FABRIC_CHECK(!s.empty(), ValueError,
               "GradScaler.load_state_dict: the source state dict is empty, possibly because it "
               "was saved from a "
               "disabled GradScaler");
  const double scale = number_at(s, "scale");
  const double growth = number_at(s, "growth_factor");
  const double backoff = number_at(s, "backoff_factor");
  const int64_t interval = integer_at(s, "growth_interval");
  const int64_t tracker = integer_at(s, "_growth_tracker");
  // Any scale this scaler can reach loads back, as torch's load_state_dict takes any value: repeated
  // overflows back it off to 0 (spec §4 has no lower bound), so only NaN and negatives are refused.
  FABRIC_CHECK(!std::isnan(scale) && scale >= 0.0, ValueError,
               "GradScaler.load_state_dict: the loaded scale must be >= 0, got ", scale);
  check_growth_factor(growth);
  check_backoff_factor(backoff);
  check_growth_interval(interval);
  FABRIC_CHECK(tracker >= 0, ValueError,
               "GradScaler.load_state_dict: _growth_tracker must be >= 0, got ", tracker);

  init_scale_ = scale;
  growth_factor_ = growth;
  backoff_factor_ = backoff;
  growth_interval_ = interval;
  init_growth_tracker_ = tracker;
  if (initialized_) {
    set_scale(static_cast<float>(scale));
    tracker_ = tracker;
  }
}

}  // namespace fabric::precision
