// AlphaDropout and FeatureAlphaDropout (dropout for SELU networks: dropped elements go to SELU's
// negative saturation and an affine correction keeps mean and variance), and the functionals
// dropout3d, alpha_dropout and feature_alpha_dropout, as torch.nn and torch.nn.functional 1.13.
#pragma once
#include "nn/channel_dropout.h"

namespace fabric::nn {

struct AlphaDropoutOptions {
  double p = 0.5;                  // in [0, 1]
  Generator* generator = nullptr;  // null: the default generator
  bool inplace = false;            // shown in the repr only: torch 1.13's modules never write x
};

// While training, with a = 1 / sqrt((alpha^2 p + 1)(1 - p)) and alpha = 1.7580993408473766, each
// element becomes a x with probability 1 - p and a (-alpha) + alpha a p otherwise: the input times
// (keep * a) plus ((keep - 1) alpha a + alpha a p), as ATen. The identity in eval mode or when
// p == 0; p == 1 gives the input times 0. The gradient is keep * a.
class AlphaDropout : public Module {
 public:
  using Options = AlphaDropoutOptions;
  explicit AlphaDropout(const AlphaDropoutOptions& options = {});
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AlphaDropout"; }
  std::string extra_repr() const override;
  const AlphaDropoutOptions& options() const { return options_; }

 protected:
  AlphaDropoutOptions options_;
};

// AlphaDropout with one draw per (sample, channel): the keep mask has shape (N, C, 1, ...). Any
// rank of at least 2 is taken as (N, C, ...), as torch's (no unbatched form: torch 1.13 masks a
// (C, D, H, W) input per (C, D)).
class FeatureAlphaDropout : public AlphaDropout {
 public:
  explicit FeatureAlphaDropout(const AlphaDropoutOptions& options = {}) : AlphaDropout(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "FeatureAlphaDropout"; }
};

inline namespace functional {

// torch.nn.functional's, with torch's defaults (`training` is true for dropout3d, false for the
// alpha ones). p outside [0, 1] is a ValueError; in place, x itself is updated and returned (a
// leaf that requires grad then raises, as torch).
Tensor dropout3d(const Tensor& x, double p = 0.5, bool training = true, bool inplace = false,
                 Generator* gen = nullptr);
Tensor alpha_dropout(const Tensor& x, double p = 0.5, bool training = false, bool inplace = false,
                     Generator* gen = nullptr);
Tensor feature_alpha_dropout(const Tensor& x, double p = 0.5, bool training = false,
                             bool inplace = false, Generator* gen = nullptr);

}  // namespace functional
}  // namespace fabric::nn
