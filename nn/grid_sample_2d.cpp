// grid_sample over (N, C, H, W) as torch 1.13's vectorized CPU kernel computes it
// (GridSamplerKernel.cpp, ApplyGridSample<..., 2, ...>), one lane at a time: the same operations
// in the same order, so float32 and float64 results match torch's bits. The backward also keeps
// torch's walk over the output points in chunks of one AVX2 vector (8 floats, 4 doubles): within
// a chunk each channel scatters its corners' contributions corner by corner, lane by lane, which
// fixes the order in which grad_input sums where several points share an input pixel.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "nn/grid_sample_kernels.h"
#include "nn/grid_sample_location.h"

// The fused steps torch's build contracts are the std::fma calls below; nothing else may fuse.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace fabric::nn::grid_sample_detail {
namespace {

// Bilinear weights and corners of one source point (compute_interp_params).
template <typename T>
struct Bilinear {
  T n, s, w, e;      // distances to the four sides
  T nw, ne, sw, se;  // corner weights
  int64_t off[4];    // plane offsets of nw, ne, sw, se
  bool in[4];        // whether each corner lies inside the plane

  Bilinear() = default;
  Bilinear(T x, T y, int64_t H, int64_t W) {
    const T x_w = std::floor(x), y_n = std::floor(y);
    w = x - x_w;
    e = T(1) - w;
    n = y - y_n;
    s = T(1) - n;
    nw = s * e;
    ne = s * w;
    sw = n * e;
    se = n * w;
    const int64_t ix_w = to_index(x_w), iy_n = to_index(y_n);
    const int64_t ix[4] = {ix_w, ix_w + 1, ix_w, ix_w + 1};
    const int64_t iy[4] = {iy_n, iy_n, iy_n + 1, iy_n + 1};
    for (int k = 0; k < 4; ++k) {
      in[k] = in_bounds(ix[k], W) && in_bounds(iy[k], H);
      off[k] = in[k] ? iy[k] * W + ix[k] : 0;
    }
  }
  T weight(int k) const { return k == 0 ? nw : k == 1 ? ne : k == 2 ? sw : se; }
};

// a * b + c * d + e * f + g * h as torch's build contracts it: the first product rounded, each
// later one fused into the running sum.
template <typename T>
T dot4(T a, T b, T c, T d, T e, T f, T g, T h) {
  return std::fma(g, h, std::fma(e, f, std::fma(c, d, a * b)));
}

// The cubic convolution coefficients (A = -0.75) at the four taps around a fraction t, and their
// derivatives: torch's get_cubic_coefficients(_grad), whose constant products (5A, A + 2, ...)
// fold exactly and whose x-polynomials contract into fused steps.
template <typename T>
std::array<T, 4> cubic_coefficients(T t) {
  const T A = T(-0.75);
  // ((A x - 5A) x + 8A) x - 4A and ((A + 2) x - (A + 3)) x x + 1
  const auto outer = [&](T x) {
    return std::fma(std::fma(std::fma(A, x, -(T(5) * A)), x, T(8) * A), x, -(T(4) * A));
  };
  const auto inner = [&](T x) { return std::fma(std::fma(A + T(2), x, -(A + T(3))) * x, x, T(1)); };
  return {outer(t + T(1)), inner(t), inner(T(1) - t), outer(T(2) - t)};
}
template <typename T>
std::array<T, 4> cubic_coefficients_grad(T t) {
  const T A = T(-0.75);
  std::array<T, 4> c;
  T x = T(-1) - t;
  c[0] = std::fma(std::fma(T(-3) * A, x, -(T(10) * A)), x, -(T(8) * A));
  x = T(0) - t;
  c[1] = std::fma(T(-3) * (A + T(2)), x, -(T(2) * (A + T(3)))) * x;
  x = T(1) - t;
  c[2] = std::fma(T(3) * (A + T(2)), x, -(T(2) * (A + T(3)))) * x;
  x = T(2) - t;
  c[3] = std::fma(std::fma(T(3) * A, x, -(T(10) * A)), x, T(8) * A);
  return c;
}

template <typename T>
struct Sampler2d {
  int64_t C, H, W, P;  // channels, input plane, output points per image
  Location<T> loc_w, loc_h;
  Interp interp;

  Sampler2d(const Tensor& input, const Tensor& grid, const Options& o)
      : C(input.size(1)),
        H(input.size(2)),
        W(input.size(3)),
        P(grid.size(1) * grid.size(2)),
        loc_w(input.size(3), o.padding, o.align_corners),
        loc_h(input.size(2), o.padding, o.align_corners),
        interp(o.interp) {}

  // get_value_bounded's index: the padding rule on a tap's coordinates, then the bounds test.
  bool tap(T xx, T yy, int64_t& off) const {
    const int64_t ix = to_index(loc_w.compute(xx)), iy = to_index(loc_h.compute(yy));
    if (!(in_bounds(ix, W) && in_bounds(iy, H))) return false;
    off = iy * W + ix;
    return true;
  }
  T value(const T* plane, T xx, T yy) const {
    int64_t off;
    return tap(xx, yy, off) ? plane[off] : T(0);
  }

