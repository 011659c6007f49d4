// channel_shuffle as torch 1.13: at::channel_shuffle's checks, then ATen's math_channel_shuffle
// composition, whose recorded view ops give the gradient (torch 1.13's CPU kernel has none).
#include "nn/channel_shuffle.h"

#include <string>

#include "tensor/error.h"
#include "tensor/shape.h"

namespace fabric::nn {
inline namespace functional {

namespace {

// Sizes as torch's messages print them: "[2, 4]".
std::string torch_sizes(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

Tensor channel_shuffle(const Tensor& x, int64_t groups) {
  FABRIC_CHECK(x.defined(), ValueError, "channel_shuffle: undefined input");
  FABRIC_CHECK(x.dim() > 2, ShapeError,
               "channel_shuffle expects input with > 2 dims, but got input with sizes ",
               torch_sizes(x.sizes()));
  const int64_t c = x.size(1);
  FABRIC_CHECK(groups > 0, ValueError,
               "Number of groups to divide channels in must be positive. Value of groups:", groups);
  FABRIC_CHECK(c % groups == 0, ShapeError, "Number of channels must be divisible by groups. Got ",
               c, " channels and ", groups, " groups.");
  // torch returns the input itself (the same tensor, no new autograd node) when it is empty.
  if (x.numel() == 0) return x;
  return native_channel_shuffle(x, groups);
}

Tensor native_channel_shuffle(const Tensor& x, int64_t groups) {
  FABRIC_CHECK(x.defined(), ValueError, "native_channel_shuffle: undefined input");
  FABRIC_CHECK(groups > 0, ValueError,
               "native_channel_shuffle: number of groups to divide channels in must be positive, "
               "got ",
               groups);
  const int64_t b = x.size(0), c = x.size(1);
  // (N, groups, C / groups, rest) -> (N, C / groups, groups, rest). reshape, not torch's view:
  // torch's CPU path copies a non-contiguous input first, so any layout is taken; same values.
  return x.reshape({b, groups, c / groups, -1}).permute({0, 2, 1, 3}).contiguous().view(x.sizes());
}

}  // namespace functional
}  // namespace fabric::nn
