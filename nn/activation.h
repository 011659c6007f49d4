// Parameter-free layers: activations, Dropout (which follows train/eval), Flatten, Identity.
#pragma once
#include <string>

#include "nn/module.h"

namespace fabric::nn {

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ReLU"; }
};

struct GELUOptions {
  std::string approximate = "none";  // "none" (erf) or "tanh", as torch.nn.GELU
};

class GELU : public Module {
 public:
  using Options = GELUOptions;
  explicit GELU(const GELUOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GELU"; }
  std::string extra_repr() const override;
  const GELUOptions& options() const { return options_; }

 private:
  GELUOptions options_;
};

class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "SiLU"; }
};

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Tanh"; }
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sigmoid"; }
};

// ---- parameterised activations, as torch.nn (their functional forms: tensor/ops.h) -----------

struct LeakyReLUOptions {
  double negative_slope = 0.01;
};

class LeakyReLU : public Module {
 public:
  using Options = LeakyReLUOptions;
  explicit LeakyReLU(const LeakyReLUOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LeakyReLU"; }
  std::string extra_repr() const override;
  const LeakyReLUOptions& options() const { return options_; }

 private:
  LeakyReLUOptions options_;
};

struct ELUOptions {
  double alpha = 1.0;
};

class ELU : public Module {
 public:
  using Options = ELUOptions;
  explicit ELU(const ELUOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ELU"; }
  std::string extra_repr() const override;
  const ELUOptions& options() const { return options_; }

 private:
  ELUOptions options_;
};

class SELU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "SELU"; }
};

struct CELUOptions {
  double alpha = 1.0;  // not 0 (celu divides by it)
};

class CELU : public Module {
 public:
  using Options = CELUOptions;
  explicit CELU(const CELUOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "CELU"; }
  std::string extra_repr() const override;
  const CELUOptions& options() const { return options_; }

 private:
  CELUOptions options_;
};

struct SoftplusOptions {
  double beta = 1.0;
  double threshold = 20.0;  // beta * x above it: x itself
};

class Softplus : public Module {
 public:
  using Options = SoftplusOptions;
  explicit Softplus(const SoftplusOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Softplus"; }
  std::string extra_repr() const override;
  const SoftplusOptions& options() const { return options_; }

 private:
  SoftplusOptions options_;
};

struct HardtanhOptions {
  double min_val = -1.0;
  double max_val = 1.0;  // greater than min_val, as torch.nn.Hardtanh asserts
};

class Hardtanh : public Module {
 public:
  using Options = HardtanhOptions;
  explicit Hardtanh(const HardtanhOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Hardtanh"; }
  std::string extra_repr() const override;
  const HardtanhOptions& options() const { return options_; }

 private:
  HardtanhOptions options_;
};

class ReLU6 : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ReLU6"; }
};

class Mish : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Mish"; }
};

class Hardswish : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Hardswish"; }
};

class Hardsigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Hardsigmoid"; }
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

struct DropoutOptions {
  double p = 0.5;
  Generator* generator = nullptr;  // null: the default generator
};

// Inverted dropout while training; the identity in eval mode or when p == 0.
class Dropout : public Module {
 public:
  using Options = DropoutOptions;
  explicit Dropout(const DropoutOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override;
  const DropoutOptions& options() const { return options_; }

 private:
  DropoutOptions options_;
};

struct FlattenOptions {
  int64_t start_dim = 1;
  int64_t end_dim = -1;
};

class Flatten : public Module {
 public:
  using Options = FlattenOptions;
  explicit Flatten(const FlattenOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Flatten"; }
  std::string extra_repr() const override;

 private:
  FlattenOptions options_;
};

// The activation named by a config string, with its default parameters: "relu", "gelu",
// "gelu_tanh", "tanh", "silu", "sigmoid", "identity" and torch's lower-case names "leaky_relu",
// "elu", "selu", "celu", "softplus", "hardtanh", "relu6", "mish", "hardswish", "hardsigmoid";
// ValueError listing the names otherwise.
std::shared_ptr<Module> make_activation(const std::string& name);

}  // namespace fabric::nn
