// The device side of the deferred range checks: a kernel tests an index or target against
// [0, bound) and reports one that is out into its device's record (kernels/cuda/deferred_check.h).
#pragma once
#include <cstdint>

#include "kernels/cuda/deferred_check.h"

namespace fabric::cuda {

// Folds a failure into the record unless another check failed first; the caller then skips the
// element (no read or write through the bad value).
__device__ __forceinline__ void report_out_of_range(const DeviceRangeCheck& c, int64_t value,
                                                    int64_t position) {
  DeferredCheckRecord* r = c.record;
  if (!r) return;
  const unsigned long long first = atomicCAS(&r->site, 0ull, c.site);
  if (first != 0ull && first != c.site) return;
  atomicMin(&r->lowest, static_cast<long long>(value));
  atomicMax(&r->highest, static_cast<long long>(value));
  atomicMin(&r->position, static_cast<unsigned long long>(position));
  atomicExch(reinterpret_cast<unsigned long long*>(&r->bound),
             static_cast<unsigned long long>(c.bound));
  atomicAdd(&r->count, 1ull);
}

// A value check's failure (no index value to name): counted, with its lowest position, unless
// another check failed first.
__device__ __forceinline__ void report_failed_value(const DeviceRangeCheck& c, int64_t position) {
  DeferredCheckRecord* r = c.record;
  if (!r) return;
  const unsigned long long first = atomicCAS(&r->site, 0ull, c.site);
  if (first != 0ull && first != c.site) return;
  atomicMin(&r->position, static_cast<unsigned long long>(position));
  atomicAdd(&r->count, 1ull);
}

// True when `value` lies in [0, bound); otherwise reports it (at `position`) and returns false.
__device__ __forceinline__ bool in_range(const DeviceRangeCheck& c, int64_t value,
                                         int64_t position) {
  if (value >= 0 && value < c.bound) return true;
  report_out_of_range(c, value, position);
  return false;
}

}  // namespace fabric::cuda
