// CUDA 2-D and 3-D upsampling (nearest, bilinear, trilinear) over contiguous planes and volumes,
// forward and backward, with kernels/cpu/upsample.cpp's indices (tensor/upsample_kernels.h) and
// arithmetic, rounding order included (tensor/upsample_math.h, one definition for both devices;
// float32 accumulation for 16-bit dtypes). The backward gathers, one thread per input element
// summing the outputs that read it in (oh, ow) order (3-d: torch's order, Upsample3dDesc): no
// atomics, and the CPU's order of additions.
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/stream.h"
#include "tensor/conv_kernels.h"
#include "tensor/upsample_kernels.h"
#include "tensor/upsample_math.h"

namespace fabric::cuda {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
__global__ void forward_kernel(UpsampleDesc d, const T* x, T* y, int64_t total) {
  using A = acc_t<T>;
  const int64_t per_plane = d.OH * d.OW;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / per_plane, r = i - p * per_plane, oh = r / d.OW, ow = r - oh * d.OW;
    const T* xp = x + p * d.H * d.W;
    const UpsampleTaps<A> rt = upsample_taps<A>(d, true, oh), ct = upsample_taps<A>(d, false, ow);
    const T* x0 = xp + rt.i0 * d.W;
    if (!d.bilinear) {
      y[i] = x0[ct.i0];
      continue;
    }
    const T* x1 = xp + rt.i1 * d.W;
    y[i] = static_cast<T>(upsample::bilinear(rt.l0, rt.l1, ct.l0, ct.l1, static_cast<A>(x0[ct.i0]),
                                             static_cast<A>(x0[ct.i1]), static_cast<A>(x1[ct.i0]),
                                             static_cast<A>(x1[ct.i1])));
  }
}

template <typename T>
__global__ void backward_kernel(UpsampleDesc d, const T* dy, T* dx, int64_t total) {
  using A = acc_t<T>;
  const int64_t per_plane = d.H * d.W;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / per_plane, pos = i - p * per_plane, h = pos / d.W, c = pos - h * d.W;
    int64_t oh0, oh1, ow0, ow1;
    upsample_readers<A>(d, true, h, oh0, oh1);
    upsample_readers<A>(d, false, c, ow0, ow1);
    const T* gp = dy + p * d.OH * d.OW;
    A acc = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const A wh = upsample_weight(upsample_taps<A>(d, true, oh), h);
      for (int64_t ow = ow0; ow < ow1; ++ow)
        acc = upsample::gather_step(wh, upsample_weight(upsample_taps<A>(d, false, ow), c),
                                    static_cast<A>(gp[oh * d.OW + ow]), acc);
    }
    dx[i] = static_cast<T>(acc);
  }
}

