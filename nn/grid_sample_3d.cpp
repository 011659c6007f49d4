// grid_sample over (N, C, D, H, W) as torch 1.13's scalar CPU kernel computes it
// (aten/src/ATen/native/GridSampler.cpp, grid_sampler_3d_cpu_impl and its backward, with
// GridSampler.h's coordinate helpers): point by point, channel by channel, the eight corners in
// torch's order (tnw, tne, tsw, tse, bnw, bne, bsw, bse) and each product and sum as written
// there, so float32 and float64 match torch's bits.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "nn/grid_sample_kernels.h"

// Every rounding below is torch's separate multiply and add: no fused multiply-adds.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace fabric::nn::grid_sample_detail {
namespace {

// static_cast<int64_t> of an integral value; x86 gives int64's minimum for NaN or out-of-range
// values, which the bounds tests then reject.
template <typename T>
int64_t as_index(T v) {
  if (!(v >= T(-9223372036854775808.0) && v < T(9223372036854775808.0))) return INT64_MIN;
  return static_cast<int64_t>(v);
}

// GridSampler.h's scalar coordinate rules for one dimension of `size` pixels.
template <typename T>
struct ScalarLocation {
  int64_t size;
  Padding padding;
  bool align_corners;

  T unnormalize(T coord) const {
    if (align_corners) return ((coord + 1) / 2) * (size - 1);
    return ((coord + 1) * size - 1) / 2;
  }
  T grad_unnormalize() const {
    return align_corners ? static_cast<T>(size - 1) / 2 : static_cast<T>(size) / 2;
  }
  T clip(T in) const { return std::min(static_cast<T>(size - 1), std::max(in, static_cast<T>(0))); }
  T clip_set_grad(T in, T* grad) const {
    if (in <= static_cast<T>(0)) {
      *grad = 0;
      return 0;
    }
    const T max = static_cast<T>(size - 1);
    if (in >= max) {
      *grad = 0;
      return max;
    }
    *grad = 1;
    return in;
  }
  // Reflection between twice_low / 2 and twice_high / 2.
  void bounds(int64_t& twice_low, int64_t& twice_high) const {
    twice_low = align_corners ? 0 : -1;
    twice_high = align_corners ? 2 * (size - 1) : 2 * size - 1;
  }
  T reflect(T in) const {
    int64_t lo, hi;
    bounds(lo, hi);
    if (lo == hi) return static_cast<T>(0);
    const T min = static_cast<T>(lo) / 2;
    const T span = static_cast<T>(hi - lo) / 2;
    in = std::fabs(in - min);
    const T extra = std::fmod(in, span);
    const int flips = static_cast<int>(std::floor(in / span));
    return flips % 2 == 0 ? extra + min : span - extra + min;
  }
  T reflect_set_grad(T in, T* grad) const {
    int64_t lo, hi;
    bounds(lo, hi);
    if (lo == hi) {
      *grad = 0;
      return 0;
    }
    const T min = static_cast<T>(lo) / 2;
    const T span = static_cast<T>(hi - lo) / 2;
    in = in - min;
    int mult = 1;
    if (in < static_cast<T>(0)) {
      mult = -1;
      in = -in;
    }
    const T extra = std::fmod(in, span);
    const int flips = static_cast<int>(std::floor(in / span));
    if (flips % 2 == 0) {
      *grad = static_cast<T>(mult);
      return extra + min;
    }
    *grad = static_cast<T>(-mult);
    return span - extra + min;
  }
  // grid_sampler_compute_source_index
  T source(T coord) const {
    coord = unnormalize(coord);
    if (padding == Padding::border) return clip(coord);
    if (padding == Padding::reflection) return clip(reflect(coord));
    return coord;
  }
  // grid_sampler_compute_source_index_set_grad
  T source_set_grad(T coord, T* grad) const {
    *grad = grad_unnormalize();
    coord = unnormalize(coord);
    T grad_clip, grad_refl;
    if (padding == Padding::border) {
      coord = clip_set_grad(coord, &grad_clip);
      *grad = (*grad) * grad_clip;
    } else if (padding == Padding::reflection) {
      coord = reflect_set_grad(coord, &grad_refl);
      coord = clip_set_grad(coord, &grad_clip);
      *grad = (*grad) * grad_refl * grad_clip;
    }
    return coord;
  }
};

// The eight corners around (x, y, z): corner k lies dx = k & 1, dy = k >> 1 & 1, dz = k >> 2
// past the floor, with weight fx[dx] * fy[dy] * fz[dz] (fx[0] = x_e - x, fx[1] = x - x_w).
template <typename T>
struct Trilinear {
  T fx[2], fy[2], fz[2];
  int64_t off[8];
  bool in[8];
  Trilinear(T x, T y, T z, int64_t D, int64_t H, int64_t W) {
    const int64_t ix = as_index(std::floor(x)), iy = as_index(std::floor(y)),
                  iz = as_index(std::floor(z));
    fx[0] = static_cast<T>(ix + 1) - x;
    fx[1] = x - static_cast<T>(ix);
    fy[0] = static_cast<T>(iy + 1) - y;
    fy[1] = y - static_cast<T>(iy);
    fz[0] = static_cast<T>(iz + 1) - z;
    fz[1] = z - static_cast<T>(iz);
    for (int k = 0; k < 8; ++k) {
      const int64_t cx = ix + (k & 1), cy = iy + (k >> 1 & 1), cz = iz + (k >> 2);
      in[k] = ix != INT64_MIN && iy != INT64_MIN && iz != INT64_MIN && cx >= 0 && cx < W &&
              cy >= 0 && cy < H && cz >= 0 && cz < D;
      off[k] = in[k] ? (cz * H + cy) * W + cx : 0;
    }
  }
  T weight(int k) const { return fx[k & 1] * fy[k >> 1 & 1] * fz[k >> 2]; }
};

template <typename T>
struct Sampler3d {
  int64_t C, D, H, W, P;
  ScalarLocation<T> lx, ly, lz;
  Interp interp;

