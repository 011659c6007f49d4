// The activation layers of torch.nn added beside nn/activation.h's: PReLU (a learned slope), GLU,
// LogSigmoid, Hardshrink, Softshrink, Softsign, Tanhshrink, Threshold, RReLU (random slopes while
// training) and LocalResponseNorm, with torch 1.13's options, keys and reprs. Their functional
// forms are in tensor/ops.h.
#pragma once
#include <string>

#include "nn/module.h"

namespace fabric::nn {

struct PReLUOptions {
  int64_t num_parameters = 1;  // 1, or the input's channel count (dim 1)
  double init = 0.25;          // every slope's initial value
};

// x > 0 ? x : weight * x, weight (num_parameters) broadcast over dim 1. Key: weight.
class PReLU : public Module {
 public:
  using Options = PReLUOptions;
  explicit PReLU(const PReLUOptions& options = {});
  Tensor forward(const Tensor& x) override;
  void reset_parameters();  // every slope back to options().init, as torch's
  std::string type_name() const override { return "PReLU"; }
  std::string extra_repr() const override;
  const PReLUOptions& options() const { return options_; }

  Tensor weight;  // (num_parameters)

 private:
  PReLUOptions options_;
};

struct GLUOptions {
  int64_t dim = -1;  // the dim halved into a * sigmoid(b)
};

class GLU : public Module {
 public:
  using Options = GLUOptions;
  explicit GLU(const GLUOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GLU"; }
  std::string extra_repr() const override;
  const GLUOptions& options() const { return options_; }

 private:
  GLUOptions options_;
};

class LogSigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LogSigmoid"; }
};

struct ShrinkOptions {
  double lambd = 0.5;
};

class Hardshrink : public Module {
 public:
  using Options = ShrinkOptions;
  explicit Hardshrink(const ShrinkOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Hardshrink"; }
  std::string extra_repr() const override;
  const ShrinkOptions& options() const { return options_; }

 private:
  ShrinkOptions options_;
};

class Softshrink : public Module {
 public:
  using Options = ShrinkOptions;
  explicit Softshrink(const ShrinkOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Softshrink"; }
  std::string extra_repr() const override;
  const ShrinkOptions& options() const { return options_; }

 private:
  ShrinkOptions options_;
};

class Softsign : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Softsign"; }
};

class Tanhshrink : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Tanhshrink"; }
};

// torch.nn.Threshold has no defaults: both are required.
struct ThresholdOptions {
  double threshold;
  double value;
};

class Threshold : public Module {
 public:
  using Options = ThresholdOptions;
  explicit Threshold(const ThresholdOptions& options) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Threshold"; }
  std::string extra_repr() const override;
  const ThresholdOptions& options() const { return options_; }

 private:
  ThresholdOptions options_;
};

struct RReLUOptions {
  double lower = 1.0 / 8;
  double upper = 1.0 / 3;
  Generator* generator = nullptr;  // the slopes' draws while training; null: the default one
};

// Training: each negative element's slope drawn from U(lower, upper); eval: (lower + upper) / 2.
class RReLU : public Module {
 public:
  using Options = RReLUOptions;
  explicit RReLU(const RReLUOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "RReLU"; }
  std::string extra_repr() const override;
  const RReLUOptions& options() const { return options_; }

 private:
  RReLUOptions options_;
};

struct LocalResponseNormOptions {
  int64_t size = 0;  // channels per window (required)
  double alpha = 1e-4;
  double beta = 0.75;
  double k = 1.0;
};

class LocalResponseNorm : public Module {
 public:
  using Options = LocalResponseNormOptions;
  explicit LocalResponseNorm(const LocalResponseNormOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LocalResponseNorm"; }
  std::string extra_repr() const override;
  const LocalResponseNormOptions& options() const { return options_; }

 private:
  LocalResponseNormOptions options_;
};

}  // namespace fabric::nn
