// CUDA kernels of batch_norm/group_norm (tensor/channel_norm_kernels.h), with the semantics of
// kernels/cpu/channel_norm.cpp: float32 math for fp32/fp16/bf16 (float64 for float64). Plane
// sums: blockDim.x threads per plane (row_block), folded in a fixed order; the affine map: one
// thread per element, in the CPU's rounding order (tensor/channel_norm_affine.h, one definition
// for both devices).
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/norm_util.cuh"
#include "kernels/cuda/reduce_util.cuh"
#include "tensor/channel_norm_affine.h"
#include "tensor/channel_norm_kernels.h"

namespace fabric::cuda {
namespace {

template <typename A, typename Load>
__global__ void __launch_bounds__(kRowBlockMaxThreads)
    plane_sums_kernel(PlaneSumsArgs p, Load load) {
  const int64_t plane = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = plane < p.planes;
  const int64_t L = p.len, base = plane * L;
  const int64_t k = p.period ? plane % p.period : plane;
  const A c = live && p.center ? static_cast<const A*>(p.center)[k] : A(0);
  const char* u = static_cast<const char*>(p.u);
  const char* v = static_cast<const char*>(p.v);
  Sum2<A> s{0, 0};
  if (live) {
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) {
      const A d = load(v, base + i) - c;
      const A w = u ? load(u, base + i) : d;
      s.a += w;
      s.b += w * d;
    }
  }
  s = row_allreduce(s, Sum2Combine<A>{});
  if (!live || threadIdx.x != 0) return;
  static_cast<A*>(p.sum_w)[plane] = s.a;
  if (p.sum_wd) static_cast<A*>(p.sum_wd)[plane] = s.b;
}

// One thread per element, each rounded as the CPU's (tensor/channel_norm_affine.h), the terms
// that are there given as compile-time flags as on the CPU.
template <typename A, typename T, bool kA, bool kM, bool kB, bool kC, typename Load>
__global__ void plane_affine_kernel(PlaneAffineArgs p, Load load) {
  const int64_t total = p.planes * p.len;
  const char* u = static_cast<const char*>(p.u);
  const char* v = static_cast<const char*>(p.v);
  const A* ca = static_cast<const A*>(p.a);
  const A* cb = static_cast<const A*>(p.b);
  const A* cc = static_cast<const A*>(p.c);
  const A* center = static_cast<const A*>(p.center);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t plane = i / p.len, k = p.period ? plane % p.period : plane;
    const A ka = kA ? ca[k] : A(0), m = kM ? center[k] : A(0), c = kC ? cc[k] : A(0);
    const A y = channel_norm::affine_element<kA, kM, kB, kC>(
        kA ? load(u, i) : A(0), ka, m, channel_norm::affine_shift(ka, m, c), kB ? load(v, i) : A(0),
        kB ? cb[k] : A(0), c);
    store(static_cast<char*>(p.out) + i * static_cast<int64_t>(sizeof(T)), cast_value<T>(y));
  }
}

// sum_w[k] (and sum_wd[k]) = the sums of the per-plane values part_w[n * period + k] over n, in
// n order.
template <typename A>
__global__ void fold_planes_kernel(int64_t period, int64_t fold, const A* part_w, const A* part_wd,
                                   A* sum_w, A* sum_wd) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= period) return;
  A w = 0, wd = 0;
  for (int64_t n = 0; n < fold; ++n) {
    w += part_w[n * period + k];
    wd += part_wd[n * period + k];
  }
  sum_w[k] = w;
  if (sum_wd) sum_wd[k] = wd;
}

void plane_sums_cuda(const PlaneSumsArgs& p) {
  const bool fold = p.fold && p.period > 0;
  if (p.planes == 0 && !fold) return;
  LaunchContext ctx(p.sum_w);
  const dim3 block = row_block(p.len);
  const int64_t blocks = (p.planes + block.y - 1) / block.y;
  visit_float_dtype("batch_norm/group_norm", p.dtype, [&](auto, auto acc, auto load) {
    using A = decltype(acc);
    // A fold sums per plane into scratch first, then over the planes of each k.
    DeviceScratch part(ctx.device, fold ? static_cast<size_t>(2 * p.planes) * sizeof(A) : 0);
    PlaneSumsArgs q = p;
    if (fold) {
      q.sum_w = part.as<A>();
      q.sum_wd = part.as<A>() + p.planes;
    }
    if (p.planes > 0) {
      plane_sums_kernel<A><<<grid_dim(blocks), block, 0, ctx.stream>>>(q, load);
      FABRIC_CUDA_CHECK_LAUNCH();
    }
    if (fold) {
      fold_planes_kernel<A><<<grid_dim((p.period + 255) / 256), 256, 0, ctx.stream>>>(
          p.period, p.planes / p.period, static_cast<const A*>(q.sum_w),
          static_cast<const A*>(q.sum_wd), static_cast<A*>(p.sum_w), static_cast<A*>(p.sum_wd));
      FABRIC_CUDA_CHECK_LAUNCH();
    }
  });
}

void plane_affine_cuda(const PlaneAffineArgs& p) {
  const int64_t total = p.planes * p.len;
  if (total == 0) return;
  LaunchContext ctx(p.out);
  const int64_t blocks = std::min<int64_t>(
      (total + 255) / 256, 16 * static_cast<int64_t>(multiprocessor_count(ctx.device)));
  // As on the CPU: a term is there when both its coefficient and its values are.
  const bool has_a = p.a && p.u, has_b = p.b && p.v;
  visit_float_dtype("batch_norm/group_norm", p.dtype, [&](auto t, auto acc, auto load) {
    using T = decltype(t);
    using A = decltype(acc);
    channel_norm::with_affine_terms(
        has_a, p.center != nullptr, has_b, p.c != nullptr, [&](auto ka, auto km, auto kb, auto kc) {
          plane_affine_kernel<A, T, decltype(ka)::value, decltype(km)::value, decltype(kb)::value,
                              decltype(kc)::value>
              <<<grid_dim(blocks), 256, 0, ctx.stream>>>(p, load);
        });
  });
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(plane_sums_stub, cuda, &cuda::plane_sums_cuda);
FABRIC_REGISTER_KERNEL(plane_affine_stub, cuda, &cuda::plane_affine_cuda);
}  // namespace fabric
