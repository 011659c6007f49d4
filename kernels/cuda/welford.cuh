// Welford's running statistics of a row (count, mean, sum of squared deviations) and Chan's merge
// of two of them, as layer_norm's forward kernel (norm_kernels.cu) folds them. Host and device:
// the merge is plain arithmetic, tested on the CPU.
#pragma once
#include "tensor/host_device.h"

namespace fabric::cuda {

template <typename A>
struct Welford {
  A n, mean, m2;
};

// row_allreduce's xor butterfly merges (a, b) in one lane and (b, a) in its partner, and Chan's
// formula rounds differently in the two orders: merged as they come, the lanes of a row of up to
// 32 threads would end with statistics a few ulp apart, each normalising its columns with its own
// while lane 0 stores another. Merging every pair in one canonical order (the larger count first,
// then the smaller mean) gives both lanes the same bits.
template <typename A>
struct WelfordCombine {
  FABRIC_HD_INLINE Welford<A> operator()(Welford<A> a, Welford<A> b) const {
    if (b.n == A(0)) return a;
    if (a.n == A(0)) return b;
    if (b.n > a.n || (b.n == a.n && b.mean < a.mean)) {
      const Welford<A> t = a;
      a = b;
      b = t;
    }
    const A n = a.n + b.n, d = b.mean - a.mean, f = b.n / n;
    return {n, a.mean + d * f, a.m2 + b.m2 + d * d * a.n * f};
  }
};

}  // namespace fabric::cuda
