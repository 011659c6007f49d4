// The MLP model.
#include "nn/mlp.h"

#include "nn/activation.h"

namespace fabric::nn {

MLP::MLP(const MLPConfig& config) : config_(config) {
  FABRIC_CHECK(config.sizes.size() >= 2, ValueError,
               "MLP: sizes needs at least an input and an output size, got ", config.sizes.size(),
               " entries");
  for (int64_t s : config.sizes) {
    FABRIC_CHECK(s > 0, ValueError, "MLP: every size must be positive, got ",
                 shape_str(config.sizes));
  }
  activation_ = make_activation(config.activation);
  layers = register_module("layers", std::make_shared<ModuleList>());
  for (size_t i = 0; i + 1 < config.sizes.size(); ++i) {
    auto fc = std::make_shared<Linear>(LinearOptions{
        .in_features = config.sizes[i], .out_features = config.sizes[i + 1], .bias = config.bias});
    layers->push_back(fc);
  }
}

Tensor MLP::forward(const Tensor& x) {
  Tensor h = x;
  const size_t n = layers->size();
  for (size_t i = 0; i < n; ++i) {
    h = layers->child(std::to_string(i))(h);  // the registered layer (it may be replaced)
    if (i + 1 < n) h = (*activation_)(h);
  }
  return h;
}

std::string MLP::extra_repr() const {
  return "sizes=" + shape_str(config_.sizes) + ", activation=" + config_.activation;
}

}  // namespace fabric::nn
