// torch.nn.Upsample, UpsamplingNearest2d and UpsamplingBilinear2d: interpolate as a layer.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

struct UpsampleOptions {
  // Exactly one of size ({oh, ow}, or {s} for s x s) and scale_factor ({sh, sw}, or {s}).
  std::vector<int64_t> size;
  std::vector<double> scale_factor;
  // (N, C, L): "nearest" | "nearest-exact" | "linear" | "area";
  // (N, C, H, W): "nearest" | "nearest-exact" | "bilinear" | "bicubic" | "area".
  std::string mode = "nearest";
  std::optional<bool> align_corners;  // linear, bilinear, bicubic only (torch's default: false)
};

// make<Upsample>({.scale_factor = {2}}) doubles H and W; ({.size = {32, 48}, .mode = "bicubic"})
// resizes to 32 x 48. The arguments are checked on the first forward, as torch does.
class Upsample : public Module {
 public:
  using Options = UpsampleOptions;
  explicit Upsample(const UpsampleOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Upsample"; }
  std::string extra_repr() const override;

 private:
  UpsampleOptions options_;
};

struct UpsamplingOptions {
  std::vector<int64_t> size;  // exactly one of size and scale_factor, as Upsample's
  std::vector<double> scale_factor;
};

// torch's deprecated fixed-mode forms: Upsample with mode nearest, and with mode bilinear and
// align_corners=True (not Upsample's default false).
class UpsamplingNearest2d : public Upsample {
 public:
  using Options = UpsamplingOptions;
  explicit UpsamplingNearest2d(const UpsamplingOptions& options)
      : Upsample({.size = options.size,
                  .scale_factor = options.scale_factor,
                  .mode = "nearest",
                  .align_corners = std::nullopt}) {}
  std::string type_name() const override { return "UpsamplingNearest2d"; }
};

class UpsamplingBilinear2d : public Upsample {
 public:
  using Options = UpsamplingOptions;
  explicit UpsamplingBilinear2d(const UpsamplingOptions& options)
      : Upsample({.size = options.size,
                  .scale_factor = options.scale_factor,
                  .mode = "bilinear",
                  .align_corners = true}) {}
  std::string type_name() const override { return "UpsamplingBilinear2d"; }
};

}  // namespace fabric::nn
