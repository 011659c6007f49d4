// Whether two tensors' elements share memory, the way PyTorch's MemoryOverlap decides it: a
// write must not read values it has already overwritten, which an elementwise copy between two
// partly overlapping ranges would (memcpy and cudaMemcpyAsync are even undefined there).
#pragma once
#include "tensor/tensor.h"

namespace fabric {

enum class MemOverlap {
  none,      // no shared byte (or either tensor is empty)
  full,      // the same bytes, element i at the same address in both: an elementwise write is safe
  partial,   // some bytes shared, elements misaligned: the result depends on the kernel's order
  too_hard,  // a tensor with gaps or self-overlap: not decided (PyTorch does not decide it either)
};

// PyTorch's is_non_overlapping_and_dense: the elements fill one contiguous byte range exactly
// once, in some order of the dims.
bool is_non_overlapping_and_dense(const Tensor& t);

// PyTorch's get_overlap_status: compares the byte ranges of two dense tensors on one device.
MemOverlap memory_overlap(const Tensor& a, const Tensor& b);

// Refuses a write into `dst` from `src` when they overlap partly (torch 1.13's
// assert_no_partial_overlap, with its message): ValueError naming `op` and asking for a clone().
void check_no_partial_overlap(const char* op, const Tensor& dst, const Tensor& src);

}  // namespace fabric