  Sampler3d(const Tensor& input, const Tensor& grid, const Options& o)
      : C(input.size(1)),
        D(input.size(2)),
        H(input.size(3)),
        W(input.size(4)),
        P(grid.size(1) * grid.size(2) * grid.size(3)),
        lx{input.size(4), o.padding, o.align_corners},
        ly{input.size(3), o.padding, o.align_corners},
        lz{input.size(2), o.padding, o.align_corners},
        interp(o.interp) {}

  bool nearest(T x, T y, T z, int64_t& off) const {
    // torch 1.13's scalar 3-D kernel rounds half away from zero (its 2-D kernel: to even).
    const int64_t ix = as_index(std::round(x)), iy = as_index(std::round(y)),
                  iz = as_index(std::round(z));
    if (!(ix >= 0 && ix < W && iy >= 0 && iy < H && iz >= 0 && iz < D)) return false;
    off = (iz * H + iy) * W + ix;
    return true;
  }

  void forward(const T* x, const T* g, T* out) const {
    const int64_t V = D * H * W;
    for (int64_t p = 0; p < P; ++p) {
      const T sx = lx.source(g[3 * p]), sy = ly.source(g[3 * p + 1]), sz = lz.source(g[3 * p + 2]);
      if (interp == Interp::bilinear) {
        const Trilinear<T> t(sx, sy, sz, D, H, W);
        T w[8];
        for (int k = 0; k < 8; ++k) w[k] = t.weight(k);
        for (int64_t c = 0; c < C; ++c) {
          T acc = 0;
          for (int k = 0; k < 8; ++k)
            if (t.in[k]) acc += x[c * V + t.off[k]] * w[k];
          out[c * P + p] = acc;
        }
      } else {
        int64_t off = 0;
        const bool ok = nearest(sx, sy, sz, off);
        for (int64_t c = 0; c < C; ++c) out[c * P + p] = ok ? x[c * V + off] : T(0);
      }
    }
  }

