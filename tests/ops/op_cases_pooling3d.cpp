// Harness cases for max_pool3d, avg_pool3d, adaptive_avg_pool3d, adaptive_max_pool3d/2d/1d,
// lp_pool1d/2d, unfold and fold, each against a naive float64 reference written here, with
// finite-difference gradients (random inputs: max ties have probability zero in float64).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using Sizes = std::vector<int64_t>;

Sizes expand(Sizes v, size_t n) { return v.size() == 1 ? Sizes(n, v[0]) : v; }

int64_t lo(int64_t i, int64_t in, int64_t out) {
  return static_cast<int64_t>(std::floor(static_cast<double>(i) * in / out));
}
int64_t hi(int64_t i, int64_t in, int64_t out) {
  return static_cast<int64_t>(std::ceil(static_cast<double>(i + 1) * in / out));
}

// One (begin, end) window per output of each of the last `n` dims; `avg_div` the divisor (0: the
// window's size). Reduces each window of every plane with max or mean.
struct Windows {
  std::vector<std::vector<std::pair<int64_t, int64_t>>> dims;  // per dim, per output
  int64_t divisor = 0;
};

RefTensor ref_windows(const RefTensor& x, const Windows& w, bool max) {
  const size_t n = w.dims.size(), nd = x.shape.size();
  Shape in(x.shape.end() - n, x.shape.end()), os = x.shape;
  for (size_t i = 0; i < n; ++i) os[nd - n + i] = static_cast<int64_t>(w.dims[i].size());
  const int64_t in_plane = numel_of(in), planes = in_plane ? x.numel() / in_plane : 0;
  Shape out_dims(os.end() - n, os.end());
  RefTensor out{os, {}};
  for (int64_t p = 0; p < planes; ++p) {
    std::vector<int64_t> o(n, 0);
    for (int64_t k = 0; k < numel_of(out_dims); ++k) {
      // Every input position of the window (row-major), with the window's product of sizes.
      double acc = max ? -std::numeric_limits<double>::infinity() : 0.0;
      int64_t count = 1;
      for (size_t i = 0; i < n; ++i) count *= w.dims[i][o[i]].second - w.dims[i][o[i]].first;
      std::vector<int64_t> at(n);
      for (size_t i = 0; i < n; ++i) at[i] = w.dims[i][o[i]].first;
      for (int64_t c = 0; c < count; ++c) {
        int64_t flat = 0;
        for (size_t i = 0; i < n; ++i) flat = flat * in[i] + at[i];
        const double v = x.v[p * in_plane + flat];
        acc = max ? std::max(acc, v) : acc + v;
        for (size_t i = n; i-- > 0;) {
          if (++at[i] < w.dims[i][o[i]].second) break;
          at[i] = w.dims[i][o[i]].first;
        }
      }
      out.v.push_back(max ? acc : acc / static_cast<double>(w.divisor ? w.divisor : count));
      for (size_t i = n; i-- > 0;) {
        if (++o[i] < out_dims[i]) break;
        o[i] = 0;
      }
    }
  }
  return out;
}

Windows fixed_windows(const Shape& x, Sizes k, Sizes s, Sizes p, size_t n) {
  k = expand(k, n);
  s = s.empty() ? k : expand(s, n);
  p = expand(p, n);
  Windows w;
  w.divisor = 1;
  for (size_t i = 0; i < n; ++i) {
    const int64_t L = x[x.size() - n + i], O = (L + 2 * p[i] - k[i]) / s[i] + 1;
    w.dims.emplace_back();
    for (int64_t o = 0; o < O; ++o) {
      const int64_t b = o * s[i] - p[i];
      w.dims.back().push_back({std::max<int64_t>(b, 0), std::min(b + k[i], L)});
    }
    w.divisor *= k[i];
  }
  return w;
}

Windows adaptive_windows(const Shape& x, Sizes out, size_t n) {
  out = expand(out, n);
  Windows w;
  for (size_t i = 0; i < n; ++i) {
    const int64_t L = x[x.size() - n + i];
    w.dims.emplace_back();
    for (int64_t o = 0; o < out[i]; ++o)
      w.dims.back().push_back({lo(o, L, out[i]), hi(o, L, out[i])});
  }
  return w;
}

