// CUDA unfold (im2col) and fold (col2im) over contiguous tensors (fold_kernels.h), one thread per
// output element: unfold copies one column entry; fold gathers, for one pixel, the column entries
// that read it, in kernels/cpu/fold.cpp's (ki, kj) order, so no atomics are needed. 16-bit dtypes
// accumulate in float32.
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/stream.h"
#include "tensor/conv_kernels.h"
#include "tensor/fold_kernels.h"

namespace fabric::cuda {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// Column element i: row r = (n*C + c)*KH*KW + ki*KW + kj, block (bh, bw).
template <typename T>
__global__ void unfold_kernel(FoldDesc d, const T* im, T* col, int64_t total) {
  const int64_t L = d.BH * d.BW, kk = d.KH * d.KW;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t r = i / L, b = i - r * L, bh = b / d.BW, bw = b - bh * d.BW;
    const int64_t plane = r / kk, k = r - plane * kk, ki = k / d.KW, kj = k - ki * d.KW;
    const int64_t h = bh * d.SH - d.PH + ki * d.DH, w = bw * d.SW - d.PW + kj * d.DW;
    const bool inside = h >= 0 && h < d.H && w >= 0 && w < d.W;
    col[i] = inside ? im[(plane * d.H + h) * d.W + w] : static_cast<T>(0.0f);
  }
}

template <typename T>
__global__ void fold_kernel(FoldDesc d, const T* col, T* im, int64_t total) {
  using A = acc_t<T>;
  const int64_t L = d.BH * d.BW, kk = d.KH * d.KW;
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t plane = i / (d.H * d.W), pos = i - plane * d.H * d.W;
    const int64_t h = pos / d.W, w = pos - h * d.W;
    const T* rows = col + plane * kk * L;
    A acc = 0;
    for (int64_t ki = 0; ki < d.KH; ++ki) {
      const int64_t th = h + d.PH - ki * d.DH;  // = bh * SH for the block that reads (h, w)
      if (th < 0 || th % d.SH != 0 || th / d.SH >= d.BH) continue;
      const int64_t bh = th / d.SH;
      for (int64_t kj = 0; kj < d.KW; ++kj) {
        const int64_t tw = w + d.PW - kj * d.DW;
        if (tw < 0 || tw % d.SW != 0 || tw / d.SW >= d.BW) continue;
        acc += static_cast<A>(rows[(ki * d.KW + kj) * L + bh * d.BW + tw / d.SW]);
      }
    }
    im[i] = static_cast<T>(acc);
  }
}

void unfold(const FoldDesc& d, const void* image, void* cols) {
  const int64_t total = d.N * d.C * d.KH * d.KW * d.BH * d.BW;
  if (total == 0) return;
  const int device = device_of_pointer(cols);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "unfold", [&](auto tag) {
    using T = decltype(tag);
    unfold_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(image),
                                                               static_cast<T*>(cols), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void fold(const FoldDesc& d, const void* cols, void* image) {
  const int64_t total = d.N * d.C * d.H * d.W;
  if (total == 0) return;
  const int device = device_of_pointer(image);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "fold", [&](auto tag) {
    using T = decltype(tag);
    fold_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(d, static_cast<const T*>(cols),
                                                             static_cast<T*>(image), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(unfold_stub, cuda, &cuda::unfold);
FABRIC_REGISTER_KERNEL(fold_stub, cuda, &cuda::fold);
}  // namespace fabric
