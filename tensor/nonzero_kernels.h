// nonzero's direct kernel: one pass counting each fixed-size chunk's nonzero elements, an
// exclusive prefix over the chunks (the op sizes the result from its total), then a second pass
// where each chunk writes its elements' coordinates from its own offset, in row-major order.
// The composition this replaces (sum, cumsum, where, scatter, per-dim index_select) made about ten
// passes with int64 temporaries of the input's size. The chunking is fixed (kNonzeroChunk
// elements, not per thread) so the two passes agree at any thread count. Devices without the
// kernel get an undefined result, and nonzero keeps its composition there.
#pragma once
#include <cstdint>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace fabric {

inline constexpr int64_t kNonzeroChunk = int64_t{1} << 16;  // elements per counted chunk

// src: numel contiguous elements of dtype (bool, uint8, int8, int32, int64, float16, bfloat16,
// float32 or float64). An element is nonzero as torch counts it: NaN is, -0.0 is not.
// sizes: ndim dims (ndim >= 1) whose product is numel.
struct NonzeroDesc {
  const void* src = nullptr;
  DType dtype = DType::bool_;
  int64_t numel = 0;
  const int64_t* sizes = nullptr;
  int64_t ndim = 0;
};
// chunk_counts[c] <- the nonzero elements among [c * kNonzeroChunk, (c + 1) * kNonzeroChunk).
using NonzeroCountFn = void (*)(const NonzeroDesc& d, int64_t* chunk_counts);
// out (total, ndim) int64, contiguous <- each nonzero element's coordinates, chunk c's from row
// chunk_begin[c] on (the exclusive prefix of chunk_counts).
using NonzeroWriteFn = void (*)(const NonzeroDesc& d, const int64_t* chunk_begin, int64_t* out);
FABRIC_DECLARE_STUB(nonzero_count_stub, NonzeroCountFn);
FABRIC_DECLARE_STUB(nonzero_write_stub, NonzeroWriteFn);

// masked_select's compaction on the same chunks: out <- the values (numel contiguous elements of
// itemsize bytes) where the bool mask (d.src, numel, 1-D) is set, in order, chunk c's from
// element chunk_begin[c] on (the prefix of nonzero_count_stub's counts of the mask).
using MaskedCompactFn = void (*)(const NonzeroDesc& mask, const void* values, int64_t itemsize,
                                 const int64_t* chunk_begin, void* out);
FABRIC_DECLARE_STUB(masked_compact_stub, MaskedCompactFn);

// masked_select(values, mask) for a bool mask of values' shape, both on one device, by the
// kernels above: 1-D, values' dtype. Undefined where the device has no kernel. Records nothing.
Tensor masked_select_direct(const Tensor& values, const Tensor& mask);

// nonzero(a) (count, a.dim()) int64 by the kernels above, or undefined where a's device has no
// kernel or its dtype is not one listed above (the caller composes it then). Records nothing.
Tensor nonzero_direct(const Tensor& a);

}  // namespace fabric