OpCase pool3d_case(bool max, std::string name, Shape x, Sizes k, Sizes s, Sizes p) {
  return {std::string(max ? "max_pool3d/" : "avg_pool3d/") + name,
          {F(x)},
          [=](const std::vector<Tensor>& t) {
            return max ? max_pool3d(t[0], k, s, p) : avg_pool3d(t[0], k, s, p);
          },
          [=](const std::vector<RefTensor>& t) {
            return ref_windows(t[0], fixed_windows(t[0].shape, k, s, p, 3), max);
          }};
}

OpCase adaptive_avg3d_case(std::string name, Shape x, Sizes out) {
  return {"adaptive_avg_pool3d/" + name,
          {F(x)},
          [=](const std::vector<Tensor>& t) { return adaptive_avg_pool3d(t[0], out); },
          [=](const std::vector<RefTensor>& t) {
            return ref_windows(t[0], adaptive_windows(t[0].shape, out, 3), false);
          }};
}

OpCase adaptive_max3d_case(std::string name, Shape x, Sizes out) {
  return {"adaptive_max_pool3d/" + name,
          {F(x)},
          [=](const std::vector<Tensor>& t) { return std::get<0>(adaptive_max_pool3d(t[0], out)); },
          [=](const std::vector<RefTensor>& t) {
            return ref_windows(t[0], adaptive_windows(t[0].shape, out, 3), true);
          }};
}

OpCase adaptive_max2d_case(std::string name, Shape x, Sizes out) {
  return {"adaptive_max_pool2d/" + name,
          {F(x)},
          [=](const std::vector<Tensor>& t) { return std::get<0>(adaptive_max_pool2d(t[0], out)); },
          [=](const std::vector<RefTensor>& t) {
            return ref_windows(t[0], adaptive_windows(t[0].shape, out, 2), true);
          }};
}

OpCase adaptive_max1d_case(std::string name, Shape x, int64_t out) {
  return {"adaptive_max_pool1d/" + name,
          {F(x)},
          [=](const std::vector<Tensor>& t) { return std::get<0>(adaptive_max_pool1d(t[0], out)); },
          [=](const std::vector<RefTensor>& t) {
            return ref_windows(t[0], adaptive_windows(t[0].shape, {out}, 1), true);
          }};
}

// (sum over the window of x^p)^(1/p): the mean times the kernel's size, then the root.
RefTensor ref_lp(const RefTensor& x, double p, Sizes k, Sizes s, size_t n) {
  RefTensor xp = x;
  for (double& v : xp.v) v = std::pow(v, p);
  RefTensor out = ref_windows(xp, fixed_windows(x.shape, k, s, {0}, n), false);
  const Sizes ke = expand(k, n);
  double area = 1;
  for (int64_t v : ke) area *= static_cast<double>(v);
  for (double& v : out.v) v = std::pow(v * area, 1.0 / p);
  return out;
}

OpCase lp2d_case(std::string name, InputSpec x, double p, Sizes k, Sizes s) {
  return {"lp_pool2d/" + name,
          {std::move(x)},
          [=](const std::vector<Tensor>& t) { return lp_pool2d(t[0], p, k, s); },
          [=](const std::vector<RefTensor>& t) { return ref_lp(t[0], p, k, s, 2); },
          {DType::float64, DType::float32, DType::bfloat16, DType::float16},
          2.0};
}

OpCase lp1d_case(std::string name, InputSpec x, double p, int64_t k, std::optional<int64_t> s) {
  return {"lp_pool1d/" + name,
          {std::move(x)},
          [=](const std::vector<Tensor>& t) { return lp_pool1d(t[0], p, k, s); },
          [=](const std::vector<RefTensor>& t) { return ref_lp(t[0], p, {k}, {s.value_or(k)}, 1); },
          {DType::float64, DType::float32, DType::bfloat16, DType::float16},
          2.0};
}

struct FoldGeom {
  Sizes k, d = {1, 1}, p = {0, 0}, s = {1, 1};
};

int64_t blocks(int64_t n, int64_t k, int64_t d, int64_t p, int64_t s) {
  return (n + 2 * p - (d * (k - 1) + 1)) / s + 1;
}

