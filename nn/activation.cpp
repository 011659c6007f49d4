// Activations, Dropout, Flatten.
#include "nn/activation.h"

#include "tensor/ops.h"

namespace fabric::nn {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor SiLU::forward(const Tensor& x) { return silu(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

GELU::GELU(const GELUOptions& options) : options_(options) {
  FABRIC_CHECK(options.approximate == "none" || options.approximate == "tanh", ValueError,
               "GELU: approximate must be \"none\" or \"tanh\", got \"", options.approximate, "\"");
}

Tensor GELU::forward(const Tensor& x) { return gelu(x, options_.approximate); }

std::string GELU::extra_repr() const { return "approximate='" + options_.approximate + "'"; }

Dropout::Dropout(const DropoutOptions& options) : options_(options) {
  FABRIC_CHECK(options.p >= 0.0 && options.p <= 1.0, ValueError,
               "Dropout: probability has to be between 0 and 1, but got ", options.p);
}

Tensor Dropout::forward(const Tensor& x) {
  return dropout(x, options_.p, is_training(), options_.generator);
}

std::string Dropout::extra_repr() const { return detail::cat("p=", options_.p); }

Flatten::Flatten(const FlattenOptions& options) : options_(options) {}

Tensor Flatten::forward(const Tensor& x) { return x.flatten(options_.start_dim, options_.end_dim); }

std::string Flatten::extra_repr() const {
  return detail::cat("start_dim=", options_.start_dim, ", end_dim=", options_.end_dim);
}

std::shared_ptr<Module> make_activation(const std::string& name) {
  if (name == "relu") return std::make_shared<ReLU>();
  if (name == "gelu") return std::make_shared<GELU>();
  if (name == "gelu_tanh") return std::make_shared<GELU>(GELUOptions{.approximate = "tanh"});
  if (name == "tanh") return std::make_shared<Tanh>();
  if (name == "silu") return std::make_shared<SiLU>();
  if (name == "sigmoid") return std::make_shared<Sigmoid>();
  if (name == "identity") return std::make_shared<Identity>();
  throw ValueError("unknown activation \"" + name +
                   "\" (expected relu, gelu, gelu_tanh, tanh, silu, sigmoid or identity)");
}

}  // namespace fabric::nn
