// pixel_shuffle / pixel_unshuffle as torch 1.13 (its checks and messages), each a view, a permute
// and one copying reshape: (*, C*r*r, H, W) <-> (*, C, H*r, W*r). Being compositions of recorded
// view ops, their gradients (each the other's shuffle) and double backward come from those ops.
#include <vector>

#include "tensor/autocast.h"
#include "tensor/ops.h"
#include "tensor/shape.h"

namespace fabric {

Tensor pixel_shuffle(const Tensor& x_in, int64_t r) {
  FABRIC_CHECK(x_in.defined(), ValueError, "pixel_shuffle: undefined input");
  Tensor x = x_in;
  apply_autocast(OpId::pixel_shuffle, {&x});
  FABRIC_CHECK(x.dim() >= 3, ShapeError,
               "pixel_shuffle expects input to have at least 3 dimensions, but got input with ",
               x.dim(), " dimension(s) (shape ", shape_str(x.sizes()), ")");
  FABRIC_CHECK(r > 0, ValueError, "pixel_shuffle expects a positive upscale_factor, but got ", r);
  const int64_t nd = x.dim(), c = x.size(nd - 3), h = x.size(nd - 2), w = x.size(nd - 1);
  FABRIC_CHECK(c % (r * r) == 0, ShapeError,
               "pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
               "square of upscale_factor, but input.size(-3)=",
               c, " is not divisible by ", r * r, " (input ", shape_str(x.sizes()), ")");
  const Shape batch(x.sizes().begin(), x.sizes().end() - 3);
  const int64_t b = static_cast<int64_t>(batch.size());
  // (*, C, r, r, H, W) -> (*, C, H, r, W, r) -> (*, C, H*r, W*r)
  Shape split = batch;
  split.insert(split.end(), {c / (r * r), r, r, h, w});
  std::vector<int64_t> order;
  for (int64_t i = 0; i < b; ++i) order.push_back(i);
  order.insert(order.end(), {b, b + 3, b + 1, b + 4, b + 2});
  Shape out = batch;
  out.insert(out.end(), {c / (r * r), h * r, w * r});
  return x.reshape(split).permute(order).contiguous().view(out);
}

Tensor pixel_unshuffle(const Tensor& x_in, int64_t r) {
  FABRIC_CHECK(x_in.defined(), ValueError, "pixel_unshuffle: undefined input");
  Tensor x = x_in;
  apply_autocast(OpId::pixel_unshuffle, {&x});
  FABRIC_CHECK(x.dim() >= 3, ShapeError,
               "pixel_unshuffle expects input to have at least 3 dimensions, but got input with ",
               x.dim(), " dimension(s) (shape ", shape_str(x.sizes()), ")");
  FABRIC_CHECK(r > 0, ValueError, "pixel_unshuffle expects a positive downscale_factor, but got ",
               r);
  const int64_t nd = x.dim(), c = x.size(nd - 3), h = x.size(nd - 2), w = x.size(nd - 1);
  FABRIC_CHECK(h % r == 0, ShapeError,
               "pixel_unshuffle expects height to be divisible by downscale_factor, but "
               "input.size(-2)=",
               h, " is not divisible by ", r, " (input ", shape_str(x.sizes()), ")");
  FABRIC_CHECK(w % r == 0, ShapeError,
               "pixel_unshuffle expects width to be divisible by downscale_factor, but "
               "input.size(-1)=",
               w, " is not divisible by ", r, " (input ", shape_str(x.sizes()), ")");
  const Shape batch(x.sizes().begin(), x.sizes().end() - 3);
  const int64_t b = static_cast<int64_t>(batch.size());
  // (*, C, H, r, W, r) -> (*, C, r, r, H, W) -> (*, C*r*r, H, W)
  Shape split = batch;
  split.insert(split.end(), {c, h / r, r, w / r, r});
  std::vector<int64_t> order;
  for (int64_t i = 0; i < b; ++i) order.push_back(i);
  order.insert(order.end(), {b, b + 2, b + 4, b + 1, b + 3});
  Shape out = batch;
  out.insert(out.end(), {c * r * r, h / r, w / r});
  return x.reshape(split).permute(order).contiguous().view(out);
}

}  // namespace fabric
