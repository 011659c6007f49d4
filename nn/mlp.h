// MLP: a stack of Linear layers with one activation between consecutive layers (none after the
// last). Keys: layers.{i}.weight / layers.{i}.bias, i counting Linear layers from 0.
#pragma once
#include <string>
#include <vector>

#include "nn/containers.h"
#include "nn/linear.h"

namespace fabric::nn {

struct MLPConfig {
  std::vector<int64_t> sizes;       // {in, hidden..., out}: at least 2 entries
  std::string activation = "relu";  // a make_activation name (nn/activation.h): "relu", "gelu", ...
  bool bias = true;
};

class MLP : public Module {
 public:
  using Options = MLPConfig;
  explicit MLP(const MLPConfig& config);
  // (..., sizes.front()) -> (..., sizes.back())
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MLP"; }
  std::string extra_repr() const override;
  const MLPConfig& config() const { return config_; }

  std::shared_ptr<ModuleList> layers;

 private:
  MLPConfig config_;
  std::shared_ptr<Module> activation_;  // stateless: applied between layers, not registered
};

}  // namespace fabric::nn
