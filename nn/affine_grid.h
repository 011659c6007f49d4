// torch.nn.functional.affine_grid: the sampling grid of a batch of affine transforms, the usual
// companion of grid_sample (spatial transformer networks).
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::nn {
inline namespace functional {

// size (N, C, H, W) with theta (N, 2, 3) -> (N, H, W, 2); size (N, C, D, H, W) with theta
// (N, 3, 4) -> (N, D, H, W, 3). Each point is theta applied to the normalized coordinates
// (x, y[, z], 1) of an output pixel: align_corners=true puts -1 and 1 at the corner pixels'
// centres, false at their outer edges. Values are torch 1.13's bit for bit on the CPU (float32,
// float64, bfloat16); the gradient reaches theta.
Tensor affine_grid(const Tensor& theta, const std::vector<int64_t>& size,
                   bool align_corners = false);

}  // namespace functional
}  // namespace fabric::nn
