// interpolate's modes that are compositions of recorded ops rather than kernels of their own
// (ops_upsample_modes.cpp): nearest-exact and bicubic gather along each spatial dimension with
// torch 1.13's source indices and weights, area is adaptive average pooling (2-d, or 3-d for an
// (N, C, D, H, W) input). Their gradients (and double backward) come from index_select, mul, add
// and adaptive_avg_pool2d/3d.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::upsample_modes {

// One spatial dimension: `in` -> `out` elements; `scale` is interpolate's scale_factor for it
// (torch reads the source at o / scale), <= 0 when the output size was given (in / out).
struct Axis {
  int64_t in = 0, out = 0;
  double scale = 0;
};

// x (N, C, *spatial), one Axis per spatial dimension.
Tensor nearest_exact(const Tensor& x, const std::vector<Axis>& axes);
Tensor bicubic(const Tensor& x, const std::vector<Axis>& axes, bool align_corners);
Tensor area(const Tensor& x, const std::vector<Axis>& axes);

}  // namespace fabric::upsample_modes
