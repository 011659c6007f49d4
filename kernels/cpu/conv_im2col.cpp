// im2col/col2im convolution over the CPU GEMM (float32/float64), one image at a time, the groups
// as one batched GEMM. Column rows are ordered (c, kh, kw), the order of a weight's (C/g, KH, KW).
#include "kernels/cpu/conv_im2col.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/run_tasks.h"

namespace fabric::cpu {
namespace {

constexpr int64_t kGrain = 32768;

// A 1x1 convolution with unit stride and no padding reads the image itself as its columns.
bool is_pointwise(const Conv2dDesc& d) {
  return d.KH == 1 && d.KW == 1 && d.stride_h == 1 && d.stride_w == 1 && d.pad_h == 0 &&
         d.pad_w == 0;
}

// col (C*KH*KW, OH*OW) <- the receptive fields of x (C, H, W), zero where they hit the padding.
template <typename T>
void im2col(const Conv2dDesc& d, const T* x, T* col) {
  const int64_t rows = d.C * d.KH * d.KW, ohw = d.OH * d.OW;
  run_tasks(rows, rows * ohw > kGrain, [&](int64_t r) {
    const int64_t c = r / (d.KH * d.KW), kh = (r / d.KW) % d.KH, kw = r % d.KW;
    T* out = col + r * ohw;
    for (int64_t oh = 0; oh < d.OH; ++oh) {
      const int64_t ih = oh * d.stride_h - d.pad_h + kh * d.dil_h;
      T* o = out + oh * d.OW;
      if (ih < 0 || ih >= d.H) {
        std::fill(o, o + d.OW, T(0));
        continue;
      }
      const T* row = x + (c * d.H + ih) * d.W;
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        const int64_t iw = ow * d.stride_w - d.pad_w + kw * d.dil_w;
        o[ow] = (iw >= 0 && iw < d.W) ? row[iw] : T(0);
      }
    }
  });
}

// dx (C, H, W) <- the columns summed back onto the pixels they came from (dx is overwritten).
template <typename T>
void col2im(const Conv2dDesc& d, const T* col, T* dx) {
  const int64_t ohw = d.OH * d.OW;
  // A channel's rows write only that channel: no races.
  run_tasks(d.C, d.C * d.KH * d.KW * ohw > kGrain, [&](int64_t c) {
    T* plane = dx + c * d.H * d.W;
    std::fill(plane, plane + d.H * d.W, T(0));
    for (int64_t kh = 0; kh < d.KH; ++kh) {
      for (int64_t kw = 0; kw < d.KW; ++kw) {
        const T* in = col + ((c * d.KH + kh) * d.KW + kw) * ohw;
        for (int64_t oh = 0; oh < d.OH; ++oh) {
          const int64_t ih = oh * d.stride_h - d.pad_h + kh * d.dil_h;
          if (ih < 0 || ih >= d.H) continue;
          T* row = plane + ih * d.W;
          for (int64_t ow = 0; ow < d.OW; ++ow) {
            const int64_t iw = ow * d.stride_w - d.pad_w + kw * d.dil_w;
            if (iw >= 0 && iw < d.W) row[iw] += in[oh * d.OW + ow];
          }
        }
      }
    }
  });
}

struct Dims {
  int64_t G, Cg, OCg, Kg, ohw, chw;
};
Dims dims_of(const Conv2dDesc& d) {
  return {d.groups,    d.C / d.groups, d.OC / d.groups, (d.C / d.groups) * d.KH * d.KW,
          d.OH * d.OW, d.C * d.H * d.W};
}

GemmArgs gemm_args(const Conv2dDesc& d) {
  GemmArgs g;
  g.a_dtype = g.b_dtype = g.c_dtype = d.dtype;
  g.batch = d.groups;
  return g;
}

template <typename T>
void forward(const Conv2dDesc& d, const T* x, const T* w, const T* bias, T* y) {
  const Dims k = dims_of(d);
  const bool direct = is_pointwise(d);
  std::vector<T> col(direct ? 0 : static_cast<size_t>(d.C * d.KH * d.KW * k.ohw));
  for (int64_t n = 0; n < d.N; ++n) {
    const T* xn = x + n * k.chw;
    if (!direct) im2col(d, xn, col.data());
    // y[n, g] (OCg, OHW) = w[g] (OCg, Kg) @ col[g] (Kg, OHW)
    GemmArgs g = gemm_args(d);
    g.M = k.OCg;
    g.N = k.ohw;
    g.K = k.Kg;
    g.A = w;
    g.lda = k.Kg;
    g.stride_a = k.OCg * k.Kg;
    g.B = direct ? xn : col.data();
    g.ldb = k.ohw;
    g.stride_b = k.Kg * k.ohw;
    g.C = y + n * d.OC * k.ohw;
    g.ldc = k.ohw;
    g.stride_c = k.OCg * k.ohw;
    gemm(g);
  }
  if (bias) {
    run_tasks(d.N * d.OC, d.N * d.OC * k.ohw > kGrain, [&](int64_t p) {
      T* plane = y + p * k.ohw;
      const T b = bias[p % d.OC];
      for (int64_t i = 0; i < k.ohw; ++i) plane[i] += b;
    });
  }
}

template <typename T>
void backward_data(const Conv2dDesc& d, const T* dy, const T* w, T* dx) {
  const Dims k = dims_of(d);
  const bool direct = is_pointwise(d);
  std::vector<T> col(direct ? 0 : static_cast<size_t>(d.C * d.KH * d.KW * k.ohw));
  for (int64_t n = 0; n < d.N; ++n) {
    T* dxn = dx + n * k.chw;
    // dcol[g] (Kg, OHW) = w[g]^T (Kg, OCg) @ dy[n, g] (OCg, OHW)
    GemmArgs g = gemm_args(d);
    g.M = k.Kg;
    g.N = k.ohw;
    g.K = k.OCg;
    g.A = w;
    g.trans_a = true;
    g.lda = k.Kg;
    g.stride_a = k.OCg * k.Kg;
    g.B = dy + n * d.OC * k.ohw;
    g.ldb = k.ohw;
    g.stride_b = k.OCg * k.ohw;
    g.C = direct ? dxn : col.data();
    g.ldc = k.ohw;
    g.stride_c = k.Kg * k.ohw;
    gemm(g);
    if (!direct) col2im(d, col.data(), dxn);
  }
  if (d.N > 0 && k.OCg == 0) std::fill(dx, dx + d.N * k.chw, T(0));
}

template <typename T>
void backward_weights(const Conv2dDesc& d, const T* dy, const T* x, T* dw, T* db) {
  const Dims k = dims_of(d);
  if (dw) {
    const bool direct = is_pointwise(d);
    std::vector<T> col(direct ? 0 : static_cast<size_t>(d.C * d.KH * d.KW * k.ohw));
    std::fill(dw, dw + d.OC * k.Kg, T(0));
    for (int64_t n = 0; n < d.N; ++n) {
      const T* xn = x + n * k.chw;
      if (!direct) im2col(d, xn, col.data());
      // dw[g] (OCg, Kg) += dy[n, g] (OCg, OHW) @ col[g]^T (OHW, Kg)
      GemmArgs g = gemm_args(d);
      g.M = k.OCg;
      g.N = k.Kg;
      g.K = k.ohw;
      g.A = dy + n * d.OC * k.ohw;
      g.lda = k.ohw;
      g.stride_a = k.OCg * k.ohw;
      g.B = direct ? xn : col.data();
      g.trans_b = true;
      g.ldb = k.ohw;
      g.stride_b = k.Kg * k.ohw;
      g.C = dw;
      g.ldc = k.Kg;
      g.stride_c = k.OCg * k.Kg;
      g.beta = 1.f;
      gemm(g);
    }
  }
  if (db) {
    run_tasks(d.OC, d.N * d.OC * k.ohw > kGrain, [&](int64_t oc) {
      double s = 0;  // the sum over N*OH*OW terms: accumulate in double even for float32
      for (int64_t n = 0; n < d.N; ++n) {
        const T* plane = dy + (n * d.OC + oc) * k.ohw;
        for (int64_t i = 0; i < k.ohw; ++i) s += plane[i];
      }
      db[oc] = static_cast<T>(s);
    });
  }
}

void check_dtype(const Conv2dDesc& d, const char* what) {
  FABRIC_CHECK(d.dtype == DType::float32 || d.dtype == DType::float64, DTypeError, what,
               ": the im2col path takes float32 or float64, got ", dtype_name(d.dtype));
}

}  // namespace