// Column (c*kh*kw + i*kw + j, bh*BW + bw) reads pixel (c, bh*s - p + i*d, bw*s - p + j*d): the
// same map read (unfold) or summed into (fold).
template <typename F>
void for_each_entry(int64_t C, int64_t H, int64_t W, const FoldGeom& g, F&& f) {
  const int64_t BH = blocks(H, g.k[0], g.d[0], g.p[0], g.s[0]);
  const int64_t BW = blocks(W, g.k[1], g.d[1], g.p[1], g.s[1]);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < g.k[0]; ++i)
      for (int64_t j = 0; j < g.k[1]; ++j)
        for (int64_t bh = 0; bh < BH; ++bh)
          for (int64_t bw = 0; bw < BW; ++bw) {
            const int64_t h = bh * g.s[0] - g.p[0] + i * g.d[0];
            const int64_t w = bw * g.s[1] - g.p[1] + j * g.d[1];
            const int64_t col = ((c * g.k[0] + i) * g.k[1] + j) * BH * BW + bh * BW + bw;
            f(col, h >= 0 && h < H && w >= 0 && w < W ? (c * H + h) * W + w : -1);
          }
}

RefTensor ref_unfold(const RefTensor& x, const FoldGeom& g) {
  const size_t nd = x.shape.size();
  const int64_t C = x.shape[nd - 3], H = x.shape[nd - 2], W = x.shape[nd - 1];
  const int64_t N = nd == 4 ? x.shape[0] : 1;
  const int64_t L =
      blocks(H, g.k[0], g.d[0], g.p[0], g.s[0]) * blocks(W, g.k[1], g.d[1], g.p[1], g.s[1]);
  const int64_t rows = C * g.k[0] * g.k[1];
  RefTensor out{nd == 4 ? Shape{N, rows, L} : Shape{rows, L},
                std::vector<double>(static_cast<size_t>(N * rows * L))};
  for (int64_t n = 0; n < N; ++n)
    for_each_entry(C, H, W, g, [&](int64_t col, int64_t px) {
      out.v[n * rows * L + col] = px < 0 ? 0.0 : x.v[n * C * H * W + px];
    });
  return out;
}

RefTensor ref_fold(const RefTensor& x, Sizes size, const FoldGeom& g) {
  const size_t nd = x.shape.size();
  const int64_t N = nd == 3 ? x.shape[0] : 1, rows = x.shape[nd - 2], L = x.shape[nd - 1];
  const int64_t C = rows / (g.k[0] * g.k[1]), H = size[0], W = size[1];
  RefTensor out{nd == 3 ? Shape{N, C, H, W} : Shape{C, H, W},
                std::vector<double>(static_cast<size_t>(N * C * H * W))};
  for (int64_t n = 0; n < N; ++n)
    for_each_entry(C, H, W, g, [&](int64_t col, int64_t px) {
      if (px >= 0) out.v[n * C * H * W + px] += x.v[n * rows * L + col];
    });
  return out;
}

OpCase unfold_case(std::string name, Shape x, FoldGeom g) {
  return {"unfold/" + name,
          {F(x)},
          [=](const std::vector<Tensor>& t) { return unfold(t[0], g.k, g.d, g.p, g.s); },
          [=](const std::vector<RefTensor>& t) { return ref_unfold(t[0], g); }};
}

OpCase fold_case(std::string name, Shape x, Sizes size, FoldGeom g) {
  return {"fold/" + name,
          {F(x)},
          [=](const std::vector<Tensor>& t) { return fold(t[0], size, g.k, g.d, g.p, g.s); },
          [=](const std::vector<RefTensor>& t) { return ref_fold(t[0], size, g); }};
}