  void backward(const T* x, const T* g, const T* go, T* gin, T* gg) const {
    const int64_t V = D * H * W;
    for (int64_t p = 0; p < P; ++p) {
      T mx, my, mz;
      const T sx = lx.source_set_grad(g[3 * p], &mx), sy = ly.source_set_grad(g[3 * p + 1], &my),
              sz = lz.source_set_grad(g[3 * p + 2], &mz);
      if (interp == Interp::bilinear) {
        const Trilinear<T> t(sx, sy, sz, D, H, W);
        T gix = 0, giy = 0, giz = 0;
        for (int64_t c = 0; c < C; ++c) {
          const T gout = go[c * P + p];
          if (gin)
            for (int k = 0; k < 8; ++k)
              if (t.in[k]) gin[c * V + t.off[k]] += t.weight(k) * gout;
          for (int k = 0; k < 8; ++k) {
            if (!t.in[k]) continue;
            const int dx = k & 1, dy = k >> 1 & 1, dz = k >> 2;
            const T val = x[c * V + t.off[k]];
            const T tx = val * t.fy[dy] * t.fz[dz] * gout;
            gix = dx ? gix + tx : gix - tx;
            const T ty = val * t.fx[dx] * t.fz[dz] * gout;
            giy = dy ? giy + ty : giy - ty;
            const T tz = val * t.fx[dx] * t.fy[dy] * gout;
            giz = dz ? giz + tz : giz - tz;
          }
        }
        gg[3 * p] = mx * gix;
        gg[3 * p + 1] = my * giy;
        gg[3 * p + 2] = mz * giz;
      } else {
        int64_t off = 0;
        if (gin && nearest(sx, sy, sz, off))
          for (int64_t c = 0; c < C; ++c) gin[c * V + off] += go[c * P + p];
        gg[3 * p] = gg[3 * p + 1] = gg[3 * p + 2] = T(0);
      }
    }
  }
};

template <typename T>
void forward_typed(const Tensor& input, const Tensor& grid, Tensor& out, const Options& o) {
  const Sampler3d<T> s(input, grid, o);
  const int64_t in_n = s.C * s.D * s.H * s.W;
  for (int64_t n = 0; n < input.size(0); ++n)
    s.forward(input.data<T>() + n * in_n, grid.data<T>() + n * s.P * 3,
              out.data<T>() + n * s.C * s.P);
}

template <typename T>
void backward_typed(const Tensor& grad_out, const Tensor& input, const Tensor& grid,
                    Tensor& grad_input, Tensor& grad_grid, const Options& o) {
  const Sampler3d<T> s(input, grid, o);
  const int64_t in_n = s.C * s.D * s.H * s.W;
  T* gin = grad_input.defined() ? grad_input.data<T>() : nullptr;
  for (int64_t n = 0; n < input.size(0); ++n)
    s.backward(input.data<T>() + n * in_n, grid.data<T>() + n * s.P * 3,
               grad_out.data<T>() + n * s.C * s.P, gin ? gin + n * in_n : nullptr,
               grad_grid.data<T>() + n * s.P * 3);
}

}  // namespace

void forward_3d(const Tensor& input, const Tensor& grid, Tensor& out, const Options& o) {
  if (input.dtype() == DType::float64) {
    forward_typed<double>(input, grid, out, o);
  } else {
    forward_typed<float>(input, grid, out, o);
  }
}

void backward_3d(const Tensor& grad_out, const Tensor& input, const Tensor& grid,
                 Tensor& grad_input, Tensor& grad_grid, const Options& o) {
  if (input.dtype() == DType::float64) {
    backward_typed<double>(grad_out, input, grid, grad_input, grad_grid, o);
  } else {
    backward_typed<float>(grad_out, input, grid, grad_input, grad_grid, o);
  }
}

}  // namespace fabric::nn::grid_sample_detail