void conv2d_forward_im2col(const Conv2dDesc& d, const void* x, const void* w, const void* bias,
                           void* y) {
  check_dtype(d, "conv2d");
  if (d.dtype == DType::float64)
    forward(d, static_cast<const double*>(x), static_cast<const double*>(w),
            static_cast<const double*>(bias), static_cast<double*>(y));
  else
    forward(d, static_cast<const float*>(x), static_cast<const float*>(w),
            static_cast<const float*>(bias), static_cast<float*>(y));
}

void conv2d_backward_data_im2col(const Conv2dDesc& d, const void* dy, const void* w, void* dx) {
  check_dtype(d, "conv2d_backward_data");
  if (d.dtype == DType::float64)
    backward_data(d, static_cast<const double*>(dy), static_cast<const double*>(w),
                  static_cast<double*>(dx));
  else
    backward_data(d, static_cast<const float*>(dy), static_cast<const float*>(w),
                  static_cast<float*>(dx));
}

void conv2d_backward_weights_im2col(const Conv2dDesc& d, const void* dy, const void* x, void* dw,
                                    void* db) {
  check_dtype(d, "conv2d_backward_weights");
  if (d.dtype == DType::float64)
    backward_weights(d, static_cast<const double*>(dy), static_cast<const double*>(x),
                     static_cast<double*>(dw), static_cast<double*>(db));
  else
    backward_weights(d, static_cast<const float*>(dy), static_cast<const float*>(x),
                     static_cast<float*>(dw), static_cast<float*>(db));
}

}  // namespace fabric::cpu
