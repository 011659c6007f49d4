// torch.nn.functional.max_unpool1d/2d/3d: the partial inverse of max pooling. Each value of x goes
// to the position its index names in its plane's flattened output (L, H*W or D*H*W); the rest is
// zero. A composition of recorded ops (zeros, then scatter along the flattened plane), so the
// gradient (grad_out gathered at the indices, as torch's), double backward and CUDA come with it.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

// x and its int64 indices of one shape: (N, C, H, W) or (C, H, W) for 2-d, (N, C, D, H, W) or
// (C, D, H, W) for 3-d, (N, C, L) or (C, L) for 1-d. Sizes are {k} or one per dim; stride unset
// (empty) is the kernel. The output's spatial size is torch's default,
// (in - 1) * stride - 2 * padding + kernel, or output_size (its spatial sizes, or with the two
// leading ones, which are ignored, as torch's), each within (default - stride, default + stride),
// else torch's ValueError ("invalid output_size ..."). An index outside its plane's output is
// torch's error ("Found an invalid max index: ..."), raised on the CPU before anything is
// written (on CUDA: the scatter's own check, at the device's next synchronisation). Of indices
// repeated within a plane the last value in x's order wins, as torch's CPU loop. float64 and
// float32 as torch's CPU; float16 and bfloat16 too (values move unchanged, so exactly), which
// torch 1.13's CPU kernel refuses and its CUDA kernel takes.
Tensor max_unpool1d(const Tensor& x, const Tensor& indices, int64_t kernel_size,
                    std::optional<int64_t> stride = std::nullopt, int64_t padding = 0,
                    const std::optional<std::vector<int64_t>>& output_size = std::nullopt);
Tensor max_unpool2d(const Tensor& x, const Tensor& indices, std::vector<int64_t> kernel_size,
                    std::vector<int64_t> stride = {}, std::vector<int64_t> padding = {0},
                    const std::optional<std::vector<int64_t>>& output_size = std::nullopt);
Tensor max_unpool3d(const Tensor& x, const Tensor& indices, std::vector<int64_t> kernel_size,
                    std::vector<int64_t> stride = {}, std::vector<int64_t> padding = {0},
                    const std::optional<std::vector<int64_t>>& output_size = std::nullopt);

}  // namespace fabric