std::vector<OpCase> pooling3d_cases() {
  return {
      pool3d_case(true, "k2", {2, 2, 4, 4, 4}, {2}, {}, {0}),
      pool3d_case(true, "k3_s2_p1", {1, 2, 5, 6, 7}, {3}, {2}, {1}),
      pool3d_case(true, "rect", {1, 2, 4, 5, 6}, {2, 3, 1}, {1, 2, 1}, {1, 1, 0}),
      pool3d_case(true, "unbatched", {2, 3, 4, 5}, {2}, {1}, {1}),
      pool3d_case(true, "empty_batch", {0, 2, 3, 3, 3}, {2}, {}, {0}),
      pool3d_case(false, "k2", {2, 2, 4, 4, 4}, {2}, {}, {0}),
      pool3d_case(false, "k3_s2_p1", {1, 2, 5, 6, 7}, {3}, {2}, {1}),
      pool3d_case(false, "rect", {1, 2, 4, 5, 6}, {2, 3, 1}, {1, 2, 1}, {1, 1, 0}),
      pool3d_case(false, "unbatched", {2, 3, 4, 5}, {2}, {1}, {1}),
      adaptive_avg3d_case("divisible", {2, 2, 4, 6, 4}, {2, 3, 2}),
      adaptive_avg3d_case("non_divisible", {1, 2, 5, 7, 3}, {3, 4, 2}),
      adaptive_avg3d_case("global", {2, 3, 3, 4, 5}, {1}),
      adaptive_avg3d_case("larger_than_input", {1, 1, 2, 3, 2}, {3, 4, 3}),
      adaptive_avg3d_case("unbatched", {2, 4, 5, 6}, {2, 3, 4}),
      adaptive_max3d_case("divisible", {2, 2, 4, 6, 4}, {2, 3, 2}),
      adaptive_max3d_case("non_divisible", {1, 2, 5, 7, 3}, {3, 4, 2}),
      adaptive_max3d_case("global", {2, 3, 3, 4, 5}, {1}),
      adaptive_max3d_case("larger_than_input", {1, 1, 2, 3, 2}, {3, 4, 3}),
      adaptive_max3d_case("unbatched", {2, 4, 5, 6}, {2, 3, 4}),
      adaptive_max3d_case("empty_batch", {0, 2, 3, 3, 3}, {2}),
      adaptive_max2d_case("divisible", {2, 3, 8, 6}, {4, 3}),
      adaptive_max2d_case("non_divisible", {2, 2, 7, 5}, {3, 4}),
      adaptive_max2d_case("global", {2, 3, 5, 7}, {1}),
      adaptive_max2d_case("larger_than_input", {1, 2, 3, 4}, {5, 7}),
      adaptive_max2d_case("unbatched", {3, 5, 6}, {2, 4}),
      adaptive_max2d_case("empty_batch", {0, 3, 5, 5}, {2}),
      adaptive_max1d_case("non_divisible", {2, 3, 11}, 4),
      adaptive_max1d_case("unbatched", {3, 7}, 3),
      lp2d_case("p2", F({2, 3, 6, 6}), 2.0, {2}, {}),
      lp2d_case("p3_positive_rect", P({1, 2, 5, 7}, 0.5, 2), 3.0, {2, 3}, {1, 2}),
      lp1d_case("p2", F({2, 3, 9}), 2.0, 3, std::nullopt),
      lp1d_case("p3_positive_stride", P({3, 10}, 0.5, 2), 3.0, 3, 2),
      unfold_case("k2", {2, 3, 4, 5}, {{2, 2}}),
      unfold_case("k3_all_args", {1, 2, 6, 7}, {{3, 2}, {2, 1}, {1, 2}, {2, 3}}),
      unfold_case("unbatched", {2, 5, 5}, {{3, 3}, {1, 1}, {1, 1}, {2, 2}}),
      unfold_case("empty_batch", {0, 2, 4, 4}, {{2, 2}}),
      fold_case("overlapping", {2, 12, 12}, {4, 5}, {{2, 2}}),
      fold_case("all_args", {1, 12, 8}, {6, 7}, {{3, 2}, {2, 1}, {1, 2}, {2, 3}}),
      fold_case("unbatched", {18, 9}, {5, 5}, {{3, 3}, {1, 1}, {1, 1}, {2, 2}}),
      fold_case("empty_batch", {0, 8, 12}, {4, 5}, {{2, 2}}),
  };
}

TEST(OpHarness, Pooling3d) { run_cases(pooling3d_cases()); }
TEST(OpHarnessCuda, Pooling3d) { run_cases_on_cuda(pooling3d_cases()); }

}  // namespace
}  // namespace fabric::harness
