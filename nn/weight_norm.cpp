// weight_norm: torch._weight_norm(v, g, dim) = v * (g / norm_except_dim(v, 2, dim)).
#include "nn/weight_norm.h"

#include <vector>

#include "autograd/grad_mode.h"
#include "nn/weight_reparam.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric::nn {
namespace {

// torch's norm_except_dim(v, 2, dim): the 2-norm over every dim but `dim`, kept as size-1 dims;
// over everything (a 0-dim tensor) for dim -1.
Tensor norm_except_dim(const Tensor& v, int64_t dim) {
  if (dim == -1) return norm(v);
  if (v.dim() == 1) return abs(v);  // no other dim: each element is its own norm
  std::vector<int64_t> others;
  for (int64_t d = 0; d < v.dim(); ++d)
    if (d != dim) others.push_back(d);
  return norm(v, 2, others, /*keepdim=*/true);
}

Tensor compute_weight(const Module& module, const std::string& name, int64_t dim) {
  const Tensor g = module.get_parameter(name + "_g");
  const Tensor v = module.get_parameter(name + "_v");
  return mul(v, div(g, norm_except_dim(v, dim)));
}

}  // namespace

Module& weight_norm(Module& module, const std::string& name, std::optional<int64_t> dim_opt) {
  reparam::check_no_hook("weight_norm", reparam::Kind::weight_norm, module, name);
  const Tensor weight = reparam::own_parameter("weight_norm", module, name);
  int64_t dim = dim_opt.value_or(-1);
  if (dim != -1) dim = wrap_dim(dim, weight.dim(), "weight_norm");
  const int64_t hook =
      module.register_forward_pre_hook([name, dim, weight](Module& m, const Tensor& input) {
        reparam::set_computed(weight, compute_weight(m, name, dim));
        return input;
      });
  try {
    reparam::add_hook("weight_norm", module, name,
                      {reparam::Kind::weight_norm, hook, weight,
                       [name, dim](const Module& m) { return compute_weight(m, name, dim); }});
  } catch (...) {
    module.remove_forward_hook(hook);
    throw;
  }
  const Tensor v = weight.detach();
  Tensor g;
  {
    NoGradGuard no_grad;
    g = norm_except_dim(v, dim).clone();
  }
  module.register_parameter(name, Tensor());  // torch: del module._parameters[name]
  module.register_parameter(name + "_g", g);
  module.register_parameter(name + "_v", v);
  reparam::set_computed(weight, compute_weight(module, name, dim));  // as torch, right away
  return module;
}

Module& remove_weight_norm(Module& module, const std::string& name) {
  const reparam::Installed hook =
      reparam::take_hook("remove_weight_norm", reparam::Kind::weight_norm, module, name);
  module.remove_forward_hook(hook.hook_id);
  Tensor weight;
  {
    NoGradGuard no_grad;
    weight = hook.weight_now(module);
  }
  module.register_parameter(name + "_g", Tensor());
  module.register_parameter(name + "_v", Tensor());
  reparam::restore_parameter(module, name, hook.handle, weight);
  return module;
}

}  // namespace fabric::nn
