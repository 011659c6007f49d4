// Dropout1d and Dropout2d: whole channels zeroed while training, as torch.nn (channel dropout for
// convolutional features, whose neighbouring elements are correlated).
#pragma once
#include "nn/module.h"

namespace fabric::nn {

struct ChannelDropoutOptions {
  double p = 0.5;                  // in [0, 1]
  Generator* generator = nullptr;  // null: the default generator
};

// While training each (sample, channel) is zeroed with probability p, the kept ones scaled by
// 1 / (1 - p): the input times a mask of shape (N, C, 1[, 1]). The identity in eval mode or when
// p == 0; p == 1 zeroes everything.
class ChannelDropout : public Module {
 public:
  using Options = ChannelDropoutOptions;
  std::string extra_repr() const override;
  const ChannelDropoutOptions& options() const { return options_; }

 protected:
  explicit ChannelDropout(const ChannelDropoutOptions& options);
  // x (N, C, ...) times a fresh channel mask.
  Tensor drop_channels(const Tensor& x) const;

 private:
  ChannelDropoutOptions options_;
};

// Input (N, C, L) or (C, L).
class Dropout1d : public ChannelDropout {
 public:
  explicit Dropout1d(const ChannelDropoutOptions& options = {}) : ChannelDropout(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout1d"; }
};

// Input (N, C, H, W). As torch 1.13, a 3-D input is taken as (N, C, L) with a warning, and other
// ranks (at least 2) are dropped per (dim 0, dim 1) with a deprecation warning.
class Dropout2d : public ChannelDropout {
 public:
  explicit Dropout2d(const ChannelDropoutOptions& options = {}) : ChannelDropout(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout2d"; }
};

}  // namespace fabric::nn
