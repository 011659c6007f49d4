// Linear8bitLt: bitsandbytes' LLM.int8 linear (spec §7): int8 row-quantized weight + SCB, the
// int8 GEMM with fp16 outlier columns (threshold 6), and dX = dY · f16(CB · SCB / 127) in backward.
#pragma once
#include "nn/linear.h"
#include "nn/module.h"

namespace fabric::precision {

struct Linear8bitLtOptions {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool bias = true;
  // true (int8-training): an fp16 trainable weight, re-quantized by a forward in training mode
  // while it has no .grad (bitsandbytes' rule); false (int8): frozen int8 weight and SCB.
  bool has_fp16_weights = false;
  double threshold = 6.0;
};

// Keys (bitsandbytes'): weight (int8 (out, in)), bias, SCB (fp32 (out)), weight_format (uint8
// scalar, 0 = row-major); with has_fp16_weights weight (fp16) and bias only. Computes in fp16;
// returns x's dtype.
class Linear8bitLt : public nn::Module {
 public:
  using Options = Linear8bitLtOptions;
  explicit Linear8bitLt(const Linear8bitLtOptions& options);
  // Casts `linear`'s weight to fp16 and (frozen mode) quantizes it row-wise without threshold.
  static std::shared_ptr<Linear8bitLt> from_linear(const nn::Linear& linear, bool has_fp16_weights,
                                                   double threshold = 6.0);
  // (..., in_features) -> (..., out_features). Gradients reach x and bias (and, with
  // has_fp16_weights, the fp16 weight: dW = dYᵀ · X through bitsandbytes' int8 GEMM of the
  // column-quantized dY and X, with X's outlier columns in 16-bit; spec §7 Backward).
  Tensor forward(const Tensor& x) override;
  // CB · SCB / 127 as float32 (out, in): the weight the int8 GEMM stands for.
  Tensor dequantized_weight() const;
  std::string type_name() const override { return "Linear8bitLt"; }
  bool ddp_broadcasts_buffers() const override { return false; }  // fixed by the quantization
  std::string extra_repr() const override;
  const Linear8bitLtOptions& options() const { return options_; }
  int64_t quantized_weight_bytes() const;

  // int8 (out, in) frozen, or fp16 (out, in) trainable; a trainable weight that Module::to made
  // another float dtype is cast back to fp16 for each forward's quantization, as bitsandbytes does.
  Tensor weight;
  Tensor bias;    // float32 (out) or undefined
  Tensor SCB;     // float32 (out): per-row absmax of the fp16 weight

 private:
  // Frozen int8 mode: a float weight in a loaded state dict (the unconverted model's checkpoint)
  // is quantized row-wise, as at conversion, into weight, SCB and weight_format before it loads.
  void prepare_loaded_state(const std::string& prefix, nn::StateDict& state) const override;
  Linear8bitLt(const Linear8bitLtOptions& options, int);
  // requires_grad: of the trainable fp16 weight (has_fp16_weights); the int8 one is always frozen.
  void set_weight_fp16(const Tensor& w16, bool requires_grad);
  Linear8bitLtOptions options_;
  // has_fp16_weights: the int8 weight of the last quantization, reused while the rule above does
  // not quantize again (bitsandbytes' state.CB); dropped when a state dict is loaded.
  mutable Tensor CB_;
};

}  // namespace fabric::precision
