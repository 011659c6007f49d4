// torch 1.13's lazy layers: LazyLinear here, the convolutions in nn/lazy_conv.h and the norms in
// nn/lazy_norm.h (included below, so this one include gives them all). Built without their input
// size, which the first call infers (the base, LazyModule, is in nn/lazy_module.h):
//   auto fc = nn::make<nn::LazyLinear>({.out_features = 10});
//   optim::SGD opt(fc->parameters(), {.lr = 0.1});  // before the dry run, as torch allows
//   (*fc)(x);  // in_features = x.size(-1); weight and bias drawn as Linear's
#pragma once
#include <cstdint>
#include <memory>
#include <optional>

#include "nn/lazy_conv.h"
#include "nn/lazy_module.h"
#include "nn/lazy_norm.h"

namespace fabric::nn {

struct LazyLinearOptions {
  int64_t out_features = 0;
  bool bias = true;
};

// torch.nn.LazyLinear: Linear with in_features = x.size(-1) of the first call. Keys: weight,
// bias.
class LazyLinear : public LazyModule {
 public:
  using Options = LazyLinearOptions;
  explicit LazyLinear(const LazyLinearOptions& options);
  const LazyLinearOptions& options() const { return options_; }

  Tensor weight;  // (out_features, in_features) once materialized
  Tensor bias;    // (out_features), undefined when bias = false

 protected:
  std::optional<int64_t> infer_size(const Tensor& x) const override;
  std::shared_ptr<Module> build_eager(int64_t in_features) const override;
  int64_t probe_size() const override { return 0; }
  void adopt(Module& eager, bool reset) override;

 private:
  LazyLinearOptions options_;
};

}  // namespace fabric::nn
