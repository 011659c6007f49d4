// Dispatch stubs of the 3-d pools (max_pool3d, avg_pool3d, adaptive_avg_pool3d) and of adaptive
// max pooling (adaptive_max_pool2d runs as a 3-d pool with D = 1): contiguous (D, H, W) planes,
// one descriptor for fixed windows (kernel, stride, padding) and for torch's adaptive ones.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"
#include "tensor/host_device.h"

namespace fabric {

// planes independent (D, H, W) -> (OD, OH, OW) planes. Fixed windows: output o of a dim reads
// inputs [o*stride - pad, o*stride - pad + kernel), padding at most half the kernel (so no window
// is all padding) and floor output sizes (so no window passes the padded end). Adaptive windows
// (kernel, stride, pad unused): [floor(o*in/out), ceil((o+1)*in/out)), as torch.
struct Pool3dDesc {
  int64_t planes = 0;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t kernel[3] = {1, 1, 1}, stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0};
  bool adaptive = false;
  DType dtype = DType::float32;
};

struct PoolSpan {
  int64_t begin, end;
};

// The inputs output o of `dim` reads, clipped to the input (padding holds nothing to read).
FABRIC_HD inline PoolSpan pool_window(const Pool3dDesc& d, int dim, int64_t o) {
  const int64_t n = d.in[dim], m = d.out[dim];
  if (d.adaptive) return {o * n / m, ((o + 1) * n + m - 1) / m};
  const int64_t b = o * d.stride[dim] - d.pad[dim], e = b + d.kernel[dim];
  return {b < 0 ? 0 : b, e < n ? e : n};
}

// The outputs of `dim` whose windows hold input i (the backward gathers over them).
FABRIC_HD inline PoolSpan pool_cover(const Pool3dDesc& d, int dim, int64_t i) {
  const int64_t n = d.in[dim], m = d.out[dim];
  if (d.adaptive) return {i * m / n, ((i + 1) * m + n - 1) / n};
  const int64_t s = d.stride[dim], first = i + d.pad[dim] - d.kernel[dim] + 1;
  const int64_t lo = first <= 0 ? 0 : (first + s - 1) / s, hi = (i + d.pad[dim]) / s + 1;
  return {lo, hi < m ? hi : m};
}

// An average's divisor: the whole kernel for fixed windows (count_include_pad), the window for
// adaptive ones.
FABRIC_HD inline int64_t pool_divisor(const Pool3dDesc& d, int64_t od, int64_t oh, int64_t ow) {
  if (!d.adaptive) return d.kernel[0] * d.kernel[1] * d.kernel[2];
  const PoolSpan a = pool_window(d, 0, od), b = pool_window(d, 1, oh), c = pool_window(d, 2, ow);
  return (a.end - a.begin) * (b.end - b.begin) * (c.end - c.begin);
}

// y (may be null) gets each window's maximum and idx (may be null: no gradient will need it) its
// offset in the plane ((d*H + h)*W + w):
// the first maximum, or the last NaN (NaN propagates, as torch's kernels).
using Pool3dMaxFn = void (*)(const Pool3dDesc& d, const void* x, void* y, int64_t* idx);
// y = each window's mean; the backward writes all of dx (each dy shared by its divisor).
using Pool3dAvgFn = void (*)(const Pool3dDesc& d, const void* x, void* y);
using Pool3dAvgBackwardFn = void (*)(const Pool3dDesc& d, const void* dy, void* dx);
FABRIC_DECLARE_STUB(pool3d_max_stub, Pool3dMaxFn);
FABRIC_DECLARE_STUB(pool3d_avg_stub, Pool3dAvgFn);
FABRIC_DECLARE_STUB(pool3d_avg_backward_stub, Pool3dAvgBackwardFn);

}  // namespace fabric
