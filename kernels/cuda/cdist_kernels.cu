// CUDA cdist and its backward (cdist_kernels.h), with kernels/cpu/cdist.cpp's terms: one thread
// per distance (the forward) or per x1 element (the backward sums over x2's rows), so no atomics
// are needed. 16-bit dtypes accumulate in float32.
#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/stream.h"
#include "tensor/cdist_kernels.h"
#include "tensor/conv_kernels.h"

namespace fabric::cuda {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename A>
__device__ __forceinline__ A sign_of(A v) {
  return static_cast<A>((v > 0) - (v < 0));
}

template <typename T>
__global__ void cdist_kernel(CdistDesc d, const T* x1, const T* x2, T* out, int64_t total) {
  using A = acc_t<T>;
  const int64_t P = d.rows1, R = d.rows2, M = d.features;
  // 1/p rounded from double, as the CPU's inv_p (1 / A(p) can be an ulp away).
  const A p = static_cast<A>(d.p), inv_p = static_cast<A>(1.0 / d.p);
  const bool inf = isinf(d.p);
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t j = i % R, bi = i / R, b = bi / P;
    const T* a = x1 + bi * M;
    const T* c = x2 + (b * R + j) * M;
    A acc = 0;
    for (int64_t k = 0; k < M; ++k) {
      const A diff = fabs(static_cast<A>(a[k]) - static_cast<A>(c[k]));
      if (d.p == 0)
        acc += diff != 0 ? (diff == diff ? A(1) : diff) : A(0);  // NaN stays
      else if (d.p == 1)
        acc += diff;
      else if (d.p == 2)
        acc += diff * diff;
      else if (inf)
        acc = diff > acc || diff != diff ? diff : acc;
      else
        acc += pow(diff, p);
    }
    if (d.p == 2)
      acc = sqrt(acc);
    else if (d.p != 0 && d.p != 1 && !inf)
      acc = pow(acc, inv_p);
    out[i] = static_cast<T>(acc);
  }
}

template <typename T>
__global__ void cdist_backward_kernel(CdistDesc d, const T* grad, const T* x1, const T* x2,
                                      const T* dist, T* dx1, int64_t total) {
  using A = acc_t<T>;
  const int64_t P = d.rows1, R = d.rows2, M = d.features;
  const A p = static_cast<A>(d.p);
  const bool inf = isinf(d.p);
  FABRIC_GRID_STRIDE(i, total) {
    const int64_t k = i % M, bi = i / M, b = bi / P;
    const A ak = static_cast<A>(x1[i]);
    // grad and dist's (i, j) of this problem: (P, R) rows, or stored (R, P) (grad_transposed).
    const int64_t row = d.grad_transposed ? b * R * P + bi % P : bi * R;
    const int64_t step = d.grad_transposed ? P : 1;
    A sum = 0;
    if (d.p != 0) {
      for (int64_t j = 0; j < R; ++j) {
        const A diff = ak - static_cast<A>(x2[(b * R + j) * M + k]);
        const A gj = static_cast<A>(grad[row + j * step]);
        const A dj = static_cast<A>(dist[row + j * step]);
        // The CPU's terms and order: the pair's factor s (grad, or grad / dist^(p-1) and 0 at a
        // zero distance) times the feature's term, multiplied rather than selected, so a NaN or
        // infinite grad propagates as it does there (s * 0 is NaN for an infinite s).
        if (d.p == 1) {
          sum += gj * sign_of(diff);
        } else if (inf) {
          sum += gj * sign_of(diff) * static_cast<A>(fabs(diff) == dj);
        } else if (d.p == 2) {
          sum += (dj == 0 ? A(0) : gj / dj) * diff;
        } else {
          const A s = dj == 0 ? A(0) : gj / pow(dj, p - 1);
          sum += diff == 0 ? A(0) : s * sign_of(diff) * pow(fabs(diff), p - 1);
        }
      }
    }
    dx1[i] = static_cast<T>(sum);
  }
}

void cdist_forward(const CdistDesc& d, const void* x1, const void* x2, void* out) {
  const int64_t total = d.batch * d.rows1 * d.rows2;
  if (total == 0) return;
  const int device = device_of_pointer(out);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "cdist", [&](auto tag) {
    using T = decltype(tag);
    cdist_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(
        d, static_cast<const T*>(x1), static_cast<const T*>(x2), static_cast<T*>(out), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

void cdist_backward(const CdistDesc& d, const void* grad, const void* x1, const void* x2,
                    const void* dist, void* dx1) {
  const int64_t total = d.batch * d.rows1 * d.features;
  if (total == 0) return;
  const int device = device_of_pointer(dx1);
  DeviceGuard guard(device);
  const cudaStream_t stream = compute_stream(device);
  visit_conv_dtype(d.dtype, "cdist_backward", [&](auto tag) {
    using T = decltype(tag);
    cdist_backward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(
        d, static_cast<const T*>(grad), static_cast<const T*>(x1), static_cast<const T*>(x2),
        static_cast<const T*>(dist), static_cast<T*>(dx1), total);
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(cdist_stub, cuda, &cuda::cdist_forward);
FABRIC_REGISTER_KERNEL(cdist_backward_stub, cuda, &cuda::cdist_backward);
}  // namespace fabric
