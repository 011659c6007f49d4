// PixelShuffle and PixelUnshuffle: the ops, whose checks (torch's messages) run at forward as
// torch's do.
#include "nn/pixel_shuffle.h"

#include "tensor/ops.h"

namespace fabric::nn {

Tensor PixelShuffle::forward(const Tensor& x) { return pixel_shuffle(x, options_.upscale_factor); }

Tensor PixelUnshuffle::forward(const Tensor& x) {
  return pixel_unshuffle(x, options_.downscale_factor);
}

}  // namespace fabric::nn
