// Harness cases for interpolate (nearest, bilinear) and pad (constant, reflect, replicate), each
// against a naive float64 reference written here from torch 1.13's formulas (UpSample.h's source
// indices, F.pad's index maps), with finite-difference gradients.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

// One dimension's (i0, i1, l0, l1) for output o, as torch computes them (nearest: float scale).
struct Taps {
  int64_t i0, i1;
  double l0, l1;
};
Taps ref_taps(bool bilinear, bool align, int64_t o, int64_t in, int64_t out, double scale) {
  if (!bilinear) {
    const float s = scale > 0 ? static_cast<float>(1.0 / scale)
                              : static_cast<float>(in) / static_cast<float>(out);
    const int64_t i =
        std::min<int64_t>(static_cast<int64_t>(std::floor(static_cast<float>(o) * s)), in - 1);
    return {i, i, 1, 0};
  }
  if (in == out) return {o, o, 1, 0};
  const double ratio = align ? (out > 1 ? double(in - 1) / double(out - 1) : 0.0)
                             : (scale > 0 ? 1.0 / scale : double(in) / double(out));
  const double real = align ? ratio * o : std::max(ratio * (o + 0.5) - 0.5, 0.0);
  const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(real)), in - 1);
  const double l1 = std::clamp(real - static_cast<double>(i0), 0.0, 1.0);
  return {i0, i0 + (i0 < in - 1 ? 1 : 0), 1 - l1, l1};
}

RefTensor ref_interpolate(const RefTensor& x, std::vector<int64_t> size, std::vector<double> scale,
                          bool bilinear, bool align) {
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  if (scale.size() == 1) scale.push_back(scale[0]);
  const int64_t OH = size.empty() ? static_cast<int64_t>(std::floor(H * scale[0])) : size[0];
  const int64_t OW = size.empty() ? static_cast<int64_t>(std::floor(W * scale[1])) : size[1];
  const double sh = scale.empty() ? 0 : scale[0], sw = scale.empty() ? 0 : scale[1];
  RefTensor out{{N, C, OH, OW}, std::vector<double>(static_cast<size_t>(N * C * OH * OW))};
  for (int64_t p = 0; p < N * C; ++p)
    for (int64_t oh = 0; oh < OH; ++oh) {
      const Taps r = ref_taps(bilinear, align, oh, H, OH, sh);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const Taps c = ref_taps(bilinear, align, ow, W, OW, sw);
        auto at = [&](int64_t h, int64_t w) { return x.v[(p * H + h) * W + w]; };
        out.v[(p * OH + oh) * OW + ow] = r.l0 * (c.l0 * at(r.i0, c.i0) + c.l1 * at(r.i0, c.i1)) +
                                         r.l1 * (c.l0 * at(r.i1, c.i0) + c.l1 * at(r.i1, c.i1));
      }
    }
  return out;
}

// F.pad: output index j of a padded dimension reads input j - left, reflected about the edges
// (reflect), clamped to them (replicate), or is `value` outside the input (constant).
RefTensor ref_pad(const RefTensor& x, const std::vector<int64_t>& pad, const std::string& mode,
                  double value) {
  const size_t nd = x.shape.size(), pairs = pad.size() / 2;
  Shape os = x.shape;
  for (size_t i = 0; i < pairs; ++i) os[nd - 1 - i] += pad[2 * i] + pad[2 * i + 1];
  RefTensor out{os, std::vector<double>(static_cast<size_t>(numel_of(os)))};
  std::vector<int64_t> idx(nd, 0), src(nd);
  for (int64_t flat = 0; flat < out.numel(); ++flat) {
    int64_t rem = flat;
    for (size_t d = nd; d-- > 0;) {
      idx[d] = rem % os[d];
      rem /= os[d];
    }
    bool inside = true;
    for (size_t d = 0; d < nd; ++d) {
      const size_t pair = nd - 1 - d;
      const int64_t in = x.shape[d];
      int64_t s = idx[d] - (pair < pairs ? pad[2 * pair] : 0);
      if (mode == "reflect") s = s < 0 ? -s : (s >= in ? 2 * (in - 1) - s : s);
      if (mode == "replicate") s = std::clamp<int64_t>(s, 0, in - 1);
      inside = inside && s >= 0 && s < in;
      src[d] = s;
    }
    out.v[flat] = inside ? x.at(src) : value;
  }
  return out;
}

OpCase interp_case(std::string name, Shape x, std::vector<int64_t> size, std::vector<double> scale,
                   std::string mode, std::optional<bool> align = std::nullopt) {
  return {"interpolate/" + name,
          {F(std::move(x))},
          [=](const std::vector<Tensor>& t) { return interpolate(t[0], size, scale, mode, align); },
          [=](const std::vector<RefTensor>& t) {
            return ref_interpolate(t[0], size, scale, mode == "bilinear", align.value_or(false));
          }};
}

OpCase pad_case(std::string name, Shape x, std::vector<int64_t> pad, std::string mode,
                double value = 0) {
  return {"pad/" + name,
          {F(std::move(x))},
          [=](const std::vector<Tensor>& t) { return fabric::pad(t[0], pad, mode, value); },
          [=](const std::vector<RefTensor>& t) { return ref_pad(t[0], pad, mode, value); }};
}

}  // namespace

std::vector<OpCase> upsample_op_cases() {
  return {
      interp_case("nearest_up", {2, 3, 3, 4}, {5, 7}, {}, "nearest"),
      interp_case("nearest_down", {1, 2, 5, 7}, {3, 4}, {}, "nearest"),
      interp_case("nearest_double", {1, 2, 3, 4}, {6, 8}, {}, "nearest"),
      interp_case("nearest_scale_1.7", {1, 2, 3, 4}, {}, {1.7}, "nearest"),
      interp_case("bilinear_up", {2, 2, 3, 4}, {5, 7}, {}, "bilinear"),
      interp_case("bilinear_down", {1, 2, 5, 7}, {3, 4}, {}, "bilinear"),
      interp_case("bilinear_align_corners", {1, 2, 3, 4}, {5, 9}, {}, "bilinear", true),
      interp_case("bilinear_align_corners_to_1", {1, 1, 4, 3}, {1, 5}, {}, "bilinear", true),
      interp_case("bilinear_scale_0.6x2.5", {1, 2, 5, 3}, {}, {0.6, 2.5}, "bilinear"),
      interp_case("bilinear_same_width", {1, 1, 3, 4}, {6, 4}, {}, "bilinear"),
      pad_case("constant_pad_and_crop", {2, 3, 4}, {1, -1, 0, 2, 1, 0}, "constant", 1.5),
      pad_case("constant_last_dim", {3, 5}, {2, 3}, "constant"),
      pad_case("reflect_1d", {2, 3, 5}, {2, 4}, "reflect"),
      pad_case("reflect_2d", {2, 2, 3, 4}, {1, 3, 2, 1}, "reflect"),
      pad_case("reflect_2d_unbatched_crop", {2, 3, 4}, {-1, 2, 1, -1}, "reflect"),
      pad_case("replicate_1d", {3, 4}, {2, 5}, "replicate"),
      pad_case("replicate_2d", {2, 1, 2, 3}, {3, 1, 0, 4}, "replicate"),
  };
}

TEST(OpHarness, Upsample) { run_cases(upsample_op_cases()); }
TEST(OpHarnessCuda, Upsample) { run_cases_on_cuda(upsample_op_cases()); }

}  // namespace fabric::harness
