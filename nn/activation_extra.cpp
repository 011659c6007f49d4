// PReLU, GLU, LogSigmoid, the shrinks, Softsign, Tanhshrink, Threshold, RReLU and
// LocalResponseNorm: the ops of tensor/ops.h with torch 1.13's options and reprs.
#include "nn/activation_extra.h"

#include "nn/init.h"
#include "nn/py_repr.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {

PReLU::PReLU(const PReLUOptions& options) : options_(options) {
  FABRIC_CHECK(options.num_parameters >= 1, ValueError,
               "PReLU: num_parameters must be at least 1, got ", options.num_parameters);
  weight = register_parameter("weight", empty({options.num_parameters}));
  reset_parameters();
}

void PReLU::reset_parameters() { init::constant_(weight, options_.init); }

Tensor PReLU::forward(const Tensor& x) { return prelu(x, weight); }

std::string PReLU::extra_repr() const {
  return detail::cat("num_parameters=", options_.num_parameters);
}

Tensor GLU::forward(const Tensor& x) { return glu(x, options_.dim); }
std::string GLU::extra_repr() const { return detail::cat("dim=", options_.dim); }

Tensor LogSigmoid::forward(const Tensor& x) { return log_sigmoid(x); }

Tensor Hardshrink::forward(const Tensor& x) { return hardshrink(x, options_.lambd); }
std::string Hardshrink::extra_repr() const { return py_float(options_.lambd); }

Tensor Softshrink::forward(const Tensor& x) { return softshrink(x, options_.lambd); }
std::string Softshrink::extra_repr() const { return py_float(options_.lambd); }

Tensor Softsign::forward(const Tensor& x) { return softsign(x); }
Tensor Tanhshrink::forward(const Tensor& x) { return tanhshrink(x); }

Tensor Threshold::forward(const Tensor& x) {
  return threshold(x, options_.threshold, options_.value);
}
// As torch prints float arguments (Threshold(0.1, 20.0)); torch echoes Python ints as ints.
std::string Threshold::extra_repr() const {
  return "threshold=" + py_float(options_.threshold) + ", value=" + py_float(options_.value);
}

// lower > upper is refused by rrelu at forward, as torch's (its constructor takes anything).
RReLU::RReLU(const RReLUOptions& options) : options_(options) {}
Tensor RReLU::forward(const Tensor& x) {
  return rrelu(x, options_.lower, options_.upper, is_training(), options_.generator);
}
std::string RReLU::extra_repr() const {
  return "lower=" + py_float(options_.lower) + ", upper=" + py_float(options_.upper);
}

LocalResponseNorm::LocalResponseNorm(const LocalResponseNormOptions& options) : options_(options) {}
Tensor LocalResponseNorm::forward(const Tensor& x) {
  return local_response_norm(x, options_.size, options_.alpha, options_.beta, options_.k);
}
std::string LocalResponseNorm::extra_repr() const {
  return detail::cat(options_.size, ", alpha=", py_float(options_.alpha),
                     ", beta=", py_float(options_.beta), ", k=", py_float(options_.k));
}

}  // namespace fabric::nn
