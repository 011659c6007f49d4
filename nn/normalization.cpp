// LayerNorm, RMSNorm, BatchNorm1d/2d/3d and GroupNorm.
#include "nn/normalization.h"

#include <typeinfo>

#include "nn/init.h"
#include "nn/py_repr.h"
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

Tensor LayerNorm::forward_to(const Tensor& x, std::optional<DType> out_dtype) {
  // Anything calling the module would do beyond layer_norm keeps the float32 output (the linear
  // after it then casts it, the same bits).
  if (!out_dtype || !is_called_plainly() || typeid(*this) != typeid(LayerNorm)) return (*this)(x);
  return layer_norm(x, options_.normalized_shape, weight, bias, options_.eps, out_dtype);
}

std::string LayerNorm::extra_repr() const {
  return detail::cat(shape_str(options_.normalized_shape), ", eps=", py_float(options_.eps),
                     ", elementwise_affine=", options_.elementwise_affine ? "True" : "False");
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
  if (options_.eps) s += ", eps=" + py_float(*options_.eps);
  return s + ", elementwise_affine=" + (options_.elementwise_affine ? "True" : "False");
}

BatchNorm::BatchNorm(const BatchNormOptions& options)
    : NormBase("BatchNorm", options.num_features, options.eps, options.affine,
               options.track_running_stats),
      options_(options) {}

// torch's _BatchNorm.forward: the batch count and the averaging factor are updated before the
// op, which then updates the running statistics with that factor.
Tensor BatchNorm::forward(const Tensor& x) {
  check_input_dim(x);
  double factor = options_.momentum.value_or(0.0);
  if (is_training() && options_.track_running_stats) {
    num_batches_tracked.add_(1);
    if (!options_.momentum) factor = 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
  }
  const bool use_batch_stats = is_training() || !options_.track_running_stats;
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, factor,
                    options_.eps);
}

std::string BatchNorm::extra_repr() const {
  return detail::cat(options_.num_features, ", eps=", py_float(options_.eps),
                     ", momentum=", options_.momentum ? py_float(*options_.momentum) : "None",
                     ", affine=", options_.affine ? "True" : "False",
                     ", track_running_stats=", options_.track_running_stats ? "True" : "False");
}

void BatchNorm1d::check_input_dim(const Tensor& x) const {
  FABRIC_CHECK(x.defined(), ValueError, "BatchNorm1d: got an undefined tensor");
  FABRIC_CHECK(x.dim() == 2 || x.dim() == 3, ValueError,
               "BatchNorm1d: expected 2D or 3D input (got ", x.dim(), "D input of shape ",
               shape_str(x.sizes()), ")");
}

void BatchNorm2d::check_input_dim(const Tensor& x) const {
  FABRIC_CHECK(x.defined(), ValueError, "BatchNorm2d: got an undefined tensor");
  FABRIC_CHECK(x.dim() == 4, ValueError, "BatchNorm2d: expected 4D input (got ", x.dim(),
               "D input of shape ", shape_str(x.sizes()), ")");
}

void BatchNorm3d::check_input_dim(const Tensor& x) const {
  FABRIC_CHECK(x.defined(), ValueError, "BatchNorm3d: got an undefined tensor");
  FABRIC_CHECK(x.dim() == 5, ValueError, "BatchNorm3d: expected 5D input (got ", x.dim(),
               "D input of shape ", shape_str(x.sizes()), ")");
}

GroupNorm::GroupNorm(const GroupNormOptions& options) : options_(options) {
  FABRIC_CHECK(options.num_groups > 0 && options.num_channels % options.num_groups == 0, ValueError,
               "GroupNorm: num_channels must be divisible by num_groups, got ",
               options.num_channels, " channels and ", options.num_groups, " groups");
  FABRIC_CHECK(options.eps >= 0, ValueError, "GroupNorm: eps must be >= 0, got ", options.eps);
  if (options.affine) {
    weight = register_parameter("weight", empty({options.num_channels}));
    bias = register_parameter("bias", empty({options.num_channels}));
  }
  reset_parameters();
}

void GroupNorm::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
}

Tensor GroupNorm::forward(const Tensor& x) {
  return group_norm(x, options_.num_groups, weight, bias, options_.eps);
}

std::string GroupNorm::extra_repr() const {
  return detail::cat(options_.num_groups, ", ", options_.num_channels,
                     ", eps=", py_float(options_.eps),
                     ", affine=", options_.affine ? "True" : "False");
}

}  // namespace fabric::nn
