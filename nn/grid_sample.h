// torch.nn.functional.grid_sample: samples an input at arbitrary (normalized) points, as spatial
// transformer networks and optical-flow warps do.
#pragma once
#include <string>

#include "tensor/tensor.h"

namespace fabric::nn {
inline namespace functional {

// input (N, C, H, W) and grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo); or input (N, C, D, H, W) and
// grid (N, Do, Ho, Wo, 3) -> (N, C, Do, Ho, Wo). grid[..., 0] is x (along W), [..., 1] y, [..., 2]
// z, each normalized to [-1, 1]: with align_corners=true -1 and 1 are the corner pixels' centres,
// with false their outer edges. mode: "bilinear" (trilinear in 5-D), "nearest" (4-D: ties to
// even; 5-D: ties away from zero, as torch's two kernels) or "bicubic" (4-D only); padding_mode
// for points outside: "zeros", "border" (clamp to the edge) or "reflection" (mirror at the
// borders). float32 and float64, as torch's CPU kernels; gradients reach input and grid (nearest
// gives the grid none). Values and gradients are torch 1.13's bits (4-D: its vectorized AVX2
// kernel's order and fused steps; 5-D: its scalar kernel), except bicubic's: within a few ulps.
Tensor grid_sample(const Tensor& input, const Tensor& grid, const std::string& mode = "bilinear",
                   const std::string& padding_mode = "zeros", bool align_corners = false);

}  // namespace functional
}  // namespace fabric::nn
