// LazyLinear.
#include "nn/lazy.h"

#include "nn/init.h"
#include "nn/linear.h"

namespace fabric::nn {

LazyLinear::LazyLinear(const LazyLinearOptions& options)
    : LazyModule("LazyLinear"), options_(options) {
  // torch's LazyLinear is a Linear(0, out_features) until its first call: its checks and repr
  // (built drawing nothing: torch's draws nothing before the first call).
  {
    init::EmptyInitGuard no_draws;
    set_lazy_repr(build_eager(0)->extra_repr());
  }
  weight = lazy_parameter("weight");
  if (options.bias) bias = lazy_parameter("bias");
}

std::optional<int64_t> LazyLinear::infer_size(const Tensor& x) const {
  if (x.dim() < 1) return std::nullopt;
  return x.size(-1);
}

std::shared_ptr<Module> LazyLinear::build_eager(int64_t in_features) const {
  return std::make_shared<Linear>(LinearOptions{
      .in_features = in_features, .out_features = options_.out_features, .bias = options_.bias});
}

void LazyLinear::adopt(Module& eager, bool reset) {
  auto& linear = static_cast<Linear&>(eager);
  linear.weight = linear.register_parameter("weight", weight, weight.requires_grad());
  if (bias.defined()) linear.bias = linear.register_parameter("bias", bias, bias.requires_grad());
  if (reset) linear.reset_parameters();
}

}  // namespace fabric::nn
