// The CPU loops behind nn::functional::grid_sample (nn/grid_sample.cpp): internal, not part of the
// public API. Each takes contiguous float32 or float64 CPU tensors of one dtype.
#pragma once
#include "tensor/tensor.h"

namespace fabric::nn::grid_sample_detail {

enum class Interp { bilinear, nearest, bicubic };
enum class Padding { zeros, border, reflection };

struct Options {
  Interp interp = Interp::bilinear;
  Padding padding = Padding::zeros;
  bool align_corners = false;
  // torch walks the output points in chunks of one vector; its walk restarts at every output row
  // when the grid's (H, W) plane is not laid out contiguously (the order grad_input sums in).
  bool chunks_per_row = false;
};

// input (N, C, H, W), grid (N, Ho, Wo, 2) -> out (N, C, Ho, Wo), preallocated.
void forward_2d(const Tensor& input, const Tensor& grid, Tensor& out, const Options& o);
// grad_input (N, C, H, W) zeroed by the caller, or undefined when not wanted; grad_grid
// (N, Ho, Wo, 2) overwritten.
void backward_2d(const Tensor& grad_out, const Tensor& input, const Tensor& grid,
                 Tensor& grad_input, Tensor& grad_grid, const Options& o);

// The 5-D (volumetric) forms: input (N, C, D, H, W), grid (N, Do, Ho, Wo, 3); bilinear and
// nearest.
void forward_3d(const Tensor& input, const Tensor& grid, Tensor& out, const Options& o);
void backward_3d(const Tensor& grad_out, const Tensor& input, const Tensor& grid,
                 Tensor& grad_input, Tensor& grad_grid, const Options& o);

}  // namespace fabric::nn::grid_sample_detail
