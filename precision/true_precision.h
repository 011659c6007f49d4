// "True" precision (spec §2): the whole module, its gradients and optimizer state in one dtype,
// no autocast, no loss scaling. DoublePrecision is 64-true; HalfPrecision is 16-true or bf16-true.
#pragma once
#include <string>

#include "precision/precision.h"

namespace fabric::precision {

class TruePrecision : public Precision {
 public:
  DType dtype() const { return dtype_; }
  std::string name() const override;
  // Every floating parameter and buffer becomes dtype (RNE), handles kept.
  void convert_module(nn::Module& module) override;
  // Floating inputs -> dtype; outputs -> the default dtype (float32 outside the contexts).
  Tensor convert_input(const Tensor& input) const override;
  Tensor convert_output(const Tensor& output) const override;
  // Tensors created in forward and at init use dtype (torch.set_default_dtype for the scope).
  ContextGuard forward_context() override;
  ContextGuard tensor_init_context() override;

 protected:
  explicit TruePrecision(DType dtype);

 private:
  DType dtype_;
};

// 64-true.
class DoublePrecision : public TruePrecision {
 public:
  DoublePrecision() : TruePrecision(DType::float64) {}
};

// 16-true (float16, the default) or bf16-true (bfloat16).
class HalfPrecision : public TruePrecision {
 public:
  // "16-true" or "bf16-true"; anything else is a ValueError listing those two.
  explicit HalfPrecision(const std::string& precision = "16-true");
};

// Casts a floating tensor to dtype; integer and bool tensors (and undefined ones) pass through.
Tensor cast_floating(const Tensor& t, DType dtype);

}  // namespace fabric::precision
