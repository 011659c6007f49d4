// Dispatch stub for the sort kernel behind sort, argsort and topk (tensor/ops_sort.cpp). The op
// moves the sorted dim last and makes it contiguous, so a kernel sees only rows.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

// src (slices, n) contiguous; values and indices (slices, k) contiguous, k <= n: the first k of
// each row in sorted order, with the row positions they came from. The order is torch's: NaN is
// the largest value, -0.0 equals 0.0, and equal elements keep their input order (stable, in
// descending order too). Any dtype but the fp8 ones.
// `topk_selection` asks instead for torch's CPU top-k selection, which orders equal elements by
// how its selection algorithm moved them (see kernels/cpu/sort.cpp); with `sorted` false the k
// are then in that algorithm's order, not sorted. A device without it (CUDA) sorts.
struct SortDesc {
  const void* src = nullptr;
  void* values = nullptr;
  int64_t* indices = nullptr;
  DType dtype = DType::float32;
  int64_t slices = 0, n = 0, k = 0;
  bool descending = false;
  bool topk_selection = false;
  bool sorted = true;
};
using SortFn = void (*)(const SortDesc& d);
FABRIC_DECLARE_STUB(sort_stub, SortFn);

}  // namespace fabric