void upsample2d_forward(const UpsampleDesc& d, const void* x, void* y) {
  const int64_t total = d.planes * d.OH * d.OW;
  if (total == 0) return;
  const int device = device_of_pointer(y);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "upsample2d", [&](auto tag) {
    using T = decltype(tag);
    forward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(x),
                                                                static_cast<T*>(y), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void upsample2d_backward(const UpsampleDesc& d, const void* dy, void* dx) {
  const int64_t total = d.planes * d.H * d.W;
  if (total == 0) return;
  const int device = device_of_pointer(dx);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "upsample2d_backward", [&](auto tag) {
    using T = decltype(tag);
    backward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(dy),
                                                                 static_cast<T*>(dx), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

// ---- 3-D (nearest, trilinear): the CPU kernels' taps, arithmetic and order of additions ------

template <typename T>
__global__ void forward3d_kernel(Upsample3dDesc d, const T* x, T* y, int64_t total) {
  using A = acc_t<T>;
  const int64_t H = d.h.in, W = d.w.in, OH = d.h.out, OW = d.w.out;
  const int64_t per_plane = d.d.out * OH * OW;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / per_plane, r = i - p * per_plane, od = r / (OH * OW), oh = r / OW % OH,
                  ow = r % OW;
    const T* xp = x + p * d.d.in * H * W;
    const UpsampleTaps<A> a = upsample3d_taps<A>(d, d.d, od), b = upsample3d_taps<A>(d, d.h, oh),
                          c = upsample3d_taps<A>(d, d.w, ow);
    const T* x00 = xp + (a.i0 * H + b.i0) * W;
    if (!d.trilinear) {
      y[i] = x00[c.i0];
      continue;
    }
    const T* x01 = xp + (a.i0 * H + b.i1) * W;
    const T* x10 = xp + (a.i1 * H + b.i0) * W;
    const T* x11 = xp + (a.i1 * H + b.i1) * W;
    const A p0[4] = {static_cast<A>(x00[c.i0]), static_cast<A>(x00[c.i1]),
                     static_cast<A>(x01[c.i0]), static_cast<A>(x01[c.i1])};
    const A p1[4] = {static_cast<A>(x10[c.i0]), static_cast<A>(x10[c.i1]),
                     static_cast<A>(x11[c.i0]), static_cast<A>(x11[c.i1])};
    y[i] = static_cast<T>(upsample::trilinear(a.l0, a.l1, b.l0, b.l1, c.l0, c.l1, p0, p1));
  }
}

template <typename T>
__global__ void backward3d_kernel(Upsample3dDesc d, const T* dy, T* dx, int64_t total) {
  using A = acc_t<T>;
  const int64_t D = d.d.in, H = d.h.in, W = d.w.in, OH = d.h.out, OW = d.w.out;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t p = i / (D * H * W), id = i / (H * W) % D, ih = i / W % H, iw = i % W;
    int64_t od0, od1, oh0, oh1, ow0, ow1;
    upsample3d_readers<A>(d, d.d, id, od0, od1);
    upsample3d_readers<A>(d, d.h, ih, oh0, oh1);
    upsample3d_readers<A>(d, d.w, iw, ow0, ow1);
    A acc = 0;
    for (int64_t od = od0; od < od1; ++od) {
      A wd[2];
      const int nd = upsample3d_tap_weights(upsample3d_taps<A>(d, d.d, od), d.trilinear, id, wd);
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        A wh[2];
        const int nh = upsample3d_tap_weights(upsample3d_taps<A>(d, d.h, oh), d.trilinear, ih, wh);
        const T* g = dy + ((p * d.d.out + od) * OH + oh) * OW;
        for (int64_t ow = ow0; ow < ow1; ++ow) {
          A ww[2];
          const int nw =
              upsample3d_tap_weights(upsample3d_taps<A>(d, d.w, ow), d.trilinear, iw, ww);
          const A gv = static_cast<A>(g[ow]);
          for (int a = 0; a < nd; ++a)
            for (int b = 0; b < nh; ++b)
              for (int c = 0; c < nw; ++c)
                acc = upsample::gather_step3(wd[a], wh[b], ww[c], gv, acc);
        }
      }
    }
    dx[i] = static_cast<T>(acc);
  }
}

void upsample3d_forward(const Upsample3dDesc& d, const void* x, void* y) {
  const int64_t total = d.planes * d.d.out * d.h.out * d.w.out;
  if (total == 0) return;
  const int device = device_of_pointer(y);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "upsample3d", [&](auto tag) {
    using T = decltype(tag);
    forward3d_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(x),
                                                                  static_cast<T*>(y), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void upsample3d_backward(const Upsample3dDesc& d, const void* dy, void* dx) {
  const int64_t total = d.planes * d.d.in * d.h.in * d.w.in;
  if (total == 0) return;
  const int device = device_of_pointer(dx);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "upsample3d_backward", [&](auto tag) {
    using T = decltype(tag);
    backward3d_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(dy),
                                                                   static_cast<T*>(dx), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(upsample2d_forward_stub, cuda, &cuda::upsample2d_forward);
FABRIC_REGISTER_KERNEL(upsample2d_backward_stub, cuda, &cuda::upsample2d_backward);
FABRIC_REGISTER_KERNEL(upsample3d_forward_stub, cuda, &cuda::upsample3d_forward);
FABRIC_REGISTER_KERNEL(upsample3d_backward_stub, cuda, &cuda::upsample3d_backward);
}  // namespace fabric
