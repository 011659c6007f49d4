// MixedPrecision: autocast forward, float32 weights, GradScaler under 16-mixed.
#include "precision/mixed_precision.h"

#include "optim/lbfgs.h"
#include "precision/true_precision.h"

namespace fabric::precision {

MixedPrecision::MixedPrecision(const std::string& precision, DeviceType device,
                               std::shared_ptr<GradScaler> scaler)
    : precision_(precision), device_(device), scaler_(std::move(scaler)) {
  FABRIC_CHECK(precision == "16-mixed" || precision == "bf16-mixed", ValueError,
               "MixedPrecision: precision must be '16-mixed' or 'bf16-mixed', got '", precision, "'");
  dtype_ = precision == "16-mixed" ? DType::float16 : DType::bfloat16;
  if (precision == "16-mixed" && !scaler_) scaler_ = std::make_shared<GradScaler>();
  FABRIC_CHECK(!(precision == "bf16-mixed" && scaler_), ValueError,
               "MixedPrecision: `precision='bf16-mixed'` does not use a scaler, found a GradScaler");
}

Tensor MixedPrecision::convert_input(const Tensor& input) const { return cast_floating(input, dtype_); }

Tensor MixedPrecision::convert_output(const Tensor& output) const {
  return cast_floating(output, default_float_dtype());
}

ContextGuard MixedPrecision::forward_context() { return autocast_context(device_, dtype_); }

void MixedPrecision::backward(const Tensor& loss, nn::Module* module, const Tensor& gradient,
                              std::optional<bool> retain_graph, bool create_graph) {
  const Tensor scaled = scaler_ ? scaler_->scale(loss) : loss;
  Precision::backward(scaled, module, gradient, retain_graph, create_graph);
}

bool MixedPrecision::optimizer_step(optim::Optimizer& optimizer, nn::Module* module,
                                    const std::function<Tensor()>& closure) {
  if (!scaler_) return Precision::optimizer_step(optimizer, module, closure);
  // LBFGS evaluates the loss inside its step, which the scaler can neither unscale first nor skip:
  // refused before anything runs, as the reference's MixedPrecision (a TypeError there).
  FABRIC_CHECK(dynamic_cast<const optim::LBFGS*>(&optimizer) == nullptr, DTypeError,
               "AMP and the LBFGS optimizer are not compatible.");
  // GradScaler does not take closures: run it first (forward + Fabric::backward), then step.
  if (closure) closure();
  const bool stepped = scaler_->step(optimizer);
  scaler_->update();
  return stepped;
}

void MixedPrecision::unscale_gradients(optim::Optimizer& optimizer) {
  if (scaler_) scaler_->unscale_(optimizer);
}

PrecisionState MixedPrecision::state_dict() const {
  return scaler_ ? scaler_->state_dict() : PrecisionState{};
}

void MixedPrecision::load_state_dict(const PrecisionState& state) {
  if (scaler_) scaler_->load_state_dict(state);
}

}  // namespace fabric::precision
