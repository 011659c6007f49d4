// InstanceNorm1d/2d/3d: torch 1.13's _InstanceNorm checks (input dims) and forward.
#include "nn/instance_norm.h"

#include "nn/functional_instance_norm.h"
#include "nn/py_repr.h"

namespace fabric::nn {

InstanceNorm::InstanceNorm(const InstanceNormOptions& options)
    : NormBase("InstanceNorm", options.num_features, options.eps, options.affine,
               options.track_running_stats),
      options_(options) {}

Tensor InstanceNorm::forward(const Tensor& x) {
  const int64_t unbatched = no_batch_dim();
  FABRIC_CHECK(x.defined(), ValueError, type_name(), ": undefined input");
  FABRIC_CHECK(x.dim() == unbatched || x.dim() == unbatched + 1, ValueError, type_name(),
               ": expected ", unbatched, "D or ", unbatched + 1, "D input (got ", x.dim(),
               "D input of shape ", shape_str(x.sizes()), ")");
  const int64_t feature_dim = x.dim() - unbatched;
  const int64_t features = x.size(feature_dim);
  // torch 1.13 refuses the mismatch only where num_features sized something (the affine
  // parameters, the running statistics) and normalises silently otherwise.
  FABRIC_CHECK(
      features == options_.num_features || !(options_.affine || options_.track_running_stats),
      ShapeError, type_name(), ": expected input's size at dim=", feature_dim,
      " to match num_features (", options_.num_features, "), but got: ", features, " (the ",
      options_.affine ? "weight and bias" : "running statistics", " have ", options_.num_features,
      " entries)");
  const bool use_input_stats = is_training() || !options_.track_running_stats;
  const Tensor batched = x.dim() == unbatched ? x.unsqueeze(0) : x;
  const Tensor y = instance_norm(batched, running_mean, running_var, weight, bias, use_input_stats,
                                 options_.momentum, options_.eps);
  return x.dim() == unbatched ? y.squeeze(0) : y;
}

std::string InstanceNorm::extra_repr() const {
  return detail::cat(options_.num_features, ", eps=", py_float(options_.eps),
                     ", momentum=", py_float(options_.momentum),
                     ", affine=", options_.affine ? "True" : "False",
                     ", track_running_stats=", options_.track_running_stats ? "True" : "False");
}

}  // namespace fabric::nn
