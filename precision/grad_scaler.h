// Dynamic loss scaling for float16 training, torch.amp.GradScaler's semantics (spec §4);
// allow_fp16_grads gives FSDP's ShardedGradScaler.
#pragma once
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "optim/optimizer.h"
#include "precision/precision_state.h"
#include "tensor/tensor.h"

namespace fabric::precision {

struct GradScalerOptions {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;
  bool allow_fp16_grads = false;  // true = ShardedGradScaler behaviour
};

class GradScaler {
 public:
  // ValueError (when enabled, as the reference checks only then): growth_factor <= 1,
  // backoff_factor outside (0, 1), growth_interval < 1, init_scale not finite and > 0.
  explicit GradScaler(const GradScalerOptions& o = {});

  bool is_enabled() const { return enabled_; }

  // loss * scale, the scale being a 0-dim float32 tensor on the loss's device (created on the
  // first call, so ordinary type promotion applies). The identity when disabled.
  Tensor scale(const Tensor& loss);

  // Divides the optimizer's gradients by the scale in place (inverse taken in double, rounded
  // to float) and records whether any was inf/NaN. Error if called twice for this optimizer
  // since the last update(), or after step(). No-op when disabled.
  void unscale_(optim::Optimizer& opt);
  // unscale_ if not done yet, then opt.step() unless a gradient was inf/NaN. Returns whether the
  // optimizer stepped. Error if step() was already called since the last update().
  bool step(optim::Optimizer& opt);
  // Once per iteration, after every step(): backs off on any recorded inf/NaN, else counts a
  // clean iteration and grows the scale every growth_interval of them (if it stays finite).
  // Resets every optimizer's stage. Error when no optimizer was unscaled since the last update.
  void update();
  // Sets the scale (ValueError unless finite and > 0) and resets the optimizers' stages.
  void update(double new_scale);

  double get_scale() const;  // 1.0 when disabled; init_scale before the first scale()
  int64_t growth_tracker() const;
  double growth_factor() const { return growth_factor_; }
  void set_growth_factor(double v);
  double backoff_factor() const { return backoff_factor_; }
  void set_backoff_factor(double v);
  int64_t growth_interval() const { return growth_interval_; }
  void set_growth_interval(int64_t v);
  bool allow_fp16_grads() const { return allow_fp16_; }

  // After unscale_/step and before update(): did this optimizer's gradients hold inf/NaN (after
  // the found_inf reducer, if any). ValueError when it was not unscaled since the last update.
  bool found_inf(const optim::Optimizer& opt) const;

  // {} when disabled; else "scale" (double), "growth_factor", "backoff_factor" (double),
  // "growth_interval", "_growth_tracker" (int64). Save it after update().
  PrecisionState state_dict() const;
  // No-op when disabled. An empty dict into an enabled scaler is a ValueError (it was saved from a
  // disabled one); missing keys or values of the wrong kind are ValueErrors and change nothing.
  void load_state_dict(const PrecisionState& s);

  // For the sharded scaler: called at the end of unscale_ with each device's found_inf (a 0-dim
  // float32 tensor holding 0 or 1), e.g. to all-reduce (SUM) it over the process group so every
  // rank skips together. The step is skipped when the value afterwards is > 0. Default: none.
  void set_found_inf_reducer(std::function<void(Tensor&)> fn) { reducer_ = std::move(fn); }

 private:
  enum class Stage : uint8_t { ready, unscaled, stepped };
  struct OptState {
    Stage stage = Stage::ready;
    std::vector<std::pair<Device, float>> found_inf_per_device;  // recorded by unscale_
    std::weak_ptr<const void> lifetime;  // the optimizer's (Optimizer::lifetime)
  };
  // The entry of `opt`, started afresh when the one at its address belonged to an optimizer since
  // destroyed: a new optimizer that happens to get a dead one's address is a new optimizer, not
  // one halfway through an abandoned iteration.
  OptState& state_of(const optim::Optimizer& opt);

  void check_scale_initialized(const char* fn) const;
  void set_scale(float s);

  bool enabled_;
  bool allow_fp16_;
  double init_scale_;
  double growth_factor_;
  double backoff_factor_;
  int64_t growth_interval_;
  int64_t init_growth_tracker_ = 0;

  bool initialized_ = false;  // the reference's lazily created _scale / _growth_tracker
  float scale_ = 0;
  int64_t tracker_ = 0;
  Tensor scale_tensor_;  // the 0-dim float32 copy of scale_ that scale() multiplies by

  std::unordered_map<const optim::Optimizer*, OptState> per_opt_;
  std::function<void(Tensor&)> reducer_;
};

}  // namespace fabric::precision
