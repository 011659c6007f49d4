// Activations (torch.nn's, with their reprs), Dropout, Flatten.
#include "nn/activation.h"

#include <cmath>

#include "nn/py_repr.h"
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

namespace {
// torch.nn.Softplus's defaults are Python ints (beta=1, threshold=20): integral values print so.
std::string py_number(double v) {
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 1e15)
    return std::to_string(static_cast<int64_t>(v));
  return py_float(v);
}
}  // namespace

Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, options_.negative_slope); }
std::string LeakyReLU::extra_repr() const {
  return "negative_slope=" + py_float(options_.negative_slope);
}

Tensor ELU::forward(const Tensor& x) { return elu(x, options_.alpha); }
std::string ELU::extra_repr() const { return "alpha=" + py_float(options_.alpha); }

Tensor SELU::forward(const Tensor& x) { return selu(x); }

CELU::CELU(const CELUOptions& options) : options_(options) {
  FABRIC_CHECK(options.alpha != 0.0, ValueError,
               "CELU: alpha cannot be 0 (celu divides by it), got ", options.alpha);
}
Tensor CELU::forward(const Tensor& x) { return celu(x, options_.alpha); }
std::string CELU::extra_repr() const { return "alpha=" + py_float(options_.alpha); }

Tensor Softplus::forward(const Tensor& x) { return softplus(x, options_.beta, options_.threshold); }
std::string Softplus::extra_repr() const {
  return "beta=" + py_number(options_.beta) + ", threshold=" + py_number(options_.threshold);
}

Hardtanh::Hardtanh(const HardtanhOptions& options) : options_(options) {
  FABRIC_CHECK(options.max_val > options.min_val, ValueError,
               "Hardtanh: max_val must be greater than min_val, got min_val=", options.min_val,
               ", max_val=", options.max_val);
}
Tensor Hardtanh::forward(const Tensor& x) {
  return hardtanh(x, options_.min_val, options_.max_val);
}
std::string Hardtanh::extra_repr() const {
  return "min_val=" + py_float(options_.min_val) + ", max_val=" + py_float(options_.max_val);
}

Tensor ReLU6::forward(const Tensor& x) { return relu6(x); }
Tensor Mish::forward(const Tensor& x) { return mish(x); }
Tensor Hardswish::forward(const Tensor& x) { return hardswish(x); }
Tensor Hardsigmoid::forward(const Tensor& x) { return hardsigmoid(x); }

Dropout::Dropout(const DropoutOptions& options) : options_(options) {
  FABRIC_CHECK(options.p >= 0.0 && options.p <= 1.0, ValueError,
               "Dropout: probability has to be between 0 and 1, but got ", options.p);
}

Tensor Dropout::forward(const Tensor& x) {
  return dropout(x, options_.p, is_training(), options_.generator);
}

std::string Dropout::extra_repr() const { return "p=" + py_float(options_.p) + ", inplace=False"; }

Flatten::Flatten(const FlattenOptions& options) : options_(options) {}

Tensor Flatten::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "Flatten: got an undefined tensor");
  return x.flatten(options_.start_dim, options_.end_dim);
}

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
  if (name == "leaky_relu") return std::make_shared<LeakyReLU>();
  if (name == "elu") return std::make_shared<ELU>();
  if (name == "selu") return std::make_shared<SELU>();
  if (name == "celu") return std::make_shared<CELU>();
  if (name == "softplus") return std::make_shared<Softplus>();
  if (name == "hardtanh") return std::make_shared<Hardtanh>();
  if (name == "relu6") return std::make_shared<ReLU6>();
  if (name == "mish") return std::make_shared<Mish>();
  if (name == "hardswish") return std::make_shared<Hardswish>();
  if (name == "hardsigmoid") return std::make_shared<Hardsigmoid>();
  throw ValueError("unknown activation \"" + name +
                   "\" (expected relu, gelu, gelu_tanh, tanh, silu, sigmoid, identity, leaky_relu, "
                   "elu, selu, celu, softplus, hardtanh, relu6, mish, hardswish or hardsigmoid)");
}

}  // namespace fabric::nn
