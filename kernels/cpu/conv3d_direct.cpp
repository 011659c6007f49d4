// Direct-loop 3-D convolution (see conv3d_direct.h). Every output element is one gather, so each
// pass parallelises over whole output planes or weight rows without write conflicts.
#include "kernels/cpu/conv3d_direct.h"

#include <vector>

#include "tensor/error.h"

namespace fabric::cpu {
namespace {

// Visits each kernel tap (kd, kh, kw) of output position o that lands inside the input, with the
// flat input offset i and flat kernel offset k within one channel.
template <typename F>
void for_each_tap(const Conv3dDesc& d, int64_t od, int64_t oh, int64_t ow, F&& f) {
  for (int64_t kd = 0; kd < d.k[0]; ++kd) {
    const int64_t id = od * d.stride[0] - d.pad[0] + kd * d.dil[0];
    if (id < 0 || id >= d.in[0]) continue;
    for (int64_t kh = 0; kh < d.k[1]; ++kh) {
      const int64_t ih = oh * d.stride[1] - d.pad[1] + kh * d.dil[1];
      if (ih < 0 || ih >= d.in[1]) continue;
      for (int64_t kw = 0; kw < d.k[2]; ++kw) {
        const int64_t iw = ow * d.stride[2] - d.pad[2] + kw * d.dil[2];
        if (iw < 0 || iw >= d.in[2]) continue;
        f((id * d.in[1] + ih) * d.in[2] + iw, (kd * d.k[1] + kh) * d.k[2] + kw);
      }
    }
  }
}

// The output position (o) a tap k of input position i comes from along one dim, or -1.
int64_t source(int64_t i, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t out) {
  const int64_t t = i + pad - k * dil;
  if (t < 0 || t % stride != 0) return -1;
  const int64_t o = t / stride;
  return o < out ? o : -1;
}

template <typename T>
void forward_t(const Conv3dDesc& d, const T* x, const T* w, const T* bias, T* y) {
  const int64_t Cg = d.C / d.groups, OCg = d.OC / d.groups;
  const int64_t S = d.in_numel(), KS = d.k_numel(), OS = d.out_numel();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < d.N; ++n) {
    for (int64_t oc = 0; oc < d.OC; ++oc) {
      const T* xg = x + (n * d.C + oc / OCg * Cg) * S;
      const T* wo = w + oc * Cg * KS;
      T* yp = y + (n * d.OC + oc) * OS;
      for (int64_t od = 0; od < d.out[0]; ++od)
        for (int64_t oh = 0; oh < d.out[1]; ++oh)
          for (int64_t ow = 0; ow < d.out[2]; ++ow) {
            double acc = bias ? static_cast<double>(bias[oc]) : 0.0;
            for (int64_t c = 0; c < Cg; ++c) {
              const T* xc = xg + c * S;
              const T* wc = wo + c * KS;
              for_each_tap(d, od, oh, ow, [&](int64_t i, int64_t k) {
                acc += static_cast<double>(xc[i]) * static_cast<double>(wc[k]);
              });
            }
            yp[(od * d.out[1] + oh) * d.out[2] + ow] = static_cast<T>(acc);
          }
    }
  }
}

template <typename T>
void backward_data_t(const Conv3dDesc& d, const T* dy, const T* w, T* dx) {
  const int64_t Cg = d.C / d.groups, OCg = d.OC / d.groups;
  const int64_t S = d.in_numel(), KS = d.k_numel(), OS = d.out_numel();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < d.N; ++n) {
    for (int64_t ic = 0; ic < d.C; ++ic) {
      const int64_t g = ic / Cg, c = ic % Cg;
      T* dxp = dx + (n * d.C + ic) * S;
      for (int64_t id = 0; id < d.in[0]; ++id)
        for (int64_t ih = 0; ih < d.in[1]; ++ih)
          for (int64_t iw = 0; iw < d.in[2]; ++iw) {
            double acc = 0.0;
            for (int64_t kd = 0; kd < d.k[0]; ++kd) {
              const int64_t od = source(id, kd, d.stride[0], d.pad[0], d.dil[0], d.out[0]);
              if (od < 0) continue;
              for (int64_t kh = 0; kh < d.k[1]; ++kh) {
                const int64_t oh = source(ih, kh, d.stride[1], d.pad[1], d.dil[1], d.out[1]);
                if (oh < 0) continue;
                for (int64_t kw = 0; kw < d.k[2]; ++kw) {
                  const int64_t ow = source(iw, kw, d.stride[2], d.pad[2], d.dil[2], d.out[2]);
                  if (ow < 0) continue;
                  const int64_t o = (od * d.out[1] + oh) * d.out[2] + ow;
                  const int64_t k = (kd * d.k[1] + kh) * d.k[2] + kw;
                  for (int64_t oc = g * OCg; oc < (g + 1) * OCg; ++oc)
                    acc += static_cast<double>(dy[(n * d.OC + oc) * OS + o]) *
                           static_cast<double>(w[(oc * Cg + c) * KS + k]);
                }
              }
            }
            dxp[(id * d.in[1] + ih) * d.in[2] + iw] = static_cast<T>(acc);
          }
    }
  }
}

