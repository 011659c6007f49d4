// LayerNorm and RMSNorm.
#include "nn/normalization.h"

#include "nn/init.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {

namespace {
void check_shape(const char* layer, const Shape& s) {
  FABRIC_CHECK(!s.empty(), ValueError, layer, ": normalized_shape must not be empty");
  for (int64_t d : s) {
    FABRIC_CHECK(d >= 0, ValueError, layer, ": normalized_shape ", shape_str(s),
                 " has a negative size");
  }
}
}  // namespace

LayerNorm::LayerNorm(const LayerNormOptions& options) : options_(options) {
  check_shape("LayerNorm", options.normalized_shape);
  FABRIC_CHECK(options.eps >= 0, ValueError, "LayerNorm: eps must be >= 0, got ", options.eps);
  if (options.elementwise_affine) {
    weight = register_parameter("weight", empty(options.normalized_shape));
    if (options.bias) bias = register_parameter("bias", empty(options.normalized_shape));
  }
  reset_parameters();
}

void LayerNorm::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
}

Tensor LayerNorm::forward(const Tensor& x) {
  return layer_norm(x, options_.normalized_shape, weight, bias, options_.eps);
}

std::string LayerNorm::extra_repr() const {
  return detail::cat(shape_str(options_.normalized_shape), ", eps=", options_.eps,
                     ", elementwise_affine=", options_.elementwise_affine ? "true" : "false",
                     ", bias=", bias.defined() ? "true" : "false");
}

RMSNorm::RMSNorm(const RMSNormOptions& options) : options_(options) {
  check_shape("RMSNorm", options.normalized_shape);
  FABRIC_CHECK(!options.eps || *options.eps >= 0, ValueError, "RMSNorm: eps must be >= 0, got ",
               *options.eps);
  if (options.elementwise_affine)
    weight = register_parameter("weight", empty(options.normalized_shape));
  reset_parameters();
}

void RMSNorm::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
}

Tensor RMSNorm::forward(const Tensor& x) {
  return rms_norm(x, options_.normalized_shape, weight, options_.eps);
}

std::string RMSNorm::extra_repr() const {
  std::string s = shape_str(options_.normalized_shape);
  if (options_.eps) s += detail::cat(", eps=", *options_.eps);
  return s + ", elementwise_affine=" + (options_.elementwise_affine ? "true" : "false");
}

}  // namespace fabric::nn
