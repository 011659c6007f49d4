// Dispatch stubs of batch_norm and group_norm: per-plane sums and a per-plane affine map over a
// contiguous (planes, len) buffer, a plane being one (n, c) slice of an (N, C, *) input (or one
// (n, group) slice for group_norm's statistics). The ops (ops_batch_norm.cpp) turn the per-plane
// sums into statistics and per-plane coefficients with small tensor ops, so the kernels stay two
// device-neutral loops: kernels/cpu/channel_norm.cpp and kernels/cuda/channel_norm_kernels.cu.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

// Per-plane values (centers, coefficients) are read at index k(p) = p % period, or p when period
// is 0: batch_norm passes one value per channel (period C) instead of one per (n, c) plane.

// For each plane p, with d = v - center[k(p)] (center null: 0) and w = u (u null: w = d):
// sum_w[p] = sum of w, sum_wd[p] = sum of w * d over the plane's len values. u and v have
// `dtype`; center, sum_w and sum_wd hold values of reduce_acc_dtype(dtype), the dtype the sums
// accumulate in (sum_w and sum_wd one per plane). sum_wd may be null when not wanted.
// fold (with period > 0): sum_w[k] and sum_wd[k] are instead the sums over every plane with
// k(p) = k (batch_norm's per-channel sums over n), `period` values each, summed in an order that
// depends only on the shape.
struct PlaneSumsArgs {
  int64_t planes = 0, len = 0, period = 0;
  bool fold = false;
  const void* u = nullptr;
  const void* v = nullptr;
  DType dtype = DType::float32;
  const void* center = nullptr;
  void* sum_w = nullptr;
  void* sum_wd = nullptr;
};
using PlaneSumsFn = void (*)(const PlaneSumsArgs& a);
FABRIC_DECLARE_STUB(plane_sums_stub, PlaneSumsFn);

// out = a[k] * (u - center[k]) + b[k] * v + c[k] over each plane (k = k(p)), computed in
// reduce_acc_dtype(dtype); u, v and out have `dtype`, a/b/c/center hold acc values. Any of the
// (a, u), (b, v), c and center terms may be null (left out; center null: 0).
struct PlaneAffineArgs {
  int64_t planes = 0, len = 0, period = 0;
  const void* u = nullptr;
  const void* v = nullptr;
  DType dtype = DType::float32;
  const void* a = nullptr;
  const void* center = nullptr;
  const void* b = nullptr;
  const void* c = nullptr;
  void* out = nullptr;
};
using PlaneAffineFn = void (*)(const PlaneAffineArgs& a);
FABRIC_DECLARE_STUB(plane_affine_stub, PlaneAffineFn);

// batch_norm's per-channel statistics of a contiguous (rows, channels) input (BatchNorm1d on
// (N, C)) in one read of it: mean[c] and sq_dev[c] = sum over rows of (x[n, c] - mean[c])^2, in
// reduce_acc_dtype(dtype), with rows > 0. Optional (find()): without it the op makes two
// plane_sums passes, the second centred on the first's mean.
struct ChannelMomentsArgs {
  int64_t rows = 0, channels = 0;
  const void* x = nullptr;
  DType dtype = DType::float32;
  void* mean = nullptr;
  void* sq_dev = nullptr;
};
using ChannelMomentsFn = void (*)(const ChannelMomentsArgs& a);
FABRIC_DECLARE_STUB(channel_moments_stub, ChannelMomentsFn);

}  // namespace fabric
