// torch.nn.functional.fractional_max_pool2d/3d (Graham's fractional max pooling): kernel-sized
// windows whose starts advance by a pseudo-random step so that the input maps onto output_size.
// Each (batch, channel) plane has one sample in [0, 1) per spatial dim that fixes its starts.
//
// The op finds the int64 offset of each window's maximum in its flattened plane (torch's
// `val > max || isnan(val)`: the first of tied maxima, the last NaN) on the host, then gathers x
// at those offsets: the values are a recorded gather, so the gradient (torch's scatter-add of
// grad_out at the indices, in the same order), double backward and CUDA come from gather. On
// CUDA the input is copied to the host to find the offsets, which go back to the device.
#pragma once
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

class Generator;

// x: (N, C, H, W) or (C, H, W) for 2-d, (N, C, T, H, W) or (C, T, H, W) for 3-d, float64 or
// float32 (torch 1.13's CPU kernel takes no other dtype; under CPU autocast x and the samples run
// in float32, as torch). kernel_size and output_size: {k} or one per dim; output_ratio instead of
// output_size gives the size trunc(in * ratio) per dim (output_size wins when both are given, as
// torch's functional; its layers refuse both). random_samples: (N', C, 2 or 3) with N' >= N (1 for
// unbatched x), x's dtype and device; undefined: drawn as torch draws them, rand(N, C, 2 or 3) in
// x's dtype, from `gen` (fabric's Philox generator: other numbers than torch's for one seed).
// Sample [0] moves the 2-d windows along W and [1] along H; the 3-d ones take [0] for T, [1] for
// H, [2] for W, as torch's kernels. torch's checks and messages; where torch 1.13 reads past the
// samples or the input (a samples tensor of another shape, a kernel of size <= 0) this refuses,
// with later torch's messages for the samples.
Tensor fractional_max_pool2d(const Tensor& x, const std::vector<int64_t>& kernel_size,
                             const std::optional<std::vector<int64_t>>& output_size,
                             const std::optional<std::vector<double>>& output_ratio = std::nullopt,
                             const Tensor& random_samples = Tensor(), Generator* gen = nullptr);
Tensor fractional_max_pool3d(const Tensor& x, const std::vector<int64_t>& kernel_size,
                             const std::optional<std::vector<int64_t>>& output_size,
                             const std::optional<std::vector<double>>& output_ratio = std::nullopt,
                             const Tensor& random_samples = Tensor(), Generator* gen = nullptr);

// torch's return_indices=True: (values, int64 offset of each maximum in its flattened (H, W) or
// (T, H, W) plane), the indices max_unpool2d/3d take.
std::tuple<Tensor, Tensor> fractional_max_pool2d_with_indices(
    const Tensor& x, const std::vector<int64_t>& kernel_size,
    const std::optional<std::vector<int64_t>>& output_size,
    const std::optional<std::vector<double>>& output_ratio = std::nullopt,
    const Tensor& random_samples = Tensor(), Generator* gen = nullptr);
std::tuple<Tensor, Tensor> fractional_max_pool3d_with_indices(
    const Tensor& x, const std::vector<int64_t>& kernel_size,
    const std::optional<std::vector<int64_t>>& output_size,
    const std::optional<std::vector<double>>& output_ratio = std::nullopt,
    const Tensor& random_samples = Tensor(), Generator* gen = nullptr);

}  // namespace fabric
