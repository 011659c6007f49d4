// torch.nn.functional's 1-d pools over (N, C, L) or (C, L): compositions over the 2-d pools on the
// input viewed with a unit height, so autograd, double backward and every device come with them.
#pragma once
#include <cstdint>
#include <optional>
#include <tuple>

#include "tensor/tensor.h"

namespace fabric::nn {
inline namespace functional {

// Windows of kernel_size every stride (unset: kernel_size) over L padded by `padding` (at most
// half the kernel) on both sides with -inf: (..., L) -> (..., (L + 2p - k) / s + 1).
Tensor max_pool1d(const Tensor& x, int64_t kernel_size,
                  std::optional<int64_t> stride = std::nullopt, int64_t padding = 0);
// max_pool1d(..., return_indices=True): (values, int64 position of each window's maximum in L).
std::tuple<Tensor, Tensor> max_pool1d_with_indices(const Tensor& x, int64_t kernel_size,
                                                   std::optional<int64_t> stride = std::nullopt,
                                                   int64_t padding = 0);
// As max_pool1d with zero padding, each window's sum divided by kernel_size (torch's defaults:
// ceil_mode=False, count_include_pad=True).
Tensor avg_pool1d(const Tensor& x, int64_t kernel_size,
                  std::optional<int64_t> stride = std::nullopt, int64_t padding = 0);
// (..., L) -> (..., output_size); output i averages [floor(i * L / out), ceil((i + 1) * L / out)).
Tensor adaptive_avg_pool1d(const Tensor& x, int64_t output_size);

}  // namespace functional
}  // namespace fabric::nn
