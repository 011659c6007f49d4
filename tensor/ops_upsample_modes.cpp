// interpolate's nearest-exact, bicubic and area modes as compositions (see upsample_modes.h). The
// index and weight tables are computed here on the host, in the precision torch 1.13's CPU
// kernels use (the input's scalar type for float64, float otherwise), so that the same input
// elements are read with the same weights.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/upsample_modes.h"

namespace fabric::upsample_modes {
namespace {

Tensor index_tensor(const std::vector<int64_t>& idx, const Tensor& like) {
  return from_vector(idx, {static_cast<int64_t>(idx.size())}, {.dtype = DType::int64})
      .to(like.device());
}

// torch's area_pixel_compute_scale: the source step per output element.
template <typename A>
A source_scale(const Axis& a, bool align_corners) {
  if (align_corners) return a.out > 1 ? static_cast<A>(a.in - 1) / static_cast<A>(a.out - 1) : A(0);
  return a.scale > 0 ? static_cast<A>(1.0 / a.scale) : static_cast<A>(a.in) / static_cast<A>(a.out);
}

// torch's nearest-exact source index (Pillow's and scipy's rounding of pixel centres), the last
// input repeating. float32: torch 1.13's nearest_neighbor_exact_compute_source_index,
// floorf((o + 0.5) * scale) with o + 0.5 in double and the float scale (computing it in float,
// with a fused multiply-add, moved 39 of 16384 size pairs' ties); float64: floor(scale * (o + 0.5)
// - 0.5 + 0.5) in double, as its kernel for those inputs.
template <typename A>
std::vector<int64_t> nearest_exact_indices(const Axis& a) {
  const A s = source_scale<A>(a, false);
  std::vector<int64_t> idx(static_cast<size_t>(a.out));
  for (int64_t o = 0; o < a.out; ++o) {
    int64_t i;
    if constexpr (std::is_same_v<A, float>) {
      i = static_cast<int64_t>(
          std::floor(static_cast<float>((static_cast<double>(o) + 0.5) * static_cast<double>(s))));
    } else {
      const A real = s * (static_cast<A>(o) + A(0.5)) - A(0.5);
      i = static_cast<int64_t>(std::floor(static_cast<float>(real + A(0.5))));
    }
    idx[o] = std::min(i, a.in - 1);
  }
  return idx;
}

// torch's cubic convolution with A = -0.75 (UpSample.h): the weights of inputs i-1 .. i+2 at
// fractional offset t past input i.
template <typename A>
void cubic_weights(A t, A w[4]) {
  const A k = A(-0.75);
  auto near = [k](A x) { return ((k + 2) * x - (k + 3)) * x * x + 1; };       // |x| <= 1
  auto far = [k](A x) { return ((k * x - 5 * k) * x + 8 * k) * x - 4 * k; };  // 1 < |x| < 2
  const A u = A(1) - t;
  w[0] = far(t + A(1));
  w[1] = near(t);
  w[2] = near(u);
  w[3] = far(u + A(1));
}

// Along dimension `dim` of x: sum over taps j of weight_j[o] * x[index_j[o]], the weights
// shaped (out, 1, ...) to broadcast over the dimensions after `dim`.
template <typename A>
Tensor bicubic_axis(const Tensor& x, int64_t dim, const Axis& a, bool align_corners) {
  const A s = source_scale<A>(a, align_corners);
  std::vector<std::vector<int64_t>> idx(4, std::vector<int64_t>(static_cast<size_t>(a.out)));
  std::vector<std::vector<A>> wts(4, std::vector<A>(static_cast<size_t>(a.out)));
  for (int64_t o = 0; o < a.out; ++o) {
    // Unlike linear, cubic does not clamp a negative source position (its taps reach past it).
    // The position is a double, as torch's CPU accumulation type for float32 (exact: s's 24 bits
    // times o + 0.5), and so is its fraction; a float position lost the fraction's precision past
    // 256 pixels (1920 -> 1080 moved outputs by 1e-5..1e-4).
    const double sd = static_cast<double>(s);
    const double real =
        align_corners ? sd * static_cast<double>(o) : sd * (static_cast<double>(o) + 0.5) - 0.5;
    // floorf, as torch: the position rounds to float before the floor.
    const double fl = std::floor(static_cast<float>(real));
    A w[4];
    cubic_weights<A>(static_cast<A>(real - fl), w);
    for (int j = 0; j < 4; ++j) {
      idx[j][o] = std::clamp<int64_t>(static_cast<int64_t>(fl) - 1 + j, 0, a.in - 1);
      wts[j][o] = w[j];
    }
  }
  Shape wshape(static_cast<size_t>(x.dim() - dim), 1);
  wshape[0] = a.out;
  Tensor y;
  for (int j = 0; j < 4; ++j) {
    const Tensor w =
        from_vector(wts[j], wshape, {.dtype = dtype_v<A>}).to(x.device()).to(x.dtype());
    const Tensor term = mul(index_select(x, dim, index_tensor(idx[j], x)), w);
    y = j == 0 ? term : add(y, term);
  }
  return y;
}

}  // namespace

Tensor nearest_exact(const Tensor& x, const std::vector<Axis>& axes) {
  Tensor y = x;
  for (size_t k = 0; k < axes.size(); ++k) {
    const auto idx = x.dtype() == DType::float64 ? nearest_exact_indices<double>(axes[k])
                                                 : nearest_exact_indices<float>(axes[k]);
    y = index_select(y, static_cast<int64_t>(k) + 2, index_tensor(idx, x));
  }
  return y;
}

Tensor bicubic(const Tensor& x, const std::vector<Axis>& axes, bool align_corners) {
  // float16/bfloat16 accumulate in float32, as torch's opmath type, and round once at the end.
  const bool f64 = x.dtype() == DType::float64;
  Tensor y = f64 ? x : x.to(DType::float32);
  for (size_t k = 0; k < axes.size(); ++k) {
    const int64_t dim = static_cast<int64_t>(k) + 2;
    y = f64 ? bicubic_axis<double>(y, dim, axes[k], align_corners)
            : bicubic_axis<float>(y, dim, axes[k], align_corners);
  }
  return y.dtype() == x.dtype() ? y : y.to(x.dtype());
}

Tensor area(const Tensor& x, const std::vector<Axis>& axes) {
  // torch's adaptive_avg_pool1d is the 2-d pool over a unit height.
  if (axes.size() == 1) return adaptive_avg_pool2d(x.unsqueeze(2), {1, axes[0].out}).squeeze(2);
  if (axes.size() == 2) return adaptive_avg_pool2d(x, {axes[0].out, axes[1].out});
  return adaptive_avg_pool3d(x, {axes[0].out, axes[1].out, axes[2].out});
}

}  // namespace fabric::upsample_modes
