// torch.nn.Upsample: interpolate as a layer (nearest or bilinear over (N, C, H, W)).
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
  std::string mode = "nearest";       // "nearest" | "bilinear"
  std::optional<bool> align_corners;  // bilinear only (torch's default: false)
};

// make<Upsample>({.scale_factor = {2}}) doubles H and W; ({.size = {32, 48}, .mode = "bilinear"})
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

}  // namespace fabric::nn
