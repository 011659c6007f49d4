// Dropout1d, Dropout2d and Dropout3d: whole channels zeroed while training, as torch.nn (channel
// dropout for convolutional features, whose neighbouring elements are correlated); and the core
// all of fabric's torch-style dropouts share (nn/alpha_dropout.h builds the alpha ones on it).
#pragma once
#include <string_view>

#include "nn/module.h"

namespace fabric::nn {

struct ChannelDropoutOptions {
  double p = 0.5;                  // in [0, 1]
  Generator* generator = nullptr;  // null: the default generator
  bool inplace = false;            // as torch's inplace: x itself is scaled and returned
};

// While training each (sample, channel) is zeroed with probability p, the kept ones scaled by
// 1 / (1 - p): the input times a mask of shape (N, C, 1[, 1[, 1]]). The identity in eval mode or
// when p == 0; p == 1 zeroes everything (the input times 0).
class ChannelDropout : public Module {
 public:
  using Options = ChannelDropoutOptions;
  std::string extra_repr() const override;
  const ChannelDropoutOptions& options() const { return options_; }

 protected:
  explicit ChannelDropout(const ChannelDropoutOptions& options);
  // x (N, C, ...) times a fresh channel mask; `unbatched`: x is (C, ...), as torch's
  // x.unsqueeze(0) then squeeze(0).
  Tensor drop_channels(const Tensor& x, bool unbatched = false) const;

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

// Input (N, C, D, H, W) or (C, D, H, W). As torch 1.13, any other rank warns (deprecated) and is
// taken as unbatched: dropped per element of dim 0 (a 1-D input per element; 0-D refused).
class Dropout3d : public ChannelDropout {
 public:
  explicit Dropout3d(const ChannelDropoutOptions& options = {}) : ChannelDropout(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout3d"; }
};

namespace dropout_internal {

// "dropout probability has to be between 0 and 1, but got <p>" (a ValueError), as torch.
void check_dropout_probability(double p);

// torch 1.13's F.dropout3d warning (a deprecation) for a rank other than 4 or 5.
void warn_dropout3d_rank(int64_t dim);

// torch 1.13's _dropout_impl (aten/src/ATen/native/Dropout.cpp) with fabric's generator: the
// identity when !train, p == 0 or x is empty; x * 0 when p == 1; otherwise a keep mask (1 with
// probability 1 - p, drawn as float32 uniforms below 1 - p) over x's shape (`feature` false) or
// (N, C, 1, ...) (`feature`; (C, 1, ...) when `unbatched`), applied by apply_dropout_noise.
// `who` names the caller in errors. In place, x itself is updated and returned.
struct DropoutSpec {
  bool feature = false;
  bool alpha = false;
  bool unbatched = false;  // feature only: x lacks the batch dim torch's caller unsqueezes
  bool inplace = false;
};
Tensor dropout_impl(const Tensor& x, double p, bool train, const DropoutSpec& spec, Generator* gen,
                    std::string_view who);

// The deterministic part of _dropout_impl for 0 < p < 1, given `keep` (0/1 in any dtype,
// broadcastable to x): x * (keep / (1 - p)), or for alpha dropout, with
// a = 1 / sqrt((alpha^2 p + 1)(1 - p)) and alpha = 1.7580993408473766,
// x * (keep * a) + ((keep - 1) * alpha a + alpha a p). Every step rounds in x's dtype with
// torch's scalars rounded to that dtype first, as ATen's CPU kernels: torch's bits for its mask.
Tensor apply_dropout_noise(const Tensor& x, const Tensor& keep, double p, bool alpha, bool inplace);

}  // namespace dropout_internal
}  // namespace fabric::nn
