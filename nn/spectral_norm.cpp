// spectral_norm: torch.nn.utils.spectral_norm's SpectralNorm.compute_weight and its hook.
#include "nn/spectral_norm.h"

#include <vector>

#include "autograd/grad_mode.h"
#include "nn/weight_reparam.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/shape.h"

namespace fabric::nn {
namespace {

// The weight as a matrix: `dim` first, the other dims flattened (torch's reshape_weight_to_matrix).
Tensor as_matrix(const Tensor& weight, int64_t dim) {
  Tensor w = weight;
  if (dim != 0) {
    std::vector<int64_t> order{dim};
    for (int64_t d = 0; d < weight.dim(); ++d)
      if (d != dim) order.push_back(d);
    w = w.permute(order);
  }
  return w.reshape({w.size(0), -1});
}

// torch.nn.functional.normalize(x, dim=0, eps): x / max(||x||, eps).
Tensor normalized(const Tensor& x, double eps) {
  return div(x, clamp(norm(x), Scalar(eps), std::nullopt));
}

struct Settings {
  std::string name;
  int64_t n_power_iterations;
  double eps;
  int64_t dim;
};

// orig / sigma; in training the power iteration first updates the buffers u and v in place.
Tensor compute_weight(const Module& module, const Settings& s, bool power_iteration) {
  const Tensor orig = module.get_parameter(s.name + "_orig");
  Tensor u, v;
  for (const auto& [n, t] : module.named_buffers(/*recurse=*/false)) {
    if (n == s.name + "_u") u = t;
    if (n == s.name + "_v") v = t;
  }
  FABRIC_CHECK(u.defined() && v.defined(), ValueError, "spectral_norm: ", module.type_name(),
               " lost its buffers ", s.name, "_u / ", s.name, "_v");
  const Tensor w = as_matrix(orig, s.dim);
  if (power_iteration) {
    {
      NoGradGuard no_grad;
      const Tensor wd = w.detach();
      for (int64_t i = 0; i < s.n_power_iterations; ++i) {
        v.copy_(normalized(matmul(wd.transpose(0, 1), u), s.eps));
        u.copy_(normalized(matmul(wd, v), s.eps));
      }
    }
    // Copies, as torch: the buffers change in the next iteration, the graph must keep these.
    u = u.clone();
    v = v.clone();
  }
  const Tensor sigma = sum(mul(u, matmul(w, v)));
  return div(orig, sigma);
}

int64_t default_dim(const Module& module) {
  const std::string t = module.type_name();
  return t == "ConvTranspose1d" || t == "ConvTranspose2d" || t == "ConvTranspose3d" ? 1 : 0;
}

}  // namespace

Module& spectral_norm(Module& module, const std::string& name, const SpectralNormOptions& o) {
  FABRIC_CHECK(o.n_power_iterations > 0, ValueError,
               "spectral_norm: Expected n_power_iterations to be positive, but got "
               "n_power_iterations=",
               o.n_power_iterations);
  reparam::check_no_hook("spectral_norm", reparam::Kind::spectral_norm, module, name);
  const Tensor weight = reparam::own_parameter("spectral_norm", module, name);
  FABRIC_CHECK(weight.dim() > 0, ShapeError, "spectral_norm: parameter '", name,
               "' is a 0-dim tensor; it has no matrix form");
  const Settings s{name, o.n_power_iterations, o.eps,
                   wrap_dim(o.dim.value_or(default_dim(module)), weight.dim(), "spectral_norm")};
  const int64_t hook =
      module.register_forward_pre_hook([s, weight](Module& m, const Tensor& input) {
        reparam::set_computed(weight, compute_weight(m, s, m.is_training()));
        return input;
      });
  try {
    reparam::add_hook("spectral_norm", module, name,
                      {reparam::Kind::spectral_norm, hook, weight,
                       [s](const Module& m) { return compute_weight(m, s, false); }});
  } catch (...) {
    module.remove_forward_hook(hook);
    throw;
  }
  const Tensor orig = weight.detach();
  Tensor u, v;
  {
    NoGradGuard no_grad;
    const Tensor w = as_matrix(orig, s.dim);
    const TensorOptions opts{.dtype = orig.dtype(), .device = orig.device()};
    u = normalized(randn({w.size(0)}, opts, o.generator), o.eps);
    v = normalized(randn({w.size(1)}, opts, o.generator), o.eps);
  }
  module.register_parameter(name, Tensor());  // torch: delattr(module, name)
  module.register_parameter(name + "_orig", orig);
  reparam::set_computed(weight, orig.detach());  // torch: setattr(module, name, weight.data)
  module.register_buffer(name + "_u", u);
  module.register_buffer(name + "_v", v);
  return module;
}

Module& remove_spectral_norm(Module& module, const std::string& name) {
  const reparam::Installed hook =
      reparam::take_hook("remove_spectral_norm", reparam::Kind::spectral_norm, module, name);
  module.remove_forward_hook(hook.hook_id);
  Tensor weight;
  {
    NoGradGuard no_grad;
    weight = hook.weight_now(module);
  }
  module.register_parameter(name + "_orig", Tensor());
  module.register_buffer(name + "_u", Tensor());
  module.register_buffer(name + "_v", Tensor());
  reparam::restore_parameter(module, name, hook.handle, weight);
  return module;
}

}  // namespace fabric::nn
