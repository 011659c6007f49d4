// LayerNorm and RMSNorm over the trailing `normalized_shape` dims, as torch.nn.
#pragma once
#include <optional>

#include "nn/module.h"

namespace fabric::nn {

struct LayerNormOptions {
  Shape normalized_shape;
  double eps = 1e-5;
  bool elementwise_affine = true;
  bool bias = true;  // torch >= 2.1's LayerNorm(bias=False), nanoGPT's bias-free LayerNorm
};

// Keys: weight (ones), bias (zeros); each only when elementwise_affine (bias also needs bias).
class LayerNorm : public Module {
 public:
  using Options = LayerNormOptions;
  explicit LayerNorm(const LayerNormOptions& options);
  Tensor forward(const Tensor& x) override;
  void reset_parameters();
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override;
  const LayerNormOptions& options() const { return options_; }

  Tensor weight;  // normalized_shape, or undefined
  Tensor bias;    // normalized_shape, or undefined

 private:
  LayerNormOptions options_;
};

struct RMSNormOptions {
  Shape normalized_shape;
  std::optional<double> eps = std::nullopt;  // unset: finfo(input dtype).eps, as torch
  bool elementwise_affine = true;
};

// x / sqrt(mean(x^2) + eps) * weight. Key: weight (ones), when elementwise_affine.
class RMSNorm : public Module {
 public:
  using Options = RMSNormOptions;
  explicit RMSNorm(const RMSNormOptions& options);
  Tensor forward(const Tensor& x) override;
  void reset_parameters();
  std::string type_name() const override { return "RMSNorm"; }
  std::string extra_repr() const override;
  const RMSNormOptions& options() const { return options_; }

  Tensor weight;

 private:
  RMSNormOptions options_;
};

}  // namespace fabric::nn
