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

// The activation named by a config string ("relu", "gelu", "gelu_tanh", "tanh", "silu",
// "sigmoid", "identity"); ValueError listing the names otherwise.
std::shared_ptr<Module> make_activation(const std::string& name);

}  // namespace fabric::nn
