// Dispatch stub of the scatter kernel behind scatter and scatter_reduce (and, through them,
// index_copy, index_fill and the advanced-index writes): the one kernel the index-write ops add
// to gather/scatter_add (index_kernels.h). Value types only; the op layer checks shapes, dtypes
// and (unless `check` is set) index ranges before calling.
#pragma once
#include <cstdint>

#include "tensor/index_kernels.h"

namespace fabric {

// How a scattered element meets the one already in place: assign overwrites it (the last write
// wins where indices repeat, as torch on the CPU), the others fold it in (torch's scatter_reduce
// "sum" | "prod" | "amax" | "amin"; "mean" is sum divided by a count, done by the op).
enum class ScatterReduceOp : uint8_t { assign, sum, prod, amax, amin };

// data[p with p[dim] = index[p]] (op)= other[p] over the index's shape (ScatterGatherDesc, `data`
// the destination, `other` the source). assign moves bytes of any dtype; the reductions take
// float64, float32, int64, int32, int8 and uint8 (the op reduces 16-bit floats in float32).
// amax/amin propagate NaN, as torch.
struct ScatterReduceDesc {
  ScatterGatherDesc sg;
  ScatterReduceOp op = ScatterReduceOp::assign;
};
using ScatterReduceFn = void (*)(const ScatterReduceDesc& d);
FABRIC_DECLARE_STUB(scatter_reduce_stub, ScatterReduceFn);

}  // namespace fabric
