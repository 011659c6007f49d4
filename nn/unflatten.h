// Unflatten: one dim split into several, the inverse of Flatten, as torch.nn.Unflatten.
#pragma once
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

struct UnflattenOptions {
  int64_t dim = 0;
  std::vector<int64_t> unflattened_size;  // non-empty; one entry may be -1 (inferred)
};

// (..., d, ...) -> (..., *unflattened_size, ...), a view; the sizes must multiply to d.
class Unflatten : public Module {
 public:
  using Options = UnflattenOptions;
  explicit Unflatten(const UnflattenOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Unflatten"; }
  std::string extra_repr() const override;
  const UnflattenOptions& options() const { return options_; }

 private:
  UnflattenOptions options_;
};

}  // namespace fabric::nn