  // out (C, P) for the points g (P, 2) of one image x (C, H, W).
  void forward(const T* x, const T* g, T* out) const {
    const int64_t HW = H * W;
    for (int64_t p = 0; p < P; ++p) {
      const T gx = g[2 * p], gy = g[2 * p + 1];
      if (interp == Interp::bilinear) {
        const Bilinear<T> b(loc_w.apply(gx), loc_h.apply(gy), H, W);
        for (int64_t c = 0; c < C; ++c) {
          const T* plane = x + c * HW;
          T v[4];
          for (int k = 0; k < 4; ++k) v[k] = b.in[k] ? plane[b.off[k]] : T(0);
          out[c * P + p] = dot4(v[0], b.nw, v[1], b.ne, v[2], b.sw, v[3], b.se);
        }
      } else if (interp == Interp::nearest) {
        // Vectorized::round: to nearest, ties to even.
        const int64_t ix = to_index(std::nearbyint(loc_w.apply(gx)));
        const int64_t iy = to_index(std::nearbyint(loc_h.apply(gy)));
        const bool ok = in_bounds(ix, W) && in_bounds(iy, H);
        for (int64_t c = 0; c < C; ++c) out[c * P + p] = ok ? x[c * HW + iy * W + ix] : T(0);
      } else {
        const T xs = loc_w.unnormalize(gx), ys = loc_h.unnormalize(gy);
        const T ix = std::floor(xs), iy = std::floor(ys);
        const auto cx = cubic_coefficients(xs - ix);
        const auto cy = cubic_coefficients(ys - iy);
        for (int64_t c = 0; c < C; ++c) {
          const T* plane = x + c * HW;
          T row[4];
          for (int i = 0; i < 4; ++i) {
            const T yy = iy + T(-1 + i);
            row[i] = dot4(cx[0], value(plane, ix - T(1), yy), cx[1], value(plane, ix + T(0), yy),
                          cx[2], value(plane, ix + T(1), yy), cx[3], value(plane, ix + T(2), yy));
          }
          out[c * P + p] = dot4(cy[0], row[0], cy[1], row[1], cy[2], row[2], cy[3], row[3]);
        }
      }
    }
  }

  // One chunk [p0, p0 + len) of torch's walk: gx (C, P) the output gradient, gin (C, H, W) or
  // null, gg (P, 2).
  void backward_chunk(const T* x, const T* g, const T* go, T* gin, T* gg, int64_t p0,
                      int64_t len) const {
    constexpr int64_t S = kLanes<T>;
    const int64_t HW = H * W;
    T acc_x[S] = {}, acc_y[S] = {};
    if (interp == Interp::bilinear) {
      T mult_x[S], mult_y[S];
      std::array<Bilinear<T>, S> b{};
      for (int64_t l = 0; l < len; ++l) {
        const int64_t p = p0 + l;
        auto [xs, gxm] = loc_w.apply_get_grad(g[2 * p]);
        auto [ys, gym] = loc_h.apply_get_grad(g[2 * p + 1]);
        b[l] = Bilinear<T>(xs, ys, H, W);
        mult_x[l] = gxm;
        mult_y[l] = gym;
      }
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = x + c * HW;
        const T* go_c = go + c * P + p0;
        if (gin) {
          T* gplane = gin + c * HW;
          for (int k = 0; k < 4; ++k)
            for (int64_t l = 0; l < len; ++l)
              if (b[l].in[k]) gplane[b[l].off[k]] += b[l].weight(k) * go_c[l];
        }
        for (int64_t l = 0; l < len; ++l) {
          const Bilinear<T>& q = b[l];
          T v[4];
          for (int k = 0; k < 4; ++k) v[k] = q.in[k] ? plane[q.off[k]] : T(0);
          // gx + ((ne - nw) s + (se - sw) n) gOut, and gy likewise, contracted as torch's.
          acc_x[l] = std::fma(std::fma(v[3] - v[2], q.n, (v[1] - v[0]) * q.s), go_c[l], acc_x[l]);
          acc_y[l] = std::fma(std::fma(v[3] - v[1], q.w, (v[2] - v[0]) * q.e), go_c[l], acc_y[l]);
        }
      }
      for (int64_t l = 0; l < len; ++l) {
        gg[2 * (p0 + l)] = acc_x[l] * mult_x[l];
        gg[2 * (p0 + l) + 1] = acc_y[l] * mult_y[l];
      }
    } else if (interp == Interp::nearest) {
      if (gin) {
        int64_t off[S];
        bool ok[S];
        for (int64_t l = 0; l < len; ++l) {
          const int64_t p = p0 + l;
          const int64_t ix = to_index(std::nearbyint(loc_w.apply(g[2 * p])));
          const int64_t iy = to_index(std::nearbyint(loc_h.apply(g[2 * p + 1])));
          ok[l] = in_bounds(ix, W) && in_bounds(iy, H);
          off[l] = ok[l] ? iy * W + ix : 0;
        }
        for (int64_t c = 0; c < C; ++c)
          for (int64_t l = 0; l < len; ++l)
            if (ok[l]) gin[c * HW + off[l]] += go[c * P + p0 + l];
      }
      // The grid gets no gradient from nearest sampling.
      std::fill(gg + 2 * p0, gg + 2 * (p0 + len), T(0));
    } else {
      T ix[S], iy[S];
      std::array<std::array<T, 4>, S> cx, cy, cxg, cyg;
      for (int64_t l = 0; l < len; ++l) {
        const int64_t p = p0 + l;
        const T xs = loc_w.unnormalize(g[2 * p]), ys = loc_h.unnormalize(g[2 * p + 1]);
        ix[l] = std::floor(xs);
        iy[l] = std::floor(ys);
        cx[l] = cubic_coefficients(xs - ix[l]);
        cy[l] = cubic_coefficients(ys - iy[l]);
        cxg[l] = cubic_coefficients_grad(xs - ix[l]);
        cyg[l] = cubic_coefficients_grad(ys - iy[l]);
      }
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = x + c * HW;
        const T* go_c = go + c * P + p0;
        for (int i = 0; i < 4; ++i) {
          for (int j = 0; j < 4; ++j) {
            if (gin) {
              T* gplane = gin + c * HW;
              for (int64_t l = 0; l < len; ++l) {
                int64_t off;
                if (tap(ix[l] + T(-1 + i), iy[l] + T(-1 + j), off))
                  gplane[off] += go_c[l] * cx[l][i] * cy[l][j];
              }
            }
            for (int64_t l = 0; l < len; ++l) {
              const T val = value(plane, ix[l] + T(-1 + i), iy[l] + T(-1 + j));
              // gx - val gOut cxg cy: the last product fused into the subtraction.
              acc_x[l] = std::fma(-(val * go_c[l] * cxg[l][i]), cy[l][j], acc_x[l]);
              acc_y[l] = std::fma(-(val * go_c[l] * cyg[l][j]), cx[l][i], acc_y[l]);
            }
          }
        }
      }
      for (int64_t l = 0; l < len; ++l) {
        gg[2 * (p0 + l)] = acc_x[l] * loc_w.scaling;
        gg[2 * (p0 + l) + 1] = acc_y[l] * loc_h.scaling;
      }
    }
  }
};

