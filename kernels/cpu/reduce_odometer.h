// The reductions' walk over a multi-dim index space (the innermost dim last), carrying the
// element offsets of up to two operands (input and output) as it steps.
#pragma once
#include <cstdint>

#include "tensor/reduce_kernels.h"

namespace fabric::cpu {

struct ReduceOdometer {
  int nd = 0;
  const int64_t* sizes = nullptr;
  const int64_t* s0 = nullptr;
  const int64_t* s1 = nullptr;
  int64_t idx[kMaxReduceDims] = {};
  int64_t off0 = 0, off1 = 0;
  ReduceOdometer(int n, const int64_t* sz, const int64_t* a, const int64_t* b, int64_t flat)
      : nd(n), sizes(sz), s0(a), s1(b) {
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = flat % sizes[d];
      flat /= sizes[d];
      off0 += idx[d] * s0[d];
      if (s1) off1 += idx[d] * s1[d];
    }
  }
  void next() {
    for (int d = nd - 1; d >= 0; --d) {
      off0 += s0[d];
      if (s1) off1 += s1[d];
      if (++idx[d] < sizes[d]) return;
      off0 -= idx[d] * s0[d];
      if (s1) off1 -= idx[d] * s1[d];
      idx[d] = 0;
    }
  }
};

}  // namespace fabric::cpu
