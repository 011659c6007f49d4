// Dispatch stubs for the indexing kernels (embedding, index_select, gather, scatter_add, tril/triu,
// one_hot) and the index-accumulating kernels their gradients use. Value types only; the op layer
// validates shapes and dtypes before calling, and index ranges too unless `check` is set.
#pragma once
#include <cstdint>
#include <utility>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"

namespace fabric {

// The dtype index sums (scatter_add, index_add, index_put with accumulate, the index ops'
// gradients) add in: float32 for the reduced-precision floats, rounded once. torch 1.13's CPU
// kernels add one element at a time in bfloat16/float16, so sums over repeated indices can differ
// from torch's (fabric's are the more accurate; see the README's index writes).
inline DType index_sum_dtype(DType t) {
  return (t == DType::bfloat16 || t == DType::float16) ? DType::float32 : t;
}

// torch's limit on an iterated tensor's dims (its TensorIterator takes 25): gather, scatter and the
// index writes built on them take what torch takes. The descriptors pass by value to CUDA kernels
// (4 x 25 int64, well under the 4 KiB parameter limit).
inline constexpr int kMaxIndexDims = 25;

// Smallest and largest value of n contiguous int64/int32 indices (n > 0): the op checks ranges
// with them before any kernel reads through the indices.
using IndexMinMaxFn = std::pair<int64_t, int64_t> (*)(const void* index, DType index_dtype,
                                                      int64_t n);
FABRIC_DECLARE_STUB(index_minmax_stub, IndexMinMaxFn);

// `check` in the descs below: 0 when the op has validated the indices (the CPU); otherwise the id
// from arm_range_check_stub, and the kernel checks each index against [0, the indexed size)
// itself, leaves a bad one's element untouched (zero in a gathered output) and reports it.

// out (outer, num_index, inner), contiguous <- src[o, index[i], :]. src's inner block of `inner`
// elements is contiguous; its outer and indexed dims step by the given element strides. Indices
// (contiguous, int64 or int32) lie in [0, src_size) or are checked. Any dtype (bytes copied).
struct IndexSelectDesc {
  const void* src = nullptr;
  int64_t src_stride_outer = 0, src_stride_dim = 0, src_size = 0;
  uint64_t check = 0;
  void* out = nullptr;
  const void* index = nullptr;
  DType index_dtype = DType::int64;
  int64_t outer = 1, num_index = 0, inner = 1, itemsize = 4;
};
using IndexSelectFn = void (*)(const IndexSelectDesc& d);
FABRIC_DECLARE_STUB(index_select_stub, IndexSelectFn);

// out (outer, out_size, inner) += src (outer, num_index, inner) scattered along the middle dim:
// out[o, index[i], :] += src[o, i, :]. Both contiguous, of one dtype (float32/float64, or an
// integer dtype); repeated indices accumulate. Indices lie in [0, out_size) or are checked.
// A float `alpha` other than 1 adds fma(src, alpha, out), rounded once as torch's add_(src, alpha)
// (alpha in the dtype first); integer dtypes take 1 (the caller scales: exact modulo 2^bits).
struct IndexAddDesc {
  uint64_t check = 0;
  void* out = nullptr;
  const void* src = nullptr;
  const void* index = nullptr;
  DType index_dtype = DType::int64;
  DType dtype = DType::float32;
  int64_t outer = 1, out_size = 0, num_index = 0, inner = 1;
  double alpha = 1.0;
};
using IndexAddFn = void (*)(const IndexAddDesc& d);
FABRIC_DECLARE_STUB(index_add_stub, IndexAddFn);

// gather / scatter_add over the iteration shape `sizes` (the index's shape), along `dim`:
//   gather:      other[p] = data[p with p[dim] = index[p]]
//   scatter_add: data[p with p[dim] = index[p]] += other[p]
// Strides are in elements; data and other share one dtype; index is int64 and lies in
// [0, dim_size) (data's size along dim) or is checked.
struct ScatterGatherDesc {
  int ndim = 0, dim = 0;
  int64_t dim_size = 0;
  uint64_t check = 0;
  int64_t sizes[kMaxIndexDims] = {};
  int64_t data_strides[kMaxIndexDims] = {}, other_strides[kMaxIndexDims] = {},
          index_strides[kMaxIndexDims] = {};
  char* data = nullptr;
  char* other = nullptr;
  const int64_t* index = nullptr;
  DType dtype = DType::float32;
};
using ScatterGatherFn = void (*)(const ScatterGatherDesc& d);
FABRIC_DECLARE_STUB(gather_stub, ScatterGatherFn);
FABRIC_DECLARE_STUB(scatter_add_stub, ScatterGatherFn);

// dst (batch, rows, cols) <- src with the elements above (tril) / below (triu) the `diagonal`-th
// diagonal zeroed. Both contiguous; any dtype (zero bits are zero in every dtype).
struct TriDesc {
  const void* src = nullptr;
  void* dst = nullptr;
  int64_t batch = 0, rows = 0, cols = 0, itemsize = 4, diagonal = 0;
  bool lower = true;
};
using TriFn = void (*)(const TriDesc& d);
FABRIC_DECLARE_STUB(tri_stub, TriFn);

// out (n, num_classes) int64, contiguous <- one-hot rows of n contiguous int64 indices in range.
using OneHotFn = void (*)(const int64_t* index, int64_t n, int64_t num_classes, int64_t* out);
FABRIC_DECLARE_STUB(one_hot_stub, OneHotFn);

}  // namespace fabric