template <typename T>
void forward_typed(const Tensor& input, const Tensor& grid, Tensor& out, const Options& o) {
  const Sampler2d<T> s(input, grid, o);
  const int64_t N = input.size(0);
  const T* x = input.data<T>();
  const T* g = grid.data<T>();
  T* y = out.data<T>();
  for (int64_t n = 0; n < N; ++n)
    s.forward(x + n * s.C * s.H * s.W, g + n * s.P * 2, y + n * s.C * s.P);
}

template <typename T>
void backward_typed(const Tensor& grad_out, const Tensor& input, const Tensor& grid,
                    Tensor& grad_input, Tensor& grad_grid, const Options& o) {
  const Sampler2d<T> s(input, grid, o);
  constexpr int64_t S = kLanes<T>;
  const int64_t N = input.size(0), Wo = grid.size(2);
  const int64_t in_n = s.C * s.H * s.W;
  const T* x = input.data<T>();
  const T* g = grid.data<T>();
  const T* go = grad_out.data<T>();
  T* gin = grad_input.defined() ? grad_input.data<T>() : nullptr;
  T* gg = grad_grid.data<T>();
  // The walk's lines: the whole (Ho * Wo) plane, or each output row.
  const int64_t line = o.chunks_per_row ? Wo : s.P;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t start = 0; start < s.P && line > 0; start += line)
      for (int64_t p0 = start; p0 < start + line; p0 += S)
        s.backward_chunk(x + n * in_n, g + n * s.P * 2, go + n * s.C * s.P,
                         gin ? gin + n * in_n : nullptr, gg + n * s.P * 2, p0,
                         std::min(S, start + line - p0));
  }
}

}  // namespace

void forward_2d(const Tensor& input, const Tensor& grid, Tensor& out, const Options& o) {
  if (input.dtype() == DType::float64) {
    forward_typed<double>(input, grid, out, o);
  } else {
    forward_typed<float>(input, grid, out, o);
  }
}

void backward_2d(const Tensor& grad_out, const Tensor& input, const Tensor& grid,
                 Tensor& grad_input, Tensor& grad_grid, const Options& o) {
  if (input.dtype() == DType::float64) {
    backward_typed<double>(grad_out, input, grid, grad_input, grad_grid, o);
  } else {
    backward_typed<float>(grad_out, input, grid, grad_input, grad_grid, o);
  }
}

}  // namespace fabric::nn::grid_sample_detail
