// Harness cases for interpolate (every mode), pad (every mode) and pixel_shuffle/unshuffle, each
// against a naive float64 reference written here from torch 1.13's formulas (UpSample.h's source
// indices and cubic convolution, adaptive pooling's windows, F.pad's index maps), with
// finite-difference gradients.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

// The (input, weight) pairs output o of one spatial dimension reads, from the definitions: nearest
// as ref_taps, nearest-exact rounds the pixel centre (o + 0.5) * in / out down, bicubic weighs
// the four inputs around the source position with Keys' kernel (a = -0.75, edges clamped), area
// averages the window [floor(o * in / out), ceil((o + 1) * in / out)).
std::vector<std::pair<int64_t, double>> ref_reads(const std::string& mode, bool align, int64_t o,
                                                  int64_t in, int64_t out, double scale) {
  const double ratio = align ? (out > 1 ? double(in - 1) / double(out - 1) : 0.0)
                             : (scale > 0 ? 1.0 / scale : double(in) / double(out));
  if (mode == "nearest" || mode == "linear" || mode == "bilinear" || mode == "trilinear") {
    const Taps t = ref_taps(mode != "nearest", align, o, in, out, scale);
    return {{t.i0, t.l0}, {t.i1, t.l1}};
  }
  if (mode == "nearest-exact")
    return {{std::min<int64_t>(static_cast<int64_t>(std::floor((o + 0.5) * ratio)), in - 1), 1.0}};
  if (mode == "bicubic") {
    const double real = align ? ratio * o : ratio * (o + 0.5) - 0.5, a = -0.75;
    const int64_t base = static_cast<int64_t>(std::floor(real));
    std::vector<std::pair<int64_t, double>> reads;
    for (int64_t i = base - 1; i <= base + 2; ++i) {
      const double d = std::abs(real - static_cast<double>(i));
      const double w =
          d <= 1 ? ((a + 2) * d - (a + 3)) * d * d + 1 : ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
      reads.push_back({std::clamp<int64_t>(i, 0, in - 1), w});
    }
    return reads;
  }
  const int64_t lo = (o * in) / out, hi = ((o + 1) * in + out - 1) / out;  // area
  std::vector<std::pair<int64_t, double>> reads;
  for (int64_t i = lo; i < hi; ++i) reads.push_back({i, 1.0 / static_cast<double>(hi - lo)});
  return reads;
}

// interpolate on (N, C, L), (N, C, H, W) or (N, C, D, H, W) in any mode: each output sums the
// products of its reads along every spatial dimension.
RefTensor ref_interpolate_mode(const RefTensor& x, std::vector<int64_t> size,
                               std::vector<double> scale, const std::string& mode, bool align) {
  const size_t dims = x.shape.size() - 2;
  if (size.size() == 1) size.assign(dims, size[0]);
  if (scale.size() == 1) scale.assign(dims, scale[0]);
  Shape os = x.shape;
  // Per spatial dimension, each output's reads (area recomputes its scale from the sizes).
  std::vector<std::vector<std::vector<std::pair<int64_t, double>>>> reads(dims);
  for (size_t k = 0; k < dims; ++k) {
    const int64_t in = x.shape[k + 2];
    const int64_t out = size.empty()
                            ? static_cast<int64_t>(std::floor(static_cast<double>(in) * scale[k]))
                            : size[k];
    const double sc = scale.empty() || mode == "area" ? 0.0 : scale[k];
    os[k + 2] = out;
    for (int64_t o = 0; o < out; ++o) reads[k].push_back(ref_reads(mode, align, o, in, out, sc));
  }
  int64_t n = 1;
  for (int64_t v : os) n *= v;
  RefTensor out{os, std::vector<double>(static_cast<size_t>(n))};
  std::vector<int64_t> idx(os.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i;
    for (size_t d = os.size(); d-- > 0;) {
      idx[d] = rem % os[d];
      rem /= os[d];
    }
    // Sum over every combination of the spatial reads: an odometer over their positions.
    double acc = 0;
    std::vector<size_t> pos(dims, 0);
    while (true) {
      double w = 1;
      int64_t flat = idx[0] * x.shape[1] + idx[1];
      for (size_t k = 0; k < dims; ++k) {
        const auto& [src, wk] = reads[k][static_cast<size_t>(idx[k + 2])][pos[k]];
        w *= wk;
        flat = flat * x.shape[k + 2] + src;
      }
      acc += w * x.v[static_cast<size_t>(flat)];
      size_t k = dims;
      while (k-- > 0) {
        if (++pos[k] < reads[k][static_cast<size_t>(idx[k + 2])].size()) break;
        pos[k] = 0;
      }
      if (k == static_cast<size_t>(-1)) break;
    }
    out.v[static_cast<size_t>(i)] = acc;
  }
  return out;
}

