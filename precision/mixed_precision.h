// Mixed precision (16-mixed, bf16-mixed): weights stay float32, the forward runs in an autocast
// region of float16/bfloat16, and 16-mixed scales the loss with a GradScaler (spec §3, §4).
// Unlike the reference, 16-mixed on CPU stays float16 (this runtime has CPU float16 kernels)
// with a real loss scaler instead of silently becoming bf16-mixed.
#pragma once
#include <memory>
#include <string>

#include "precision/grad_scaler.h"
#include "precision/precision.h"

namespace fabric::precision {

class MixedPrecision : public Precision {
 public:
  // precision: "16-mixed" or "bf16-mixed" (ValueError otherwise). device: the autocast device
  // type. scaler: 16-mixed creates a default GradScaler when none is given; bf16-mixed with a
  // scaler is a ValueError, as in the reference.
  MixedPrecision(const std::string& precision, DeviceType device,
                 std::shared_ptr<GradScaler> scaler = nullptr);

  std::string name() const override { return precision_; }
  DType dtype() const { return dtype_; }
  DeviceType device() const { return device_; }
  // Null under bf16-mixed.
  GradScaler* scaler() const { return scaler_.get(); }

  // Floating inputs are cast to the half dtype (the reference does this too); outputs -> float32.
  Tensor convert_input(const Tensor& input) const override;
  Tensor convert_output(const Tensor& output) const override;
  ContextGuard forward_context() override;

  // Scales the loss (16-mixed) before backward.
  void backward(const Tensor& loss, nn::Module* module, const Tensor& gradient = Tensor(),
                std::optional<bool> retain_graph = std::nullopt, bool create_graph = false) override;
  bool requires_fabric_backward() const override { return true; }
  // With a scaler: scaler.step (skipped on inf/NaN gradients) then scaler.update().
  bool optimizer_step(optim::Optimizer& optimizer, nn::Module* module,
                      const std::function<Tensor()>& closure = nullptr) override;
  void unscale_gradients(optim::Optimizer& optimizer) override;
  PrecisionState state_dict() const override;
  void load_state_dict(const PrecisionState& state) override;

 private:
  std::string precision_;
  DType dtype_;
  DeviceType device_;
  std::shared_ptr<GradScaler> scaler_;
};

}  // namespace fabric::precision
