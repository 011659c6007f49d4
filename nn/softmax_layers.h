// Softmax, LogSoftmax and Softmin over one dim, as torch.nn (reprs `Softmax(dim=1)`), and
// Softmax2d over the channels.
#pragma once
#include <optional>

#include "nn/module.h"

namespace fabric::nn {

struct SoftmaxOptions {
  // Unset: torch's deprecated implicit choice (dim 0 for 0-, 1- and 3-D input, else 1), with its
  // warning; the repr shows dim=None.
  std::optional<int64_t> dim = std::nullopt;
};

class Softmax : public Module {
 public:
  using Options = SoftmaxOptions;
  explicit Softmax(const SoftmaxOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Softmax"; }
  std::string extra_repr() const override;
  const SoftmaxOptions& options() const { return options_; }

 private:
  SoftmaxOptions options_;
};

class LogSoftmax : public Module {
 public:
  using Options = SoftmaxOptions;
  explicit LogSoftmax(const SoftmaxOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LogSoftmax"; }
  std::string extra_repr() const override;
  const SoftmaxOptions& options() const { return options_; }

 private:
  SoftmaxOptions options_;
};

// softmax(-x): the smallest inputs get the largest weights.
class Softmin : public Module {
 public:
  using Options = SoftmaxOptions;
  explicit Softmin(const SoftmaxOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Softmin"; }
  std::string extra_repr() const override;
  const SoftmaxOptions& options() const { return options_; }

 private:
  SoftmaxOptions options_;
};

// softmax over the channels (dim -3) of an (N, C, H, W) or (C, H, W) input: at each location the
// C values sum to 1. Other ranks: ShapeError, as torch's assertion. make<Softmax2d>().
class Softmax2d : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Softmax2d"; }
};

}  // namespace fabric::nn