// pixel_shuffle: output (c, h * r + i, w * r + j) is input (c * r * r + i * r + j, h, w);
// pixel_unshuffle the reverse.
RefTensor ref_pixel_shuffle(const RefTensor& x, int64_t r, bool shuffle) {
  const size_t nd = x.shape.size();
  Shape os = x.shape;
  if (shuffle) {
    os[nd - 3] /= r * r;
    os[nd - 2] *= r;
    os[nd - 1] *= r;
  } else {
    os[nd - 3] *= r * r;
    os[nd - 2] /= r;
    os[nd - 1] /= r;
  }
  const Shape& big = shuffle ? os : x.shape;  // the (C, H*r, W*r) side
  RefTensor out{os, std::vector<double>(static_cast<size_t>(numel_of(os)))};
  const int64_t batch = numel_of(os) / (os[nd - 3] * os[nd - 2] * os[nd - 1]);
  const int64_t C = big[nd - 3], BH = big[nd - 2], BW = big[nd - 1];
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < BH; ++y)
        for (int64_t z = 0; z < BW; ++z) {
          const int64_t small_c = c * r * r + (y % r) * r + (z % r);
          const int64_t big_i = ((b * C + c) * BH + y) * BW + z;
          const int64_t small_i = ((b * C * r * r + small_c) * (BH / r) + y / r) * (BW / r) + z / r;
          if (shuffle)
            out.v[big_i] = x.v[small_i];
          else
            out.v[small_i] = x.v[big_i];
        }
  return out;
}

// F.pad: output index j of a padded dimension reads input j - left, reflected about the edges
// (reflect), clamped to them (replicate), wrapped around the input left after cropping the
// negative pads (circular), or is `value` outside the input (constant).
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
      const int64_t l = pair < pairs ? pad[2 * pair] : 0, r = pair < pairs ? pad[2 * pair + 1] : 0;
      int64_t s = idx[d] - l;
      if (mode == "circular") {
        const int64_t first = std::max<int64_t>(-l, 0);
        const int64_t kept = in - first - std::max<int64_t>(-r, 0);
        s = first + ((idx[d] - std::max<int64_t>(l, 0)) % kept + kept) % kept;
      }
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

OpCase mode_case(std::string name, Shape x, std::vector<int64_t> size, std::vector<double> scale,
                 std::string mode, std::optional<bool> align = std::nullopt) {
  return {"interpolate/" + name,
          {F(std::move(x))},
          [=](const std::vector<Tensor>& t) { return interpolate(t[0], size, scale, mode, align); },
          [=](const std::vector<RefTensor>& t) {
            return ref_interpolate_mode(t[0], size, scale, mode, align.value_or(false));
          }};
}

