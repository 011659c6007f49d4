// DeepSpeed's fp16 loss scalers (spec §5): ZeRO's DynamicLossScaler (and static LossScaler), the
// fused FP16_Optimizer's rule, and factories from the "fp16" config block as DeepSpeed builds them.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "precision/precision_state.h"
#include "tensor/tensor.h"

namespace fabric::precision {

// DeepSpeed's DynamicLossScaler constructor defaults (not the config defaults: see
// make_zero_loss_scaler).
struct DynamicLossScalerOptions {
  double init_scale = 4294967296.0;  // 2^32
  double scale_factor = 2.0;
  int64_t scale_window = 1000;
  double min_scale = 1.0;
  int64_t delayed_shift = 1;  // "hysteresis": overflows absorbed before the scale drops
  bool consecutive_hysteresis = false;
  bool raise_error_at_min_scale = true;
};

// The ZeRO path's scaler. Dynamic (DynamicLossScaler) or static (DeepSpeed's LossScaler: a fixed
// scale, update_scale does nothing).
class DynamicLossScaler {
 public:
  // ValueError: init_scale/min_scale not finite and > 0, scale_factor <= 1, scale_window < 1,
  // delayed_shift < 1.
  explicit DynamicLossScaler(const DynamicLossScalerOptions& o = {});
  static DynamicLossScaler static_scale(double scale);

  // Called once per iteration with the (all-reduced) overflow flag. On overflow: the hysteresis
  // absorbs it, or the scale drops by scale_factor (not below min_scale; ValueError when already
  // at min_scale and raise_error_at_min_scale). Without: the scale grows every scale_window clean
  // iterations counted from the last overflow.
  void update_scale(bool overflow);

  bool is_dynamic() const { return dynamic_; }
  double cur_scale() const { return cur_scale_; }
  double loss_scale() const { return cur_scale_; }
  int64_t cur_iter() const { return cur_iter_; }
  int64_t last_overflow_iter() const { return last_overflow_iter_; }
  double scale_factor() const { return scale_factor_; }
  int64_t scale_window() const { return scale_window_; }
  double min_scale() const { return min_scale_; }
  int64_t delayed_shift() const { return delayed_shift_; }
  int64_t cur_hysteresis() const { return cur_hysteresis_; }
  bool consecutive_hysteresis() const { return consecutive_hysteresis_; }
  bool raise_error_at_min_scale() const { return raise_error_at_min_scale_; }

  // The loss backward runs on: loss as float32 times the current scale.
  Tensor scale_loss(const Tensor& loss) const;
  // The one factor that unscales and clips (ZeRO's unscale_and_clip_grads): cur_scale, times
  // max(1, (total_norm / cur_scale + 1e-6) / clip_grad) when clip_grad > 0. total_norm is the
  // norm of the still-scaled gradients.
  double combined_scale(double total_norm, double clip_grad) const;
  // grads *= 1 / combined_scale(...), in place, with the fused kernel (the factor rounded to
  // float, as a float32 tensor's mul_ by a Python float). Undefined grads are skipped.
  void unscale_and_clip_(const std::vector<Tensor>& grads, double total_norm,
                         double clip_grad) const;

  // The portable keys: cur_scale, cur_iter, last_overflow_iter, scale_factor, scale_window,
  // min_scale, delayed_shift, cur_hysteresis, consecutive_hysteresis, plus dynamic_loss_scale.
  PrecisionState state_dict() const;
  // All nine portable keys are required (dynamic_loss_scale is optional); ValueError naming the
  // key for a missing key or a value of the wrong kind, and nothing changes then.
  void load_state_dict(const PrecisionState& s);

 private:
  DynamicLossScaler(double static_scale, bool);

  bool dynamic_ = true;
  double cur_scale_;
  int64_t cur_iter_ = 0;
  int64_t last_overflow_iter_ = -1;
  double scale_factor_;
  int64_t scale_window_;
  double min_scale_;
  int64_t delayed_shift_;
  int64_t cur_hysteresis_;
  bool consecutive_hysteresis_;
  bool raise_error_at_min_scale_;
};

// The non-ZeRO fused FP16_Optimizer's scaling rule: no hysteresis, no error at the minimum; on
// overflow scale = max(scale / 2, min); growth when stable = cur_iter - last_overflow_iter - 1
// is > 0 and a multiple of the window, i.e. on the (window+1)-th clean iteration.
struct FusedLossScalerOptions {
  double init_scale = 4294967296.0;  // FP16_Optimizer's initial_dynamic_scale default, 2^32
  int64_t scale_window = 1000;
  double min_scale = 1.0;
  bool dynamic = true;
  double static_scale = 1.0;  // used when !dynamic
};

class FusedLossScaler {
 public:
  explicit FusedLossScaler(const FusedLossScalerOptions& o = {});

  // FP16_Optimizer._update_scale(skip): static scalers only count the iteration.
  void update_scale(bool overflow);

  bool is_dynamic() const { return dynamic_; }
  double cur_scale() const { return cur_scale_; }
  int64_t cur_iter() const { return cur_iter_; }
  int64_t last_overflow_iter() const { return last_overflow_iter_; }
  double scale_factor() const { return scale_factor_; }
  int64_t scale_window() const { return scale_window_; }
  double min_scale() const { return min_scale_; }

  // FP16_Optimizer's keys: dynamic_loss_scale, cur_scale, cur_iter and, when dynamic,
  // last_overflow_iter, scale_factor, scale_window.
  PrecisionState state_dict() const;
  void load_state_dict(const PrecisionState& s);

 private:
  bool dynamic_;
  double cur_scale_;
  int64_t cur_iter_ = 0;
  int64_t last_overflow_iter_ = -1;
  double scale_factor_ = 2.0;
  int64_t scale_window_;
  double min_scale_;
};

// The "fp16" block of a DeepSpeed config, each key only if present.
struct DeepSpeedFp16Config {
  bool enabled = false;                        // false: a bf16 or fp32 run
  std::optional<double> loss_scale;            // 0 (default) = dynamic, > 0 = static
  std::optional<int64_t> initial_scale_power;  // default 16
  std::optional<int64_t> loss_scale_window;    // default 1000
  std::optional<int64_t> hysteresis;           // default 2
  std::optional<bool> consecutive_hysteresis;  // default false
  std::optional<double> min_loss_scale;        // default 1
};

// The scaler DeepSpeed's ZeRO optimizer builds. The config defaults (2^16, hysteresis 2, ...)
// apply only when at least one of initial_scale_power, loss_scale_window, hysteresis,
// consecutive_hysteresis, min_loss_scale is present; otherwise (e.g. just {"enabled": true}) the
// scaler gets its constructor defaults: 2^32, window 1000, hysteresis 1, min 1. loss_scale > 0
// gives a static scaler; fp16 disabled gives a static scale of 1.
DynamicLossScaler make_zero_loss_scaler(const DeepSpeedFp16Config& fp16);
// The scaler of the fused FP16_Optimizer built by the engine: with none of the dynamic keys it
// keeps window 1000 and min 1 but starts at the engine's initial_dynamic_scale, which is
// 2^initial_scale_power with the config default 16.
FusedLossScaler make_fused_loss_scaler(const DeepSpeedFp16Config& fp16);

// Whether any defined gradient holds an inf or NaN (elementwise, one fused read-only pass each).
bool has_overflow(const std::vector<Tensor>& grads);

}  // namespace fabric::precision