template <typename T>
void backward_weights_t(const Conv3dDesc& d, const T* dy, const T* x, T* dw, T* db) {
  const int64_t Cg = d.C / d.groups, OCg = d.OC / d.groups;
  const int64_t S = d.in_numel(), KS = d.k_numel(), OS = d.out_numel();
#pragma omp parallel for schedule(static)
  for (int64_t oc = 0; oc < d.OC; ++oc) {
    const int64_t g = oc / OCg;
    if (db) {
      double acc = 0.0;
      for (int64_t n = 0; n < d.N; ++n)
        for (int64_t o = 0; o < OS; ++o) acc += static_cast<double>(dy[(n * d.OC + oc) * OS + o]);
      db[oc] = static_cast<T>(acc);
    }
    if (!dw) continue;
    std::vector<double> acc(static_cast<size_t>(Cg * KS), 0.0);
    for (int64_t n = 0; n < d.N; ++n) {
      const T* dyp = dy + (n * d.OC + oc) * OS;
      for (int64_t c = 0; c < Cg; ++c) {
        const T* xc = x + (n * d.C + g * Cg + c) * S;
        double* ac = acc.data() + c * KS;
        for (int64_t od = 0; od < d.out[0]; ++od)
          for (int64_t oh = 0; oh < d.out[1]; ++oh)
            for (int64_t ow = 0; ow < d.out[2]; ++ow) {
              const double g_o = static_cast<double>(dyp[(od * d.out[1] + oh) * d.out[2] + ow]);
              for_each_tap(d, od, oh, ow, [&](int64_t i, int64_t k) {
                ac[k] += g_o * static_cast<double>(xc[i]);
              });
            }
      }
    }
    for (int64_t j = 0; j < Cg * KS; ++j) dw[oc * Cg * KS + j] = static_cast<T>(acc[j]);
  }
}

// Calls f(T{}) for float32 and float64, the dtypes these loops take.
template <typename F>
void visit(DType t, const char* what, F&& f) {
  FABRIC_CHECK(t == DType::float32 || t == DType::float64, DTypeError, what,
               " direct kernel: unsupported dtype ", dtype_name(t),
               " (expected float32 or float64)");
  if (t == DType::float64)
    f(double{});
  else
    f(float{});
}

}  // namespace

void conv3d_forward_direct(const Conv3dDesc& d, const void* x, const void* w, const void* bias,
                           void* y) {
  visit(d.dtype, "conv3d", [&](auto t) {
    using T = decltype(t);
    forward_t(d, static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias),
              static_cast<T*>(y));
  });
}

void conv3d_backward_data_direct(const Conv3dDesc& d, const void* dy, const void* w, void* dx) {
  visit(d.dtype, "conv3d_backward_data", [&](auto t) {
    using T = decltype(t);
    backward_data_t(d, static_cast<const T*>(dy), static_cast<const T*>(w), static_cast<T*>(dx));
  });
}

void conv3d_backward_weights_direct(const Conv3dDesc& d, const void* dy, const void* x, void* dw,
                                    void* db) {
  visit(d.dtype, "conv3d_backward_weights", [&](auto t) {
    using T = decltype(t);
    backward_weights_t(d, static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dw),
                       static_cast<T*>(db));
  });
}

}  // namespace fabric::cpu