OpCase shuffle_case(std::string name, Shape x, int64_t r, bool shuffle) {
  return {(shuffle ? "pixel_shuffle/" : "pixel_unshuffle/") + name,
          {F(std::move(x))},
          [=](const std::vector<Tensor>& t) {
            return shuffle ? pixel_shuffle(t[0], r) : pixel_unshuffle(t[0], r);
          },
          [=](const std::vector<RefTensor>& t) { return ref_pixel_shuffle(t[0], r, shuffle); }};
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
      pad_case("reflect_3d", {1, 2, 3, 3, 4}, {1, 2, 2, 0, 1, 1}, "reflect"),
      pad_case("reflect_3d_unbatched_crop", {2, 3, 3, 4}, {-1, 2, 1, -1, 2, 0}, "reflect"),
      pad_case("replicate_3d", {2, 1, 2, 3, 2}, {3, 1, 0, 2, 1, 2}, "replicate"),
      pad_case("circular_1d", {2, 3, 5}, {2, 4}, "circular"),
      pad_case("circular_1d_crop_then_wrap", {1, 2, 4}, {-1, 2}, "circular"),
      pad_case("circular_2d", {2, 2, 3, 4}, {1, 3, 3, 2}, "circular"),
      pad_case("circular_2d_crop", {1, 2, 4, 4}, {2, -1, -2, 1}, "circular"),
      pad_case("circular_3d", {1, 2, 2, 3, 4}, {1, 2, 0, 3, 2, 1}, "circular"),
      mode_case("nearest_1d_up", {2, 3, 5}, {8}, {}, "nearest"),
      mode_case("nearest_1d_scale_0.7", {1, 2, 7}, {}, {0.7}, "nearest"),
      mode_case("linear_1d_up", {2, 2, 4}, {9}, {}, "linear"),
      mode_case("linear_1d_down_align_corners", {1, 3, 9}, {4}, {}, "linear", true),
      mode_case("linear_1d_scale_1.6", {1, 2, 5}, {}, {1.6}, "linear"),
      mode_case("nearest_exact_1d", {2, 2, 5}, {7}, {}, "nearest-exact"),
      mode_case("nearest_exact_up", {1, 2, 3, 4}, {5, 9}, {}, "nearest-exact"),
      mode_case("nearest_exact_down", {1, 2, 7, 6}, {3, 4}, {}, "nearest-exact"),
      mode_case("bicubic_up", {2, 1, 3, 4}, {5, 7}, {}, "bicubic"),
      mode_case("bicubic_down", {1, 2, 6, 7}, {3, 4}, {}, "bicubic"),
      mode_case("bicubic_align_corners", {1, 2, 3, 4}, {5, 6}, {}, "bicubic", true),
      mode_case("bicubic_scale_1.7x0.6", {1, 1, 4, 5}, {}, {1.7, 0.6}, "bicubic"),
      mode_case("area_down", {2, 2, 6, 7}, {3, 4}, {}, "area"),
      mode_case("area_up", {1, 2, 3, 4}, {5, 6}, {}, "area"),
      mode_case("area_1d", {2, 3, 7}, {3}, {}, "area"),
      mode_case("area_scale_0.5", {1, 2, 4, 6}, {}, {0.5}, "area"),
      mode_case("area_to_zero_height", {1, 2, 4, 4}, {0, 2}, {}, "area"),
      // 5-D (N, C, D, H, W): the 3-d kernels (nearest, trilinear) and compositions.
      mode_case("nearest_3d_up", {1, 2, 2, 3, 4}, {3, 5, 7}, {}, "nearest"),
      mode_case("nearest_3d_scale_1.7x0.6x2", {1, 2, 3, 5, 2}, {}, {1.7, 0.6, 2.0}, "nearest"),
      mode_case("trilinear_up", {1, 2, 2, 3, 4}, {3, 5, 7}, {}, "trilinear"),
      mode_case("trilinear_down", {2, 1, 5, 4, 6}, {2, 3, 4}, {}, "trilinear"),
      mode_case("trilinear_align_corners", {1, 2, 3, 2, 4}, {4, 5, 3}, {}, "trilinear", true),
      mode_case("trilinear_scale_2", {1, 1, 2, 2, 3}, {}, {2.0}, "trilinear"),
      mode_case("nearest_exact_3d", {1, 2, 3, 4, 2}, {5, 3, 4}, {}, "nearest-exact"),
      mode_case("area_3d_down", {1, 2, 5, 6, 7}, {2, 4, 3}, {}, "area"),
      mode_case("area_3d_to_zero_depth", {1, 2, 3, 4, 5}, {0, 2, 2}, {}, "area"),
      shuffle_case("r2", {2, 8, 3, 2}, 2, true),
      shuffle_case("r3_extra_batch_dims", {2, 1, 9, 2, 2}, 3, true),
      shuffle_case("unbatched", {4, 2, 3}, 2, true),
      shuffle_case("r2", {2, 2, 4, 6}, 2, false),
      shuffle_case("r3_unbatched", {1, 3, 6}, 3, false),
  };
}

TEST(OpHarness, Upsample) { run_cases(upsample_op_cases()); }
TEST(OpHarnessCuda, Upsample) { run_cases_on_cuda(upsample_op_cases()); }

}  // namespace fabric::harness
