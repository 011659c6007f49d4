// FSDPPrecision, the precision plugin of strategy fsdp (fabric-api.md §3, spec §9): the param /
// reduce / buffer dtypes FSDP gathers, reduces and keeps buffers in, and the forward treatment.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "precision/grad_scaler.h"
#include "precision/precision.h"

namespace fabric::precision {

// The dtypes FSDP uses for one mode (spec §9's MixedPrecision): the all-gather and compute dtype,
// the gradient reduction's dtype, and the buffers' dtype.
struct FSDPMixedPrecisionConfig {
  DType param_dtype = DType::float32;
  DType reduce_dtype = DType::float32;
  DType buffer_dtype = DType::float32;
};

// The 5 modes (32-true, 16-true, bf16-true, 16-mixed, bf16-mixed), built from the plugins of the
// same mode (MixedPrecision, HalfPrecision, the 32-true base) by delegation:
// - mixed modes keep the module in float32: its flat shards are the float32 master weights the
//   optimizer steps and checkpoints hold; FSDP gathers them in param_dtype (fp16/bf16) and the
//   forward runs in an autocast region. 16-mixed scales the loss with a GradScaler.
// - true modes cast the module (the shards then keep that dtype) and run the forward in a dtype
//   context. Unlike the reference, no warning that FSDP keeps a full-precision copy: here it keeps
//   none, the shards are the module's own dtype.
// - module and tensor init contexts: float32 for the mixed modes (the reference's #21586 fix; its
//   tensor_init_context still used the half dtype), the half dtype for the true modes.
// - inputs are cast to the mode's dtype (float32 for 32-true), outputs back to the default dtype.
// The scaler of 16-mixed is a sharded one: each rank finds inf/NaN only in its own gradient shard,
// so Fabric installs a found_inf reducer (MAX over every rank) and all ranks skip a step together.
class FSDPPrecision : public Precision {
 public:
  // precision: one of modes() (ValueError listing them otherwise). device: the autocast device
  // type of the mixed modes. scaler: 16-mixed creates GradScaler({.allow_fp16_grads = true}) when
  // none is given and accepts a user's (the reference always raised, its bug #19803); a scaler
  // with any other mode is a ValueError, as in MixedPrecision.
  explicit FSDPPrecision(const std::string& precision, DeviceType device = DeviceType::cpu,
                         std::shared_ptr<GradScaler> scaler = nullptr);

  static const std::vector<std::string>& modes();

  std::string name() const override { return precision_; }
  // The compute dtype: float16 for 16-*, bfloat16 for bf16-*, float32 for 32-true.
  DType dtype() const { return dtype_; }
  bool is_mixed() const { return mixed_; }
  // param, reduce and buffer dtype all equal dtype() (fabric-api.md §3).
  FSDPMixedPrecisionConfig mixed_precision_config() const { return {dtype_, dtype_, dtype_}; }
  // Null unless 16-mixed.
  GradScaler* scaler() const { return scaler_.get(); }

  void convert_module(nn::Module& module) override { impl_->convert_module(module); }
  Tensor convert_input(const Tensor& input) const override;
  Tensor convert_output(const Tensor& output) const override;
  ContextGuard forward_context() override { return impl_->forward_context(); }
  ContextGuard module_init_context() override { return impl_->module_init_context(); }
  ContextGuard tensor_init_context() override { return impl_->tensor_init_context(); }

  Tensor pre_backward(const Tensor& loss, nn::Module* module) override {
    return impl_->pre_backward(loss, module);
  }
  void backward(const Tensor& loss, nn::Module* module, const Tensor& gradient = Tensor(),
                std::optional<bool> retain_graph = std::nullopt, bool create_graph = false) override {
    impl_->backward(loss, module, gradient, retain_graph, create_graph);
  }
  Tensor post_backward(const Tensor& loss, nn::Module* module) override {
    return impl_->post_backward(loss, module);
  }
  bool requires_fabric_backward() const override { return impl_->requires_fabric_backward(); }
  bool optimizer_step(optim::Optimizer& optimizer, nn::Module* module,
                      const std::function<Tensor()>& closure = nullptr) override {
    return impl_->optimizer_step(optimizer, module, closure);
  }
  void unscale_gradients(optim::Optimizer& optimizer) override {
    impl_->unscale_gradients(optimizer);
  }
  PrecisionState state_dict() const override { return impl_->state_dict(); }
  void load_state_dict(const PrecisionState& state) override { impl_->load_state_dict(state); }

 private:
  std::string precision_;
  DType dtype_ = DType::float32;
  bool mixed_ = false;
  std::shared_ptr<GradScaler> scaler_;
  std::shared_ptr<Precision> impl_;  // MixedPrecision, HalfPrecision or the 32-true base
};

}  // namespace fabric::precision
