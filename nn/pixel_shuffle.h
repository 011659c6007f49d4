// torch.nn.PixelShuffle and PixelUnshuffle: (*, C*r*r, H, W) <-> (*, C, H*r, W*r) as layers.
#pragma once
#include <cstdint>
#include <string>

#include "nn/module.h"

namespace fabric::nn {

struct PixelShuffleOptions {
  int64_t upscale_factor = 1;
};

// make<PixelShuffle>({.upscale_factor = 2}): (N, 4C, H, W) -> (N, C, 2H, 2W).
class PixelShuffle : public Module {
 public:
  using Options = PixelShuffleOptions;
  explicit PixelShuffle(const PixelShuffleOptions& options) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "PixelShuffle"; }
  std::string extra_repr() const override {
    return "upscale_factor=" + std::to_string(options_.upscale_factor);
  }

 private:
  PixelShuffleOptions options_;
};

struct PixelUnshuffleOptions {
  int64_t downscale_factor = 1;
};

// make<PixelUnshuffle>({.downscale_factor = 2}): (N, C, 2H, 2W) -> (N, 4C, H, W).
class PixelUnshuffle : public Module {
 public:
  using Options = PixelUnshuffleOptions;
  explicit PixelUnshuffle(const PixelUnshuffleOptions& options) : options_(options) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "PixelUnshuffle"; }
  std::string extra_repr() const override {
    return "downscale_factor=" + std::to_string(options_.downscale_factor);
  }

 private:
  PixelUnshuffleOptions options_;
};

}  // namespace fabric::nn
