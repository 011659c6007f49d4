// Bilinear: torch.nn.Bilinear, y = x1^T W x2 + b over the last dims of two inputs.
#pragma once
#include "nn/module.h"

namespace fabric::nn {

struct BilinearOptions {
  int64_t in1_features = 0;
  int64_t in2_features = 0;
  int64_t out_features = 0;
  bool bias = true;
};

// y_k = x1^T W_k x2 + b_k. weight (out_features, in1_features, in2_features) and bias
// (out_features) ~ U(-1/sqrt(in1_features), 1/sqrt(in1_features)), as torch's
// reset_parameters. Keys: weight, bias.
class Bilinear : public Module {
 public:
  using Options = BilinearOptions;
  explicit Bilinear(const BilinearOptions& options);
  using Module::forward;
  using Module::operator();
  // (..., in1_features), (..., in2_features) -> (..., out_features)
  Tensor forward(const Tensor& x1, const Tensor& x2);
  Tensor operator()(const Tensor& x1, const Tensor& x2) {
    return call_with_hooks(x1, [&](const Tensor& a) { return forward(a, x2); });
  }
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "Bilinear"; }
  std::string extra_repr() const override;
  const BilinearOptions& options() const { return options_; }

  Tensor weight;  // (out_features, in1_features, in2_features)
  Tensor bias;    // (out_features), undefined when bias = false

 private:
  BilinearOptions options_;
};

}  // namespace fabric::nn
